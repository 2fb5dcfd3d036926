"""One job's work: rewrite the prompt, generate the frames, encode the MP4.

A :class:`ClipMaker` holds what is expensive to load (the rewriter, and at most one
text-to-video and one image-to-video pipeline) for the worker's whole life. Failures a
user caused or can act on become :class:`JobFailed` with one sentence for them and the
detail for the log; a cancelled or stopped generation raises ``GenerationCancelled``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from jobqueue.eta import shape_key
from jobqueue.models import Job, JobKind, JobResult, Stage
from jobqueue.progress import JobTracker
from jobqueue.screening import PromptScreen
from pipeline.encode import ClipMetadata, ClipTooLarge, encode_mp4, last_frame, read_frames
from pipeline.generator import (
    GenerationResult,
    InvalidRequest,
    ModelUnavailable,
    VideoGenerator,
)
from pipeline.presets import resolve_preset
from pipeline.request import ClipRequest, ResolvedRequest, resolve_request
from pipeline.rewrite import PromptRewriter, RewriteMode, RewriteResult

log = logging.getLogger(__name__)

OUT_OF_MEMORY = (
    "The GPU ran out of memory making this clip; try a shorter clip, a smaller size or fewer steps."
)

REWRITE_BLOCKED_NOTE = (
    "Your prompt was used as written: the rewritten one is blocked on this server."
)


class JobFailed(Exception):
    """The job cannot be done: ``sentence`` is for its user, ``detail`` for the log."""

    def __init__(self, sentence: str, detail: str) -> None:
        super().__init__(sentence)
        self.sentence = sentence
        self.detail = detail


@dataclass(frozen=True)
class ModelChoice:
    """Where the models come from and how they run (plain values from settings)."""

    models_dir: Path
    t2v_model: str
    i2v_model: str
    device: str = "auto"
    cpu_offload: bool = False


@dataclass
class MadeClip:
    """A finished clip still under its temporary name, until :meth:`ClipMaker.publish`."""

    job_id: int
    partial_path: Path
    partial_poster: Path
    final_path: Path
    result: JobResult

    def publish(self) -> None:
        """Give the files their final names (``<job id>.mp4`` and ``.jpg``)."""
        os.replace(self.partial_poster, self.final_path.with_suffix(".jpg"))
        os.replace(self.partial_path, self.final_path)

    def discard(self) -> None:
        self.partial_path.unlink(missing_ok=True)
        self.partial_poster.unlink(missing_ok=True)


@dataclass(frozen=True)
class _Prompt:
    text: str
    rewritten: str | None
    note: str | None


class ClipMaker:
    def __init__(
        self,
        models: ModelChoice,
        *,
        rewriter: PromptRewriter,
        screen: PromptScreen,
        clips_dir: Path,
        max_upload_bytes: int,
    ) -> None:
        self._models = models
        self._rewriter = rewriter
        self._screen = screen
        self._clips_dir = clips_dir
        self._max_upload_bytes = max_upload_bytes
        self._generators: dict[str, VideoGenerator] = {}

    async def warm_up(self) -> None:
        """Load the rewriter and the default text-to-video pipeline before taking jobs."""
        generator = self._generator_for(self._models.t2v_model)
        seconds = await asyncio.to_thread(generator.load)
        rewriter_seconds = await self._rewriter.warm_up()
        log.info(
            "ready: %s loaded in %.1f s, rewriter in %.1f s",
            generator.preset.name,
            seconds,
            rewriter_seconds,
        )

    async def aclose(self) -> None:
        await self._rewriter.aclose()
        self._generators.clear()

    async def make(
        self, job: Job, tracker: JobTracker, *, parent: Job | None, worker_id: str
    ) -> MadeClip:
        """Rewrite, generate and encode ``job``'s clip under a temporary name."""
        generator = self._generator_for(self._model_name(job))
        start_image = await asyncio.to_thread(_start_image, job, parent)
        request = _validated(generator, job, start_image)

        await tracker.stage(Stage.REWRITING)
        rewrite_started = time.perf_counter()
        prompt = await self._prompt(job, generator.preset.task, request.seed)
        request = dataclasses.replace(request, prompt=prompt.text)
        timings = {"rewrite": time.perf_counter() - rewrite_started}

        await tracker.stage(
            Stage.GENERATING,
            total_steps=request.steps,
            rewritten_prompt=prompt.rewritten,
            rewrite_note=prompt.note,
        )
        generated = await self._generate(generator, request, tracker, timings)
        timings.update(generated.timings)

        await tracker.stage(Stage.ENCODING)
        made = await asyncio.to_thread(self._encode, job, generated, prompt, parent, worker_id)
        made.result.timings = timings | made.result.timings
        return made

    def _model_name(self, job: Job) -> str:
        if job.request.model:
            return job.request.model
        return self._models.i2v_model if job.kind.task == "i2v" else self._models.t2v_model

    def _generator_for(self, model: str) -> VideoGenerator:
        preset = resolve_preset(model)
        current = self._generators.get(preset.task)
        if current is not None and current.preset.source == preset.source:
            return current
        if current is not None:
            log.info("replacing %s with %s", current.preset.name, preset.name)
            del self._generators[preset.task]
            del current
            _release_memory()
        generator = VideoGenerator(
            preset,
            models_dir=self._models.models_dir,
            device=self._models.device,
            cpu_offload=self._models.cpu_offload,
        )
        self._generators[preset.task] = generator
        return generator

    async def _prompt(self, job: Job, task: str, seed: int) -> _Prompt:
        """The prompt the model gets: the rewrite when there is one and it is allowed."""
        original = job.request.prompt
        rewrite = await self._rewrite(job, task, seed)
        rewritten = rewrite.rewritten if rewrite is not None and rewrite.enhanced else None
        # The user's own words are checked again: the blocklist may have grown since submit.
        verdict = await self._screen.check(job, rewritten)
        if verdict.refusal is not None:
            raise JobFailed(verdict.refusal, f"prompt blocked at run time: {verdict.detail}")
        if verdict.rewrite_blocked:
            return _Prompt(original, None, REWRITE_BLOCKED_NOTE)
        if rewritten is None:
            return _Prompt(original, None, _fallback_note(rewrite))
        return _Prompt(rewritten, rewritten, None)

    async def _rewrite(self, job: Job, task: str, seed: int) -> RewriteResult | None:
        if not job.request.enhance:
            return None
        mode: RewriteMode = "i2v" if task == "i2v" else "t2v"
        return await self._rewriter.rewrite(job.request.prompt, mode=mode, seed=seed)

    async def _generate(
        self,
        generator: VideoGenerator,
        request: ResolvedRequest,
        tracker: JobTracker,
        timings: dict[str, float],
    ) -> GenerationResult:
        try:
            timings["load"] = await asyncio.to_thread(generator.load)
            return await asyncio.to_thread(
                generator.generate, request, on_step=tracker.step, should_cancel=tracker.should_stop
            )
        except (InvalidRequest, ModelUnavailable) as exc:
            raise JobFailed(str(exc), repr(exc)) from exc
        except torch.cuda.OutOfMemoryError as exc:
            _release_memory()
            raise JobFailed(OUT_OF_MEMORY, repr(exc)) from exc

    def _encode(
        self,
        job: Job,
        generated: GenerationResult,
        prompt: _Prompt,
        parent: Job | None,
        worker_id: str,
    ) -> MadeClip:
        frames = generated.frames
        if job.kind is JobKind.EXTEND and parent is not None and parent.result_path:
            frames = _continued(Path(parent.result_path), frames)
        partial_dir = self._clips_dir / ".partial"
        partial_dir.mkdir(parents=True, exist_ok=True)
        # Named per worker: a worker that lost its lease cannot overwrite the new owner's file.
        partial = partial_dir / f"{job.id}-{worker_id}.mp4"
        metadata = ClipMetadata(
            prompt=job.request.prompt,
            seed=generated.seed,
            model=generated.model,
            rewritten_prompt=prompt.rewritten,
        )
        try:
            clip = encode_mp4(
                frames, generated.fps, partial, metadata=metadata, max_bytes=self._max_upload_bytes
            )
        except ClipTooLarge as exc:
            exc.best.path.unlink(missing_ok=True)
            exc.best.poster_path.unlink(missing_ok=True)
            raise JobFailed(str(exc), repr(exc)) from exc
        final = self._clips_dir / f"{job.id}.mp4"
        result = JobResult(
            result_path=str(final),
            width=clip.width,
            height=clip.height,
            frames=clip.frames,
            fps=clip.fps,
            seed=generated.seed,
            model=generated.model,
            steps=generated.steps,
            rewritten_prompt=prompt.rewritten,
            rewrite_note=prompt.note,
            shape_key=shape_key(
                model=generated.model,
                width=generated.width,
                height=generated.height,
                frames=len(generated.frames),
                steps=generated.steps,
            ),
            timings={"encode": clip.seconds},
        )
        return MadeClip(job.id, clip.path, clip.poster_path, final, result)


