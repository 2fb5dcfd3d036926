"""The names of a job's files in the clips folder, written down once.

A finished job owns ``<id>.mp4`` and its poster ``<id>.jpg``. When a server's upload limit is
smaller than the clip, the bot re-encodes a copy ``<id>.fit-<limit>.mp4``, and the encoder
writes that copy's poster beside it (``<id>.fit-<limit>.jpg``). A clip being made lives in
``.partial/<id>-<worker>.mp4`` until it is renamed to its final name.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.encode import poster_beside

CLIP_SUFFIX = ".mp4"
PARTIAL_DIR = ".partial"


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


def job_files(clips_dir: Path, job_id: int) -> list[Path]:
    """Every file of ``job_id``'s finished clip that exists on disk: the clip, its poster,
    and each re-encoded copy with its poster."""
    candidates = [
        clip_path(clips_dir, job_id),
        poster_path(clips_dir, job_id),
        *sorted(clips_dir.glob(f"{job_id}.fit-*")),
    ]
    return [path for path in candidates if path.is_file()]
