"""One request in, one encoded clip out: the sequence every maker of clips runs.

:class:`ClipMaker` keeps the video models loaded between clips (at most one text-to-video and
one image-to-video pipeline) and :meth:`ClipMaker.make_clip` takes one request through every
step: resolve it for the model, rewrite its prompt with the rewriter it is given (or take the
scene :func:`write_scene` wrote while the job waited), screen the prompts with the screen it
is given, generate, encode. The queue's worker and ``reelbot generate`` call it; it knows
nothing of queues, Discord or where moderation keeps its lists.
Stages and steps reach the caller through callbacks. A failure the user can act on is a
:class:`~pipeline.errors.ClipFailed` with a sentence for them; a cancelled generation raises
:class:`~pipeline.errors.GenerationCancelled`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from pipeline.encode import ClipMetadata, EncodedClip, encode_mp4, last_frame, read_frames
from pipeline.errors import ClipFailed, StartImageUnreadable
from pipeline.generator import GenerationResult, ProgressCallback, VideoGenerator
from pipeline.presets import ModelPreset, resolve_preset
from pipeline.provenance import ClipFacts, SigningIdentity, credit
from pipeline.request import ClipRequest, ResolvedRequest, resolve_request
from pipeline.rewrite import PromptRewriter, RewriteMode, RewriteResult
from pipeline.text import clean_text

log = logging.getLogger(__name__)

OUT_OF_MEMORY = (
    "The GPU ran out of memory making this clip; try a shorter clip, a smaller size or fewer steps."
)
REWRITE_BLOCKED_NOTE = (
    "Your prompt was used as written: the rewritten one is blocked on this server."
)
CLIP_TO_EXTEND_GONE = "The clip to extend is no longer available; make it again, then extend it."


class ClipStage(StrEnum):
    REWRITING = "rewriting"
    GENERATING = "generating"
    ENCODING = "encoding"


@dataclass(frozen=True)
class ChosenPrompt:
    """The prompt the video model gets, and what became of the rewrite.

    ``rewritten`` is set when the model gets the rewrite; ``note`` says why it gets the
    user's words instead when a rewrite was asked for; ``rewrite`` is the rewriter's answer
    (``None`` when no rewriter was given).
    """

    text: str
    rewritten: str | None = None
    note: str | None = None
    rewrite: RewriteResult | None = None


@dataclass(frozen=True)
class StageChange:
    """The clip entered ``stage``; from generating on, ``prompt`` is settled."""

    stage: ClipStage
    total_steps: int = 0
    prompt: ChosenPrompt | None = None


StageCallback = Callable[[StageChange], Awaitable[None]]
OutputPath = Callable[[ResolvedRequest], Path]
"""Where the MP4 goes, decided once the request is resolved (its seed may name the file)."""


@dataclass(frozen=True)
class ScreenVerdict:
    rewrite_blocked: bool = False
    refusal: str | None = None
    """Set when the user's own prompt is blocked: the sentence the clip fails with."""
    detail: str = ""


class PromptScreen(Protocol):
    """Checks prompts just before they reach the model (a blocklist, for the worker)."""

    async def check(
        self, prompt: str, negative_prompt: str, rewritten: str | None
    ) -> ScreenVerdict: ...


@dataclass(frozen=True)
class ModelChoice:
    """Where the models come from and how they run (plain values from settings)."""

    models_dir: Path
    t2v_model: str
    i2v_model: str
    device: str = "auto"
    cpu_offload: bool = False

    def model_for(self, task: str) -> str:
        """The configured model for ``task`` (``"t2v"`` or ``"i2v"``)."""
        return self.i2v_model if task == "i2v" else self.t2v_model


@dataclass(frozen=True)
class MadeClip:
    """A finished clip: its files, the request as resolved from the user's words (its prompt
    is theirs), the prompt the model got, and seconds per stage (rewrite, load, denoise,
    decode, encode)."""

    clip: EncodedClip
    request: ResolvedRequest
    prompt: ChosenPrompt
    timings: dict[str, float] = field(default_factory=dict)


