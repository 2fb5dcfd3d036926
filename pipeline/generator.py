"""Frames from a prompt: one loaded diffusers pipeline, reused for every request.

``VideoGenerator.generate`` blocks for the whole run; callers run it in a thread. Progress,
previews and cancellation go through diffusers' ``callback_on_step_end``: a cancelled run stops
at the next step (diffusers still decodes what it has; the frames are thrown away).
``generate_batch`` makes several clips of one request in one batch, one seed each (drafts);
a :class:`StartLatents` starts a run part-way down the schedule from a finished clip's
latents instead of from pure noise (Render and Vary).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from pipeline.camera import motion_flow_shift
from pipeline.errors import GenerationCancelled, InvalidRequest, ModelUnavailable
from pipeline.levers import check_levers, compile_frames, step_cache_for
from pipeline.loading import Placement, load_pipeline
from pipeline.presets import VACE_PIPELINE, ModelPreset
from pipeline.preview import LivePreview, PreviewCallback, PreviewOptions, PreviewScreen
from pipeline.request import ResolvedRequest

__all__ = [
    "GenerationCancelled",
    "GenerationResult",
    "InvalidRequest",
    "ModelUnavailable",
    "ProgressCallback",
    "StartLatents",
    "VideoGenerator",
    "steps_run",
]

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]
# Wan's VAE packs this many frames into one latent frame (a preview frame shows that long).
FRAMES_PER_LATENT = 4


@dataclass(frozen=True)
class StartLatents:
    """A start part-way down the schedule: ``latents`` (1, C, F, h, w) of a finished clip,
    resized to the run's shape and noised to where the last ``strength`` of the schedule
    begins (1.0 would be pure noise)."""

    latents: torch.Tensor
    strength: float


@dataclass
class GenerationResult:
    """The frames of one clip and the settings that made them (enough to make them again).

    ``latents`` are the final latents (1, C, F, h, w), what a draft keeps for Render and Vary.
    """

    frames: np.ndarray  # (F, H, W, 3) uint8
    fps: int
    seed: int
    width: int
    height: int
    steps: int
    guidance: float
    model: str
    timings: dict[str, float] = field(default_factory=dict)  # "denoise", "decode" seconds
    latents: np.ndarray | None = None


class VideoGenerator:
    """Loads ``preset``'s pipeline once (lazily or with ``load``) and makes clips with it."""

    def __init__(
        self,
        preset: ModelPreset,
        *,
        models_dir: Path,
        device: str = "auto",
        cpu_offload: bool = False,
    ) -> None:
        self.preset = preset
        self._models_dir = models_dir
        self._device = device
        self._cpu_offload = cpu_offload
        self._pipe: Any = None
        self._scheduler: Any = None
        self._cache_key: tuple[object, ...] | None = None
        # One run at a time: a diffusers pipeline keeps per-call state on itself.
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._pipe is not None

    @property
    def pipe(self) -> Any:
        """The loaded diffusers pipeline (None before ``load``)."""
        return self._pipe

    def load(self) -> float:
        """Load the pipeline if it is not loaded yet; the seconds it took (0 when it was).
        Raises ModelUnavailable (LeverUnavailable for a speed lever this machine lacks)."""
        with self._lock:
            return self._load_locked()

    def _load_locked(self) -> float:
        if self._pipe is not None:
            return 0.0
        started = time.perf_counter()
        placement = Placement.choose(self._device, cpu_offload=self._cpu_offload)
        check_levers(
            self.preset.levers,
            device=placement.device,
            cpu_offload=placement.cpu_offload,
            loras=self.preset.loras,
            mag_ratios=self.preset.mag_ratios,
            model=self.preset.name,
        )
        self._pipe = load_pipeline(self.preset, models_dir=self._models_dir, placement=placement)
        self._scheduler = self._pipe.scheduler
        self._adopt_loaded_class(type(self._pipe).__name__)
        seconds = time.perf_counter() - started
        log.info("loaded %s on %s in %.1f s", self.preset.name, placement.device, seconds)
        return seconds

    def _adopt_loaded_class(self, class_name: str) -> None:
        if class_name != self.preset.pipeline_class:
            log.info("%s loaded as a %s", self.preset.name, class_name)
            self.preset = replace(self.preset, pipeline_class=class_name)

    def generate(
        self,
        request: ResolvedRequest,
        *,
        start: StartLatents | None = None,
        on_step: ProgressCallback | None = None,
        on_preview: PreviewCallback | None = None,
        preview: PreviewOptions | None = None,
        preview_screen: PreviewScreen | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> GenerationResult:
        """Make the clip's frames; blocks until done. Raises ModelUnavailable,
        GenerationCancelled; ValueError for a request resolved for another model."""
        (result,) = self.generate_batch(
            request,
            (request.seed,),
            start=start,
            on_step=on_step,
            on_preview=on_preview,
            preview=preview,
            preview_screen=preview_screen,
            should_cancel=should_cancel,
        )
        return result

    def generate_batch(
        self,
        request: ResolvedRequest,
        seeds: Sequence[int],
        *,
        start: StartLatents | None = None,
        on_step: ProgressCallback | None = None,
        on_preview: PreviewCallback | None = None,
        preview: PreviewOptions | None = None,
        preview_screen: PreviewScreen | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> list[GenerationResult]:
        """One clip per seed of ``request``, made together; each equals the clip its seed makes
        alone. Previews (to ``on_preview``, each first passing ``preview_screen`` if given)
        show them side by side."""
        if request.model != self.preset.name:
            raise ValueError(f"a request for {request.model} given to {self.preset.name}")
        with self._lock:
            self._load_locked()
            run = _Run(request, tuple(seeds), start, should_cancel or _never)
            try:
                return self._run(
                    run, on_step, on_preview, preview or PreviewOptions(), preview_screen
                )
            except BaseException:
                self._cache_key = None  # a run that broke off may leave cache state behind
                raise

    def _run(
        self,
        run: _Run,
        on_step: ProgressCallback | None,
        on_preview: PreviewCallback | None,
        preview_options: PreviewOptions,
        preview_screen: PreviewScreen | None,
    ) -> list[GenerationResult]:
        if run.should_cancel():
            raise GenerationCancelled
        request = run.request
        schedule = self._schedule_for(run)
        steps = schedule.steps_run(request.steps)
        self._set_step_cache(steps, skipped=request.steps - steps)
        frames = self._run_frames(request.frames)
        latents = self._start_latents(run, schedule, frames)
        previews = None
        if on_preview is not None:
            frame_ms = round(1000 * FRAMES_PER_LATENT / request.fps)
            previews = LivePreview(
                on_preview,
                preview_options,
                total_steps=steps,
                frame_ms=frame_ms,
                screen=preview_screen,
            )
        progress = _StepReporter(steps, on_step, run.should_cancel, schedule, previews)
        log.info(
            "generating %d x %dx%d, %d frames, %d of %d steps, seed %d with %s",
            len(run.seeds),
            request.width,
            request.height,
            frames,
            steps,
            request.steps,
            request.seed,
            self.preset.name,
        )
        self._pipe.scheduler = schedule.scheduler
        try:
            output = self._pipe(
                **self._batch_inputs(request, run.seeds),
                width=request.width,
                height=request.height,
                num_frames=frames,
                num_inference_steps=request.steps,
                guidance_scale=request.guidance,
                latents=latents,
                output_type="np",
                callback_on_step_end=progress,
                **self._model_specific_inputs(request, frames),
            )
        finally:
            self._pipe.scheduler = self._scheduler
            if previews is not None:
                previews.close()
        finished = time.perf_counter()
        if progress.cancelled:
            raise GenerationCancelled
        timings = {
            "denoise": progress.last_step_at - progress.started_at,
            "decode": finished - progress.last_step_at,
        }
        if previews is not None:
            timings["preview"] = previews.loop_seconds
        final = progress.final_latents
        return [
            GenerationResult(
                frames=_to_uint8(clip[: request.frames]),
                fps=request.fps,
                seed=seed,
                width=request.width,
                height=request.height,
                steps=request.steps,
                guidance=request.guidance,
                model=self.preset.name,
                timings=dict(timings),
                latents=None if final is None else final[index : index + 1].float().cpu().numpy(),
            )
            for index, (seed, clip) in enumerate(zip(run.seeds, output.frames, strict=True))
        ]

    def _schedule_for(self, run: _Run) -> _Schedule:
        """A fresh scheduler for this run: the preset's sampler and flow shift (moved by the
        clip's motion), its start."""
        base = self._scheduler
        shift = motion_flow_shift(
            self.preset.flow_shift_for(hd=run.request.hd),
            run.request.motion,
            sampler=self.preset.sampler,
        )
        if self.preset.sampler == "lcm":
            from diffusers import FlowMatchEulerDiscreteScheduler

            scheduler = FlowMatchEulerDiscreteScheduler(
                shift=shift or 1.0, stochastic_sampling=True
            )
        elif shift is not None and "flow_shift" in base.config:
            scheduler = type(base).from_config(base.config, flow_shift=shift)
        else:
            scheduler = type(base).from_config(base.config)
        strength = 1.0 if run.start is None else run.start.strength
        noise = torch.Generator(device="cpu").manual_seed(run.request.seed)
        return _Schedule(scheduler, strength=strength, noise=noise)

    def _set_step_cache(self, steps: int, *, skipped: int) -> None:
        """The preset's step cache, set up for a run of ``steps`` steps (MagCache's ratios and
        TaylorSeer's warm-up depend on it); fresh state for every run."""
        kind = self.preset.levers.step_cache
        key = (kind, steps, skipped)
        transformer = self._pipe.transformer
        if kind == "off" or key == self._cache_key:
            return
        if transformer.is_cache_enabled:
            transformer.disable_cache()
        transformer.enable_cache(
            step_cache_for(
                kind,
                steps=steps,
                skipped=skipped,
                mag_ratios=self.preset.mag_ratios,
                dtype=transformer.dtype,
            )
        )
        self._cache_key = key

    def _run_frames(self, frames: int) -> int:
        """Frames the model makes for ``frames``: compiled models run at a few fixed lengths."""
        if not self.preset.levers.compile:
            return frames
        return compile_frames(
            frames, frame_step=self.preset.frame_step, max_frames=self.preset.max_frames
        )

    def _start_latents(self, run: _Run, schedule: _Schedule, frames: int) -> torch.Tensor | None:
        """Noised latents to start from, or None for pure noise (the pipeline's own)."""
        if run.start is None:
            return None
        request = run.request
        source = run.start.latents.float()
        scale = self._pipe.vae_scale_factor_spatial
        shape = (
            (frames - 1) // self._pipe.vae_scale_factor_temporal + 1,
            request.height // scale,
            request.width // scale,
        )
        if tuple(source.shape[2:]) != shape:
            source = F.interpolate(source, size=shape, mode="trilinear", align_corners=False)
        sigma = schedule.start_sigma(request.steps)
        noise = torch.cat(
            [
                torch.randn(source.shape, generator=torch.Generator("cpu").manual_seed(seed))
                for seed in run.seeds
            ]
        )
        # Flow matching: a sample at noise level sigma is (1 - sigma) * clean + sigma * noise.
        return (1.0 - sigma) * source + sigma * noise

    def _batch_inputs(self, request: ResolvedRequest, seeds: Sequence[int]) -> dict[str, Any]:
        """The prompts and noise of one clip per seed."""
        generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds]
        if self.preset.pipeline_class == VACE_PIPELINE:
            # diffusers' VACE pipeline takes one prompt and one generator: one clip a call.
            (generator,) = generators
            return {
                "prompt": request.prompt,
                "negative_prompt": request.negative_prompt,
                "generator": generator,
            }
        # One prompt per clip (not num_videos_per_prompt): diffusers' image-to-video
        # pipeline repeats the start image's embedding per prompt only.
        return {
            "prompt": [request.prompt] * len(seeds),
            "negative_prompt": [request.negative_prompt] * len(seeds),
            "generator": generators,
        }

    def _model_specific_inputs(self, request: ResolvedRequest, frames: int) -> dict[str, Any]:
        if self.preset.pipeline_class == VACE_PIPELINE:
            return vace_conditioning(request, frames)
        inputs: dict[str, Any] = {}
        if request.start_image is not None:
            inputs["image"] = fit_image(request.start_image, request.width, request.height)
        if request.end_image is not None:
            # Wan's first-last-frame model: the clip's last frame, fitted like the first.
            inputs["last_image"] = fit_image(request.end_image, request.width, request.height)
        if self.preset.pipeline_class.startswith("LTX"):
            inputs["frame_rate"] = request.fps
        return inputs


@dataclass(frozen=True)
class _Run:
    request: ResolvedRequest
    seeds: tuple[int, ...]
    start: StartLatents | None
    should_cancel: Callable[[], bool]


class _Schedule:
    """A run's scheduler with what diffusers' text-to-video pipelines lack: a start part-way
    down the schedule, and the clean-sample estimate of the last step (for previews).

    The scheduler's own ``set_timesteps`` and ``step`` are wrapped on this instance: the
    pipeline calls them as usual. (diffusers' video-to-video pipeline starts part-way too, but
    runs its transformer outside the cache contexts the step caches need.)
    """

    def __init__(self, scheduler: Any, *, strength: float, noise: torch.Generator) -> None:
        self.scheduler = scheduler
        self.strength = strength
        self._last: tuple[torch.Tensor, torch.Tensor, float] | None = None
        full_schedule = scheduler.set_timesteps
        full_step = scheduler.step
        stochastic = bool(scheduler.config.get("stochastic_sampling", False))

        def set_timesteps(num_inference_steps: int, *args: Any, **kwargs: Any) -> None:
            full_schedule(num_inference_steps, *args, **kwargs)
            skipped = num_inference_steps - self.steps_run(num_inference_steps)
            if skipped:
                scheduler.timesteps = scheduler.timesteps[skipped:]
                scheduler.sigmas = scheduler.sigmas[skipped:]
                scheduler.num_inference_steps = len(scheduler.timesteps)

        def step(
            model_output: torch.Tensor,
            timestep: Any,
            sample: torch.Tensor,
            *args: Any,
            **kwargs: Any,
        ) -> Any:
            if stochastic:
                # Fresh noise each step, drawn from the request's seed: the same clip again.
                kwargs.setdefault("generator", noise)
            result = full_step(model_output, timestep, sample, *args, **kwargs)
            sigma = float(scheduler.sigmas[scheduler.step_index - 1])
            self._last = (model_output, sample, sigma)
            return result

        scheduler.set_timesteps = set_timesteps
        scheduler.step = step

    def steps_run(self, steps: int) -> int:
        return steps_run(steps, self.strength)

    def start_sigma(self, steps: int) -> float:
        """The noise level the run starts at."""
        self.scheduler.set_timesteps(steps)
        return float(self.scheduler.sigmas[0])

    def clean_estimate(self) -> torch.Tensor | None:
        """After a step: the model's estimate of the finished latents. For flow matching the
        prediction is a velocity, and the clean sample is ``x_t - sigma_t * v``."""
        if self._last is None or not self._predicts_velocity():
            return None
        velocity, sample, sigma = self._last
        return sample - sigma * velocity

    def _predicts_velocity(self) -> bool:
        config = self.scheduler.config
        return bool(
            config.get("prediction_type") == "flow_prediction"
            or "FlowMatch" in type(self.scheduler).__name__
        )


def steps_run(steps: int, strength: float) -> int:
    """Of a schedule of ``steps`` steps, how many a run re-running its last ``strength`` takes."""
    if strength >= 1.0:
        return steps
    return max(1, round(steps * strength))


def vace_conditioning(request: ResolvedRequest, frames: int) -> dict[str, Any]:
    """VACE's ``video`` and ``mask`` for a clip from its start image (and end image), as
    diffusers' first-last-frame example gives them: the known frames in place with mask 0
    (keep), grey frames with mask 1 (generate) between them and after the clip's last frame
    when the model makes more ``frames`` than the clip has (they are cut off)."""
    width, height = request.width, request.height
    first = [] if request.start_image is None else [fit_image(request.start_image, width, height)]
    last = [] if request.end_image is None else [fit_image(request.end_image, width, height)]
    between = request.frames - len(first) - len(last)
    after = frames - request.frames
    grey = Image.new("RGB", (width, height), (128, 128, 128))
    keep, generate = Image.new("L", (width, height), 0), Image.new("L", (width, height), 255)
    frames_and_masks = [
        *[(image, keep) for image in first],
        *[(grey, generate)] * between,
        *[(image, keep) for image in last],
        *[(grey, generate)] * after,
    ]
    return {
        "video": [frame for frame, _ in frames_and_masks],
        "mask": [mask for _, mask in frames_and_masks],
    }


def fit_image(image: Image.Image, width: int, height: int) -> Image.Image:
    """The start image cropped to the clip's aspect ratio (centred) and resized to its size."""
    rgb = ImageOps.exif_transpose(image).convert("RGB")
    return ImageOps.fit(rgb, (width, height), method=Image.Resampling.LANCZOS)


def _to_uint8(frames: np.ndarray) -> np.ndarray:
    return np.asarray(np.clip(np.rint(frames * 255.0), 0, 255), dtype=np.uint8)


def _never() -> bool:
    return False


class _StepReporter:
    """diffusers' ``callback_on_step_end``: reports each step, offers previews, keeps the
    final latents, stops the loop when asked."""

    def __init__(
        self,
        total: int,
        on_step: ProgressCallback | None,
        should_cancel: Callable[[], bool],
        schedule: _Schedule,
        previews: LivePreview | None,
    ) -> None:
        self.total = total
        self.on_step = on_step
        self.should_cancel = should_cancel
        self.schedule = schedule
        self.previews = previews
        self.cancelled = False
        self.final_latents: torch.Tensor | None = None
        self.started_at = time.perf_counter()
        self.last_step_at = self.started_at

    def __call__(
        self, pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]
    ) -> dict[str, Any]:
        done = step + 1
        if done == self.total:
            self.final_latents = tensors["latents"]
        if self.previews is not None and self.previews.wants(done):
            clean = self.schedule.clean_estimate()
            if clean is not None:
                self.previews.send(clean)
        self.last_step_at = time.perf_counter()
        if self.on_step is not None:
            self.on_step(done, self.total)
        if self.should_cancel():
            self.cancelled = True
            pipe._interrupt = True
        return {}