def _validated(generator: VideoGenerator, job: Job, image: Image.Image | None) -> ResolvedRequest:
    asked = job.request
    request = ClipRequest(
        prompt=asked.prompt,
        negative_prompt=asked.negative_prompt,
        aspect=asked.aspect,
        frames=asked.frames,
        duration_s=asked.duration_s,
        seed=asked.seed,
        steps=asked.steps,
        guidance=asked.guidance,
        hd=asked.hd,
    )
    try:
        return resolve_request(generator.preset, request, image=image)
    except InvalidRequest as exc:
        raise JobFailed(str(exc), repr(exc)) from exc


def _start_image(job: Job, parent: Job | None) -> Image.Image | None:
    """The image an image-to-video job starts from: the upload, or the parent's last frame."""
    if job.kind is JobKind.EXTEND:
        if parent is None or not parent.result_path or not Path(parent.result_path).exists():
            raise JobFailed(
                "The clip to extend is no longer available; make it again, then extend it.",
                f"parent {job.parent_id} has no clip on disk",
            )
        return last_frame(Path(parent.result_path))
    if job.kind is JobKind.ANIMATE:
        path = job.request.image_path
        try:
            if path is None:
                raise FileNotFoundError("no image_path in the request")
            with Image.open(path) as image:
                image.load()
                return image.convert("RGB")
        except (OSError, UnidentifiedImageError) as exc:
            raise JobFailed(
                "The start image for this clip could not be read; upload it again.", repr(exc)
            ) from exc
    return None


def _continued(parent_path: Path, new_frames: np.ndarray) -> np.ndarray:
    """The parent's frames then the new ones; the first new frame repeats the parent's last."""
    parent_frames, _ = read_frames(parent_path)
    height, width = new_frames.shape[1:3]
    if parent_frames.shape[1:3] != (height, width):
        parent_frames = np.stack(
            [
                np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.LANCZOS))
                for frame in parent_frames
            ]
        )
    return np.concatenate([parent_frames, new_frames[1:]])


def _fallback_note(rewrite: RewriteResult | None) -> str | None:
    if rewrite is None or rewrite.fallback_reason in (None, "disabled"):
        return None
    return f"Your prompt was used as written ({rewrite.fallback_reason})."


def _release_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