class ClipMaker:
    """Makes clips with models that stay loaded from one clip to the next."""

    def __init__(self, models: ModelChoice, *, signing: SigningIdentity | None = None) -> None:
        """``signing``: the key that signs each clip's content credentials (None: unsigned)."""
        self.models = models
        self.signing = signing
        self._generators: dict[str, VideoGenerator] = {}

    async def load(self, model: str) -> float:
        """Load ``model`` now rather than for its first clip; the seconds it took."""
        return await asyncio.to_thread(self._generator_for(resolve_preset(model)).load)

    def unload(self) -> None:
        self._generators.clear()
        _release_memory()

    async def make_clip(
        self,
        asked: ClipRequest,
        *,
        model: str,
        output: OutputPath,
        max_bytes: int,
        start_image: Path | None = None,
        extend: Path | None = None,
        rewriter: PromptRewriter | None = None,
        scene: RewriteResult | None = None,
        screen: PromptScreen | None = None,
        on_stage: StageCallback | None = None,
        on_step: ProgressCallback | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> MadeClip:
        """Make the clip ``asked`` for with ``model`` and encode it within ``max_bytes``.

        ``start_image`` is a picture an image-to-video model starts from; ``extend`` a clip
        to continue: its last frame starts the new part and its frames come first. Without a
        ``rewriter`` the model gets the user's words. ``scene`` is a rewrite already written
        (by :func:`write_scene` while the job waited, or by the job's owner): the rewriter is
        not asked, and the scene is screened like any rewrite. Raises ClipFailed
        (InvalidRequest, ModelUnavailable, ClipTooLarge, ...) and GenerationCancelled.
        """
        report = on_stage or _ignore_stage
        preset = resolve_preset(model)
        image = await asyncio.to_thread(_start_image, start_image, extend)
        request = resolve_request(preset, asked, image=image)
        generator = self._generator_for(preset)

        await report(StageChange(ClipStage.REWRITING))
        started = time.perf_counter()
        prompt = await _chosen_prompt(request, preset, rewriter, scene, screen)
        timings = {"rewrite": time.perf_counter() - started}

        await report(StageChange(ClipStage.GENERATING, total_steps=request.steps, prompt=prompt))
        generated = await _generate(
            generator,
            replace(request, prompt=prompt.text),
            on_step=on_step,
            should_cancel=should_cancel,
            timings=timings,
        )

        await report(StageChange(ClipStage.ENCODING))
        metadata = ClipMetadata(
            prompt=request.prompt,
            seed=request.seed,
            model=request.model,
            rewritten_prompt=prompt.rewritten,
        )
        clip = await asyncio.to_thread(
            _encode, generated, extend, output(request), metadata, max_bytes
        )
        timings["encode"] = clip.seconds
        if self.signing is not None:
            facts = ClipFacts.of(model=request.model, seed=request.seed, prompt=request.prompt)
            clip = await asyncio.to_thread(credit, clip, facts, self.signing)
        return MadeClip(clip=clip, request=request, prompt=prompt, timings=timings)

    def _generator_for(self, preset: ModelPreset) -> VideoGenerator:
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
            models_dir=self.models.models_dir,
            device=self.models.device,
            cpu_offload=self.models.cpu_offload,
        )
        self._generators[preset.task] = generator
        return generator


def _start_image(start_image: Path | None, extend: Path | None) -> Image.Image | None:
    if start_image is not None and extend is not None:
        raise ValueError("give a start image or a clip to extend, not both")
    if extend is not None:
        if not extend.is_file():
            raise ClipFailed(CLIP_TO_EXTEND_GONE, f"the clip to extend, {extend}, is not on disk")
        return last_frame(extend)
    if start_image is None:
        return None
    try:
        with Image.open(start_image) as image:
            image.load()
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise StartImageUnreadable(start_image, str(exc)) from exc


async def write_scene(
    asked: ClipRequest,
    *,
    model: str,
    rewriter: PromptRewriter,
    start_image: Path | None = None,
    extend: Path | None = None,
) -> RewriteResult:
    """The rewrite :meth:`ClipMaker.make_clip` would ask ``rewriter`` for, asked now (while
    the job waits) and handed to make_clip later as its ``scene``.

    The seed is the one asked for (0 when the clip's seed is left to chance). Raises
    ClipFailed when the model is unknown or the picture cannot be read.
    """
    preset = resolve_preset(model)
    image = await asyncio.to_thread(_start_image, start_image, extend)
    return await _rewrite(asked.prompt, preset, rewriter, seed=asked.seed or 0, image=image)


