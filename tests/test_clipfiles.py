"""Which files in the clips folder belong to a job."""

from __future__ import annotations

from pathlib import Path

from jobqueue.clipfiles import clip_path, fitted_clip_path, job_files, poster_path
from pipeline.encode import poster_beside


def test_a_job_owns_its_clip_poster_and_refitted_copies_and_nothing_of_other_jobs(
    tmp_path: Path,
) -> None:
    refitted = fitted_clip_path(tmp_path, 1, 8_000_000)
    owned = [
        clip_path(tmp_path, 1),
        poster_path(tmp_path, 1),
        refitted,
        poster_beside(refitted),
    ]
    others = [clip_path(tmp_path, 11), fitted_clip_path(tmp_path, 11, 500), tmp_path / "1-w.mp4"]
    for path in owned + others:
        path.write_bytes(b"x")

    assert sorted(job_files(tmp_path, 1)) == sorted(owned)
    assert [path.name for path in owned] == [
        "1.mp4",
        "1.jpg",
        "1.fit-8000000.mp4",
        "1.fit-8000000.jpg",
    ]


def test_a_job_without_files_owns_none(tmp_path: Path) -> None:
    assert job_files(tmp_path, 3) == []
