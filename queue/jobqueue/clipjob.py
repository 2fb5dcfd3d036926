"""A job in the pipeline's terms, and the pipeline's clip as the job's result.

The worker hands each job to :meth:`pipeline.clip.ClipMaker.make_clip`; these small functions
say what to ask it for (the model for the job's task, the picture to start from
or the clip to extend) and turn what it made into the job's :class:`~jobqueue.models.JobResult`
with the clip files under their final names.
"""

from __future__ import annotations

import os
from pathlib import Path

from jobqueue.clipfiles import clip_path, poster_path
from jobqueue.eta import shape_key
from jobqueue.models import Job, JobKind, JobResult
from pipeline.clip import MadeClip, ModelChoice
from pipeline.encode import poster_beside


def job_model(job: Job, models: ModelChoice) -> str:
    """The model the user picked, else the configured one for the job's task."""
    return job.request.model or models.model_for(job.kind.task)


def start_image(job: Job) -> Path | None:
    """The uploaded picture an Animate job starts from."""
    if job.kind is JobKind.ANIMATE and job.request.image_path:
        return Path(job.request.image_path)
    return None


def clip_to_extend(job: Job, clips_dir: Path) -> Path | None:
    """The parent clip an Extend job continues (it may be gone by now)."""
    if job.kind is JobKind.EXTEND and job.parent_id is not None:
        return clip_path(clips_dir, job.parent_id)
    return None


def job_result(made: MadeClip, clips_dir: Path, job_id: int) -> JobResult:
    """What the queue records for a finished clip, named as it will be once published."""
    request = made.request
    return JobResult(
        result_path=str(clip_path(clips_dir, job_id)),
        width=made.clip.width,
        height=made.clip.height,
        frames=made.clip.frames,
        fps=made.clip.fps,
        seed=request.seed,
        model=request.model,
        steps=request.steps,
        rewritten_prompt=made.prompt.rewritten,
        rewrite_note=made.prompt.note,
        shape_key=shape_key(
            model=request.model,
            width=request.width,
            height=request.height,
            frames=request.frames,
            steps=request.steps,
        ),
        timings=made.timings,
    )


def publish(made: MadeClip, clips_dir: Path, job_id: int) -> None:
    """Give the clip and its poster their final names (poster first: a clip is never seen
    without one)."""
    os.replace(made.clip.poster_path, poster_path(clips_dir, job_id))
    os.replace(made.clip.path, clip_path(clips_dir, job_id))


def discard(partial: Path) -> None:
    """Remove an unpublished clip and its poster, if they are there."""
    partial.unlink(missing_ok=True)
    poster_beside(partial).unlink(missing_ok=True)
