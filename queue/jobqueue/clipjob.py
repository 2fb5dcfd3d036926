"""A job in the pipeline's terms, and the pipeline's clip as the job's result.

Every worker, on the bot's host or on another one behind the broker, hands each job to
:meth:`pipeline.clip.ClipMaker.make_clip` (or, for drafts and Vary, ``make_drafts``) through
:func:`make_job_clip`; the small functions here say what to ask it for (the model for the
job's task, the picture to start from, the clip to extend or the draft to render or vary) and
turn what it made into the job's :class:`~jobqueue.models.JobResult` with the clip files (and a
grid's drafts) under their final names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from jobqueue.clipfiles import clip_path, draft_path, files_beside_grid, poster_path
from jobqueue.eta import shape_key
from jobqueue.models import Job, JobKind, JobResult
from pipeline.clip import (
    ClipMaker,
    MadeClip,
    MadeDrafts,
    ModelChoice,
    PromptScreen,
    StageChange,
)
from pipeline.drafts import as_draft
from pipeline.encode import poster_beside
from pipeline.presets import ModelPreset
from pipeline.preview import PreviewCallback, PreviewScreen
from pipeline.rewrite import PromptRewriter, RewriteResult


class JobProgress(Protocol):
    """Where a running job's stages and steps go, and whether it should stop (the queue's
    :class:`~jobqueue.progress.JobTracker` on every host)."""

    async def stage_changed(self, change: StageChange) -> None: ...

    def step(self, step: int, total_steps: int) -> None: ...

    def should_stop(self) -> bool: ...


@dataclass(frozen=True)
class JobInputs:
    """The files a job starts from, wherever they lie on the host that makes the clip."""

    start_image: Path | None = None
    extend: Path | None = None
    draft: Path | None = None
    """The draft Render and Vary start from (its latents beside it)."""
    end_image: Path | None = None
    """The uploaded picture an Animate job ends on (``end_image``)."""

    @classmethod
    def on_bot_host(cls, job: Job, clips_dir: Path) -> JobInputs:
        """The uploaded pictures, the parent clip and the parent's draft where the bot keeps
        them."""
        return cls(
            start_image(job),
            clip_to_extend(job, clips_dir),
            draft_to_start(job, clips_dir),
            end_image(job),
        )


async def make_job_clip(
    maker: ClipMaker,
    job: Job,
    *,
    model: str,
    inputs: JobInputs,
    output: Path,
    max_bytes: int,
    rewriter: PromptRewriter | None,
    scene: RewriteResult | None,
    screen: PromptScreen,
    progress: JobProgress,
    on_preview: PreviewCallback | None = None,
    preview_screen: PreviewScreen | None = None,
) -> MadeClip:
    """The one pipeline call of ``job``: the same on the bot's host and on a remote worker.

    ``scene`` is the rewrite written while the job waited (the rewriter is then not asked);
    without one, the job's own ``enhance`` decides whether ``rewriter`` rewrites the prompt.
    A drafts or Vary job's clip is its grid, the drafts beside it (:func:`files_beside_grid`).
    ``on_preview`` gets the live previews (from the pipeline's preview thread) that
    ``preview_screen`` (the output safety check's, :meth:`jobqueue.safety.ClipJudge.preview_screen`)
    lets through.
    """
    asked = job.request.as_asked()
    rewrite = rewriter if job.request.enhance else None
    if job.kind.makes_drafts:
        drafts = await maker.make_drafts(
            asked,
            model=model,
            output=lambda _request: output,
            max_bytes=max_bytes,
            near=inputs.draft,
            rewriter=rewrite,
            scene=scene,
            screen=screen,
            on_stage=progress.stage_changed,
            on_step=progress.step,
            on_preview=on_preview,
            preview_screen=preview_screen,
            should_cancel=progress.should_stop,
        )
        return as_made_clip(drafts, maker.models.preset_for(model))
    return await maker.make_clip(
        asked,
        model=model,
        output=lambda _request: output,
        max_bytes=max_bytes,
        start_image=inputs.start_image,
        end_image=inputs.end_image,
        extend=inputs.extend,
        rewriter=rewrite,
        scene=scene,
        screen=screen,
        from_draft=inputs.draft,
        on_stage=progress.stage_changed,
        on_step=progress.step,
        on_preview=on_preview,
        preview_screen=preview_screen,
        should_cancel=progress.should_stop,
    )


def as_made_clip(drafts: MadeDrafts, preset: ModelPreset) -> MadeClip:
    """Drafts as the job's clip: the grid, with the request at the drafts' size and steps
    (what their ETA goes by)."""
    request = as_draft(preset, drafts.request)
    return MadeClip(clip=drafts.grid, request=request, prompt=drafts.prompt, timings=drafts.timings)


def job_model(job: Job, models: ModelChoice) -> str:
    """The model the user picked, else the configured one for the job's task (for a loop or
    an end image, one that can end on a chosen frame)."""
    end_frame = job.request.ends_on_frame
    return job.request.model or models.model_for(job.task, end_frame=end_frame)


def start_image(job: Job) -> Path | None:
    """The picture the job starts from: an Animate job's upload, or the last frame of the
    shot before a storyboard's shot (written beside that shot's clip when it was submitted)."""
    if job.kind in (JobKind.ANIMATE, JobKind.SHOT) and job.request.image_path:
        return Path(job.request.image_path)
    return None


def end_image(job: Job) -> Path | None:
    """The uploaded picture an Animate job ends on."""
    if job.kind is JobKind.ANIMATE and job.request.end_image_path:
        return Path(job.request.end_image_path)
    return None


def clip_to_extend(job: Job, clips_dir: Path) -> Path | None:
    """The parent clip an Extend job continues (it may be gone by now)."""
    if job.kind is JobKind.EXTEND and job.parent_id is not None:
        return clip_path(clips_dir, job.parent_id)
    return None


def draft_to_start(job: Job, clips_dir: Path) -> Path | None:
    """The parent's draft a Render or Vary job starts from (it may be gone by now)."""
    if job.kind.starts_from_draft and job.parent_id is not None and job.request.draft:
        return draft_path(clips_dir, job.parent_id, job.request.draft)
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
    """Give the clip and its poster their final names (a grid's drafts first, then the
    poster: a clip is never seen without them)."""
    final = clip_path(clips_dir, job_id)
    for made_file, final_file in zip(
        files_beside_grid(made.clip.path), files_beside_grid(final), strict=True
    ):
        if made_file.exists():
            os.replace(made_file, final_file)
    os.replace(made.clip.poster_path, poster_path(clips_dir, job_id))
    os.replace(made.clip.path, final)


def discard(partial: Path) -> None:
    """Remove an unpublished clip, its poster and any drafts beside it."""
    for path in (partial, poster_beside(partial), *files_beside_grid(partial)):
        path.unlink(missing_ok=True)
