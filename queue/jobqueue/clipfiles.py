"""The names of a job's files in the clips folder, written down once.

A finished job owns ``<id>.mp4`` and its poster ``<id>.jpg`` (a storyboard's shot also its
last frame, ``<id>.last.png``, which the next shot starts from). When a server's upload limit is
smaller than the clip, the bot re-encodes a copy ``<id>.fit-<limit>.mp4``, and the encoder
writes that copy's poster beside it (``<id>.fit-<limit>.jpg``). A clip being made lives in
``.partial/<id>-<worker>.mp4`` until it is renamed to its final name.

A drafts job's clip is the 2x2 grid; each draft lies beside it as ``<id>-<n>.mp4`` with its
poster and the latents Render and Vary start from (``<id>-<n>.latents.npz``), named as
:mod:`pipeline.drafts` names them beside any grid. While a job renders, its latest live
preview is ``.previews/<id>.webp``, replaced whole each time and removed when the job ends.

An /animate job starts from a picture its user uploaded (and may end on a second one): they lie
where its request says (``data/uploads/``) and are deleted with the job's clip
(:func:`delete_uploaded_pictures`).
"""

from __future__ import annotations

import os
from pathlib import Path

from jobqueue.models import Job, JobKind
from pipeline.drafts import DRAFT_COUNT, draft_beside, latents_beside
from pipeline.encode import poster_beside

CLIP_SUFFIX = ".mp4"
PARTIAL_DIR = ".partial"
PREVIEW_DIR = ".previews"


def clip_path(clips_dir: Path, job_id: int) -> Path:
    """Where the finished clip of ``job_id`` lives."""
    return clips_dir / f"{job_id}{CLIP_SUFFIX}"


def poster_path(clips_dir: Path, job_id: int) -> Path:
    """Where the poster of the finished clip lives (the encoder writes it beside the clip)."""
    return poster_beside(clip_path(clips_dir, job_id))


def fitted_clip_path(clips_dir: Path, job_id: int, limit_bytes: int) -> Path:
    """Where the copy re-encoded to fit an upload limit of ``limit_bytes`` lives.

    Its poster, written by the encoder, is :func:`~pipeline.encode.poster_beside` it."""
    return clips_dir / f"{job_id}.fit-{limit_bytes}{CLIP_SUFFIX}"


def partial_clip_path(clips_dir: Path, job_id: int, worker_id: str) -> Path:
    """Where ``worker_id`` encodes the clip of ``job_id`` before it is renamed.

    Named per worker: a worker that lost its lease cannot overwrite the new owner's file."""
    return clips_dir / PARTIAL_DIR / f"{job_id}-{worker_id}{CLIP_SUFFIX}"


def last_frame_path(clips_dir: Path, job_id: int) -> Path:
    """Where the last frame of ``job_id``'s clip is kept as a picture (a storyboard's next
    shot starts from it)."""
    return clips_dir / f"{job_id}.last.png"


def job_files(clips_dir: Path, job_id: int) -> list[Path]:
    """Every file of ``job_id``'s finished clip that exists on disk: the clip, its poster,
    each re-encoded copy with its poster, and its last frame."""
    candidates = [
        clip_path(clips_dir, job_id),
        poster_path(clips_dir, job_id),
        last_frame_path(clips_dir, job_id),
        *sorted(clips_dir.glob(f"{job_id}.fit-*")),
        *files_beside_grid(clip_path(clips_dir, job_id)),
    ]
    return [path for path in candidates if path.is_file()]


def delete_job_files(clips_dir: Path, job_id: int) -> None:
    """Remove every file of ``job_id``'s finished clip (blocking: run it in a thread)."""
    for path in job_files(clips_dir, job_id):
        path.unlink(missing_ok=True)


def uploaded_pictures(job: Job) -> list[Path]:
    """The pictures an /animate job's user uploaded for it: its start image and end image."""
    if job.kind is not JobKind.ANIMATE:
        return []
    names = (job.request.image_path, job.request.end_image_path)
    return [Path(name) for name in names if name]


def delete_uploaded_pictures(job: Job) -> None:
    """Remove the job's uploaded pictures (blocking: run it in a thread). A Retry or Remix of
    the job shares them: once they are gone it cannot be made again."""
    for path in uploaded_pictures(job):
        path.unlink(missing_ok=True)


def draft_path(clips_dir: Path, job_id: int, number: int) -> Path:
    """Where draft ``number`` (1-4) of the drafts job ``job_id`` lives (its latents beside)."""
    return draft_beside(clip_path(clips_dir, job_id), number)


def files_beside_grid(grid: Path) -> list[Path]:
    """The names of every draft file beside a grid at ``grid``: each draft, its poster and
    its latents (whether they exist or not)."""
    names = []
    for number in range(1, DRAFT_COUNT + 1):
        draft = draft_beside(grid, number)
        names += [draft, poster_beside(draft), latents_beside(draft)]
    return names


def preview_path(clips_dir: Path, job_id: int) -> Path:
    """Where the latest live preview of the running job ``job_id`` is kept."""
    return clips_dir / PREVIEW_DIR / f"{job_id}.webp"


def store_preview(clips_dir: Path, job_id: int, data: bytes) -> None:
    """Replace the job's live preview with ``data`` in one step: a reader never sees half."""
    path = preview_path(clips_dir, job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    partial.write_bytes(data)
    os.replace(partial, path)


def forget_preview(clips_dir: Path, job_id: int) -> None:
    preview_path(clips_dir, job_id).unlink(missing_ok=True)