async def _rewrite(
    prompt: str,
    preset: ModelPreset,
    rewriter: PromptRewriter,
    *,
    seed: int,
    image: Image.Image | None,
) -> RewriteResult:
    mode: RewriteMode = "i2v" if preset.task == "i2v" else "t2v"
    return await rewriter.rewrite(prompt, mode=mode, seed=seed, image=image)


async def _chosen_prompt(
    request: ResolvedRequest,
    preset: ModelPreset,
    rewriter: PromptRewriter | None,
    scene: RewriteResult | None,
    screen: PromptScreen | None,
) -> ChosenPrompt:
    """The rewrite (``scene``, else the rewriter's) when there is one and the screen allows
    it, else the user's words."""
    rewrite = scene
    if rewrite is None and rewriter is not None:
        rewrite = await _rewrite(
            request.prompt, preset, rewriter, seed=request.seed, image=request.start_image
        )
    # A language model can write anything, control characters included.
    rewritten = clean_text(rewrite.rewritten) if rewrite is not None and rewrite.enhanced else ""
    verdict = ScreenVerdict()
    if screen is not None:
        # The user's own words are checked again: a blocklist may have grown since they asked.
        verdict = await screen.check(request.prompt, request.negative_prompt, rewritten or None)
    if verdict.refusal is not None:
        raise ClipFailed(verdict.refusal, f"prompt blocked at run time: {verdict.detail}")
    if verdict.rewrite_blocked:
        return ChosenPrompt(request.prompt, note=REWRITE_BLOCKED_NOTE, rewrite=rewrite)
    if not rewritten:
        return ChosenPrompt(request.prompt, note=_fallback_note(rewrite), rewrite=rewrite)
    return ChosenPrompt(rewritten, rewritten=rewritten, rewrite=rewrite)


def _fallback_note(rewrite: RewriteResult | None) -> str | None:
    if rewrite is None or rewrite.fallback_reason in (None, "disabled"):
        return None
    return f"Your prompt was used as written ({rewrite.fallback_reason})."


async def _generate(
    generator: VideoGenerator,
    request: ResolvedRequest,
    *,
    on_step: ProgressCallback | None,
    should_cancel: Callable[[], bool] | None,
    timings: dict[str, float],
) -> GenerationResult:
    abandoned = threading.Event()

    def stop() -> bool:
        return abandoned.is_set() or (should_cancel is not None and should_cancel())

    try:
        timings["load"] = await asyncio.to_thread(generator.load)
        generated = await asyncio.to_thread(
            generator.generate, request, on_step=on_step, should_cancel=stop
        )
    except asyncio.CancelledError:
        # The thread cannot be cancelled; stop it at its next step rather than let it finish
        # a clip nobody waits for (Ctrl-C would otherwise wait for the whole generation).
        abandoned.set()
        raise
    except torch.cuda.OutOfMemoryError as exc:
        _release_memory()
        raise ClipFailed(OUT_OF_MEMORY, repr(exc)) from exc
    timings.update(generated.timings)
    return generated


def _encode(
    generated: GenerationResult,
    extend: Path | None,
    path: Path,
    metadata: ClipMetadata,
    max_bytes: int,
) -> EncodedClip:
    frames = generated.frames if extend is None else _continued(extend, generated.frames)
    return encode_mp4(frames, generated.fps, path, metadata=metadata, max_bytes=max_bytes)


def _continued(clip: Path, new_frames: np.ndarray) -> np.ndarray:
    """The clip's frames then the new ones; the first new frame repeats the clip's last."""
    old_frames, _ = read_frames(clip)
    height, width = new_frames.shape[1:3]
    if old_frames.shape[1:3] != (height, width):
        old_frames = np.stack(
            [
                np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.LANCZOS))
                for frame in old_frames
            ]
        )
    return np.concatenate([old_frames, new_frames[1:]])


async def _ignore_stage(change: StageChange) -> None:
    return None


def _release_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
