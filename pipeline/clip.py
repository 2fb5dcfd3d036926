"""One request in, one encoded clip out: the sequence every maker of clips runs.

:class:`ClipMaker` keeps the video models loaded between clips (at most one text-to-video and
one image-to-video pipeline) and :meth:`ClipMaker.make_clip` takes one request through every
step: resolve it for the model, rewrite its prompt with the rewriter it is given (or take the
scene :func:`write_scene` wrote while the job waited), screen the prompts with the screen it
is given, generate, encode. :meth:`ClipMaker.make_drafts` makes four quick drafts of a
request (or, ``near`` one draft, four new ones: Vary) and ``make_clip(from_draft=...)`` renders
one of them at full quality, keeping its composition and motion (Render). The queue's worker
and ``reelbot generate`` call it; it knows nothing of queues, Discord or where moderation
keeps its lists. Stages, steps and live previews reach the caller through callbacks. A
failure the user can act on is a :class:`~pipeline.errors.ClipFailed` with a sentence for
them; a cancelled generation raises :class:`~pipeline.errors.GenerationCancelled`.
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
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from pipeline.camera import directed_prompt, idea_with_direction
from pipeline.drafts import (
    DRAFT_COUNT,
    DraftClip,
    DraftLatents,
    as_draft,
    check_drafts,
    draft_seeds,
    encode_drafts,
    load_latents,
    shaped_like,
)
from pipeline.encode import ClipMetadata, EncodedClip, encode_mp4, last_frame, read_frames
from pipeline.errors import ClipFailed, StartImageUnreadable
from pipeline.generator import (
    GenerationResult,
    ProgressCallback,
    StartLatents,
    VideoGenerator,
    steps_run,
)
from pipeline.levers import LeverSettings
from pipeline.presets import ModelPreset, end_frame_model, resolve_preset
from pipeline.preview import DEFAULT_PREVIEW, PreviewCallback, PreviewOptions, PreviewScreen
from pipeline.provenance import ClipFacts, SigningIdentity, credit
from pipeline.request import ClipRequest, ResolvedRequest, resolve_request
from pipeline.rewrite import PromptRewriter, RewriteMode, RewriteResult
from pipeline.safety.sampling import keep_samples
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
    levers: LeverSettings = field(default_factory=LeverSettings)
    end_frame_model: str = ""
    """The model for image-to-video clips that end on a chosen frame when ``i2v_model``
    cannot (empty: none)."""

    def model_for(self, task: str, *, end_frame: bool = False) -> str:
        """The configured model for ``task`` (``"t2v"`` or ``"i2v"``); ``end_frame``: for a
        clip that ends on a chosen frame (a loop or an end image)."""
        if task != "i2v":
            return self.t2v_model
        if end_frame:
            return end_frame_model(self.i2v_model, self.end_frame_model) or self.i2v_model
        return self.i2v_model

    def preset_for(self, model: str) -> ModelPreset:
        """``model``'s preset with the server's speed levers (and LoRA, for the text-to-video
        model) over its own."""
        preset = resolve_preset(model)
        loras = self.levers.loras() if preset.task == "t2v" else None
        return replace(
            preset,
            levers=self.levers.applied_to(preset.levers),
            loras=preset.loras if loras is None else loras,
            fuse_loras=preset.fuse_loras or self.levers.fuse_lora,
        )


@dataclass(frozen=True)
class MadeClip:
    """A finished clip: its files, the request as resolved from the user's words (its prompt
    is theirs), the prompt the model got, and seconds per stage (rewrite, load, denoise,
    decode, encode)."""

    clip: EncodedClip
    request: ResolvedRequest
    prompt: ChosenPrompt
    timings: dict[str, float] = field(default_factory=dict)
    safety_frames: np.ndarray | None = field(default=None, compare=False, repr=False)
    """Frames spread over the clip, shrunk for the output safety check, kept from just before
    encoding (when the maker was asked to keep them): the check need not decode the file.
    None: it reads the file."""


@dataclass(frozen=True)
class MadeDrafts:
    """Four drafts: the labelled grid, each draft (number N is ``drafts[N - 1]``, its latents
    beside it for Render and Vary), their seeds, the request as resolved from the user's words
    at full size (what Render N makes), the prompt the model got, and seconds per stage."""

    grid: EncodedClip
    drafts: tuple[EncodedClip, ...]
    seeds: tuple[int, ...]
    request: ResolvedRequest
    prompt: ChosenPrompt
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _Job:
    """A clip or drafts on their way: what :meth:`ClipMaker._prepare` settled."""

    preset: ModelPreset
    generator: VideoGenerator
    draft: DraftLatents | None
    request: ResolvedRequest
    prompt: ChosenPrompt
    timings: dict[str, float]


class ClipMaker:
    """Makes clips with models that stay loaded from one clip to the next."""

    def __init__(
        self,
        models: ModelChoice,
        *,
        signing: SigningIdentity | None = None,
        preview: PreviewOptions | None = DEFAULT_PREVIEW,
        safety_frame_count: int = 0,
    ) -> None:
        """``signing``: the key that signs each clip's content credentials (None: unsigned);
        ``preview``: how often and how big live previews are (None: no previews, whatever
        ``on_preview`` callbacks are given); ``safety_frame_count``: how many frames of each clip
        :meth:`make_clip` keeps for the output safety check (0: none)."""
        self.models = models
        self.signing = signing
        self.preview = preview
        self.safety_frame_count = safety_frame_count
        self._generators: dict[str, VideoGenerator] = {}

    async def load(self, model: str) -> float:
        """Load ``model`` now rather than for its first clip; the seconds it took."""
        return await asyncio.to_thread(self._generator_for(self.models.preset_for(model)).load)

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
        end_image: Path | None = None,
        extend: Path | None = None,
        rewriter: PromptRewriter | None = None,
        scene: RewriteResult | None = None,
        screen: PromptScreen | None = None,
        from_draft: Path | None = None,
        on_stage: StageCallback | None = None,
        on_step: ProgressCallback | None = None,
        on_preview: PreviewCallback | None = None,
        preview_screen: PreviewScreen | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> MadeClip:
        """Make the clip ``asked`` for with ``model`` and encode it within ``max_bytes``.

        ``start_image`` is a picture an image-to-video model starts from, ``end_image`` one a
        first-last-frame model ends on (a loop ends on the start image); ``extend`` a clip
        to continue: its last frame starts the new part and its frames come first. Without a
        ``rewriter`` the model gets the user's words. ``scene`` is a rewrite already written
        (by :func:`write_scene` while the job waited, or by the job's owner): the rewriter is
        not asked, and the scene is screened like any rewrite. ``from_draft`` is a draft from
        :meth:`make_drafts` to render at full quality (Render): the clip keeps its
        composition, motion, length and aspect. ``on_preview`` gets a small animated WebP of
        the clip forming every few steps (from the preview thread), each one that
        ``preview_screen`` (if given) lets through. Raises ClipFailed
        (InvalidRequest, ModelUnavailable, ClipTooLarge, ...) and GenerationCancelled.
        """
        report = on_stage or _ignore_stage
        job = await self._prepare(
            asked,
            model=model,
            draft_path=from_draft,
            start_image=start_image,
            end_image=end_image,
            extend=extend,
            prompting=(rewriter, scene, screen),
            report=report,
        )
        request, prompt, timings = job.request, job.prompt, job.timings
        (generated,) = await self._generate(
            job,
            replace(request, prompt=prompt.text),
            strength=job.preset.render_strength,
            on_step=on_step,
            on_preview=on_preview,
            preview_screen=preview_screen,
            should_cancel=should_cancel,
            report=report,
        )

        await report(StageChange(ClipStage.ENCODING))
        metadata = ClipMetadata(
            prompt=request.prompt,
            seed=request.seed,
            model=request.model,
            rewritten_prompt=prompt.rewritten,
        )
        clip, kept = await asyncio.to_thread(
            _encode,
            generated,
            extend,
            output(request),
            metadata,
            max_bytes,
            self.safety_frame_count,
        )
        timings["encode"] = clip.seconds
        if self.signing is not None:
            facts = ClipFacts.of(model=request.model, seed=request.seed, prompt=request.prompt)
            clip = await asyncio.to_thread(credit, clip, facts, self.signing)
        return MadeClip(clip, request, prompt, timings, safety_frames=kept)

    async def make_drafts(
        self,
        asked: ClipRequest,
        *,
        model: str,
        output: OutputPath,
        max_bytes: int,
        near: Path | None = None,
        count: int = DRAFT_COUNT,
        start_image: Path | None = None,
        rewriter: PromptRewriter | None = None,
        scene: RewriteResult | None = None,
        screen: PromptScreen | None = None,
        on_stage: StageCallback | None = None,
        on_step: ProgressCallback | None = None,
        on_preview: PreviewCallback | None = None,
        preview_screen: PreviewScreen | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> MadeDrafts:
        """Make ``count`` quick drafts of the clip ``asked`` for, in one batch: a labelled
        grid at the path ``output`` gives, each draft beside it (``draft_beside``) with its
        latents. ``near`` is a draft to vary (Vary): the new drafts start from it, with new
        seeds. The other arguments are :meth:`make_clip`'s; previews show the drafts 2x2.
        Raises ClipFailed (also for a model that cannot make drafts) and GenerationCancelled.
        """
        if not 1 <= count <= DRAFT_COUNT:
            raise ValueError(f"make 1 to {DRAFT_COUNT} drafts, not {count}")
        report = on_stage or _ignore_stage
        check_drafts(self.models.preset_for(model))
        job = await self._prepare(
            asked,
            model=model,
            draft_path=near,
            start_image=start_image,
            end_image=None,
            extend=None,
            prompting=(rewriter, scene, screen),
            report=report,
        )
        request, prompt, timings = job.request, job.prompt, job.timings
        drafted = replace(as_draft(job.preset, request), prompt=prompt.text)
        seeds = draft_seeds(request.seed, count)
        generated = await self._generate(
            job,
            drafted,
            strength=job.preset.vary_strength,
            seeds=seeds,
            on_step=on_step,
            on_preview=on_preview,
            preview_screen=preview_screen,
            should_cancel=should_cancel,
            report=report,
        )

        await report(StageChange(ClipStage.ENCODING))
        started = time.perf_counter()
        grid, drafts = await asyncio.to_thread(
            encode_drafts,
            [DraftClip(g.seed, g.frames, _latents(g)) for g in generated],
            drafted,
            output(request),
            ClipMetadata(request.prompt, request.seed, request.model, prompt.rewritten),
            max_bytes,
        )
        timings["encode"] = time.perf_counter() - started
        if self.signing is not None:
            grid, drafts = await asyncio.to_thread(self._signed_drafts, grid, drafts, request)
        return MadeDrafts(grid, drafts, seeds, request, prompt, timings)

    async def _prepare(
        self,
        asked: ClipRequest,
        *,
        model: str,
        draft_path: Path | None,
        start_image: Path | None,
        end_image: Path | None,
        extend: Path | None,
        prompting: tuple[PromptRewriter | None, RewriteResult | None, PromptScreen | None],
        report: StageCallback,
    ) -> _Job:
        """Everything before generating: the model, the draft to start from (its shape
        decides the clip's), the request resolved, the prompt rewritten and screened."""
        preset = self.models.preset_for(model)
        draft = await _draft(preset, draft_path)
        if draft is not None:
            asked = shaped_like(asked, draft)
        image = await asyncio.to_thread(_start_image, start_image, extend)
        last = None if end_image is None else await asyncio.to_thread(_end_image, end_image)
        request = resolve_request(preset, asked, image=image, end_image=last)
        generator = self._generator_for(preset)
        prompt, timings = await _prompt(request, preset, *prompting, report)
        return _Job(preset, generator, draft, request, prompt, timings)

    async def _generate(
        self,
        job: _Job,
        request: ResolvedRequest,
        *,
        strength: float,
        seeds: tuple[int, ...] | None = None,
        on_step: ProgressCallback | None,
        on_preview: PreviewCallback | None,
        preview_screen: PreviewScreen | None,
        should_cancel: Callable[[], bool] | None,
        report: StageCallback,
    ) -> list[GenerationResult]:
        """The clip of ``request`` (or one per seed, in a batch), from the job's draft when it
        has one: the last ``strength`` of the schedule re-run from it."""
        start = None if job.draft is None else _start(job.draft, strength)
        steps = steps_run(request.steps, 1.0 if start is None else start.strength)
        await report(StageChange(ClipStage.GENERATING, total_steps=steps, prompt=job.prompt))
        generator = job.generator

        def run(stop: Callable[[], bool]) -> list[GenerationResult]:
            options: dict[str, Any] = {
                "start": start,
                "on_step": on_step,
                "on_preview": on_preview if self.preview else None,
                "preview": self.preview,
                "preview_screen": preview_screen,
                "should_cancel": stop,
            }
            if seeds is None:
                return [generator.generate(request, **options)]
            return generator.generate_batch(request, seeds, **options)

        return await _generate(generator, run, should_cancel=should_cancel, timings=job.timings)

    def _signed_drafts(
        self, grid: EncodedClip, drafts: tuple[EncodedClip, ...], request: ResolvedRequest
    ) -> tuple[EncodedClip, tuple[EncodedClip, ...]]:
        assert self.signing is not None
        seeds = draft_seeds(request.seed, len(drafts))

        def signed(clip: EncodedClip, seed: int) -> EncodedClip:
            facts = ClipFacts.of(model=request.model, seed=seed, prompt=request.prompt)
            assert self.signing is not None
            return credit(clip, facts, self.signing)

        return signed(grid, request.seed), tuple(map(signed, drafts, seeds))

    def _generator_for(self, preset: ModelPreset) -> VideoGenerator:
        current = self._generators.get(preset.task)
        if current is not None and current.preset.load_key == preset.load_key:
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
    return _picture(start_image, which="start image")


def _end_image(end_image: Path) -> Image.Image:
    return _picture(end_image, which="end image")


def _picture(path: Path, *, which: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise StartImageUnreadable(path, str(exc), which=which) from exc


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
    idea = idea_with_direction(asked.prompt, asked.camera, asked.motion)
    return await _rewrite(idea, preset, rewriter, seed=asked.seed or 0, image=image)


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


async def _draft(preset: ModelPreset, path: Path | None) -> DraftLatents | None:
    """The draft at ``path`` to start from (None for none); ClipFailed when it is gone or
    the model cannot render drafts."""
    if path is None:
        return None
    check_drafts(preset)
    return await asyncio.to_thread(load_latents, path)


def _start(draft: DraftLatents, strength: float) -> StartLatents:
    return StartLatents(torch.from_numpy(draft.latents), strength)


def _latents(generated: GenerationResult) -> np.ndarray:
    if generated.latents is None:
        raise RuntimeError("a finished draft has no latents")
    return generated.latents


async def _prompt(
    request: ResolvedRequest,
    preset: ModelPreset,
    rewriter: PromptRewriter | None,
    scene: RewriteResult | None,
    screen: PromptScreen | None,
    report: StageCallback,
) -> tuple[ChosenPrompt, dict[str, float]]:
    """The rewriting stage: the prompt the model gets, and the seconds it took."""
    await report(StageChange(ClipStage.REWRITING))
    started = time.perf_counter()
    prompt = _directed(await _chosen_prompt(request, preset, rewriter, scene, screen), request)
    return prompt, {"rewrite": time.perf_counter() - started}


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
        idea = idea_with_direction(request.prompt, request.camera, request.motion)
        rewrite = await _rewrite(
            idea, preset, rewriter, seed=request.seed, image=request.start_image
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


def _directed(prompt: ChosenPrompt, request: ResolvedRequest) -> ChosenPrompt:
    """``prompt`` with the camera and motion sentences after it, after the rewrite and its
    screening: a rewrite cannot lose them, and the model follows them written out."""
    text = directed_prompt(prompt.text, request.camera, request.motion)
    rewritten = None if prompt.rewritten is None else text
    return replace(prompt, text=text, rewritten=rewritten)


def _fallback_note(rewrite: RewriteResult | None) -> str | None:
    if rewrite is None or rewrite.fallback_reason in (None, "disabled"):
        return None
    return f"Your prompt was used as written ({rewrite.fallback_reason})."


async def _generate(
    generator: VideoGenerator,
    run: Callable[[Callable[[], bool]], list[GenerationResult]],
    *,
    should_cancel: Callable[[], bool] | None,
    timings: dict[str, float],
) -> list[GenerationResult]:
    """``run(stop)`` in a thread once the model is loaded; ``stop`` says when to stop."""
    abandoned = threading.Event()

    def stop() -> bool:
        return abandoned.is_set() or (should_cancel is not None and should_cancel())

    try:
        timings["load"] = await asyncio.to_thread(generator.load)
        generated = await asyncio.to_thread(run, stop)
    except asyncio.CancelledError:
        # The thread cannot be cancelled; stop it at its next step rather than let it finish
        # a clip nobody waits for (Ctrl-C would otherwise wait for the whole generation).
        abandoned.set()
        raise
    except torch.cuda.OutOfMemoryError as exc:
        _release_memory()
        raise ClipFailed(OUT_OF_MEMORY, repr(exc)) from exc
    timings.update(generated[0].timings)
    return generated


def _encode(
    generated: GenerationResult,
    extend: Path | None,
    path: Path,
    metadata: ClipMetadata,
    max_bytes: int,
    safety_frame_count: int,
) -> tuple[EncodedClip, np.ndarray | None]:
    """The encoded clip, and ``safety_frame_count`` of its frames kept for the safety check."""
    frames = generated.frames if extend is None else _continued(extend, generated.frames)
    clip = encode_mp4(frames, generated.fps, path, metadata=metadata, max_bytes=max_bytes)
    # Judging the frames before encoding judges the file: the encoder may shrink the clip or
    # lower its quality to fit, but every frame shows what it showed here.
    kept = keep_samples(frames, safety_frame_count) if safety_frame_count > 0 else None
    return clip, kept


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
