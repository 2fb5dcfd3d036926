"""Frames from a prompt: one loaded diffusers pipeline, reused for every request.

``VideoGenerator.generate`` blocks for the whole run; callers run it in a thread. Progress and
cancellation go through diffusers' ``callback_on_step_end``: a cancelled run stops at the next
step (diffusers still decodes what it has; the frames are thrown away).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from pipeline.errors import GenerationCancelled, InvalidRequest, ModelUnavailable
from pipeline.loading import Placement, load_pipeline
from pipeline.presets import ModelPreset
from pipeline.request import ResolvedRequest

__all__ = [
    "GenerationCancelled",
    "GenerationResult",
    "InvalidRequest",
    "ModelUnavailable",
    "ProgressCallback",
    "VideoGenerator",
]

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]


@dataclass
class GenerationResult:
    """The frames of one clip and the settings that made them (enough to make them again)."""

    frames: np.ndarray  # (F, H, W, 3) uint8
    fps: int
    seed: int
    width: int
    height: int
    steps: int
    guidance: float
    model: str
    timings: dict[str, float] = field(default_factory=dict)  # "denoise", "decode" seconds


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
        # One run at a time: a diffusers pipeline keeps per-call state on itself.
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._pipe is not None

    def load(self) -> float:
        """Load the pipeline if it is not loaded yet; the seconds it took (0 when it was)."""
        with self._lock:
            return self._load_locked()

    def _load_locked(self) -> float:
        if self._pipe is not None:
            return 0.0
        started = time.perf_counter()
        placement = Placement.choose(self._device, cpu_offload=self._cpu_offload)
        self._pipe = load_pipeline(self.preset, models_dir=self._models_dir, placement=placement)
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
        on_step: ProgressCallback | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> GenerationResult:
        """Make the clip's frames; blocks until done. Raises ModelUnavailable,
        GenerationCancelled; ValueError for a request resolved for another model."""
        if request.model != self.preset.name:
            raise ValueError(f"a request for {request.model} given to {self.preset.name}")
        with self._lock:
            self._load_locked()
            return self._run(request, on_step, should_cancel or _never)

    def _run(
        self,
        request: ResolvedRequest,
        on_step: ProgressCallback | None,
        should_cancel: Callable[[], bool],
    ) -> GenerationResult:
        if should_cancel():
            raise GenerationCancelled
        width, height = request.width, request.height
        self._set_flow_shift(self.preset.flow_shift_for(hd=request.hd))
        progress = _StepReporter(request.steps, on_step, should_cancel)
        log.info(
            "generating %dx%d, %d frames, %d steps, seed %d with %s",
            width,
            height,
            request.frames,
            request.steps,
            request.seed,
            self.preset.name,
        )
        output = self._pipe(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            width=width,
            height=height,
            num_frames=request.frames,
            num_inference_steps=request.steps,
            guidance_scale=request.guidance,
            generator=torch.Generator(device="cpu").manual_seed(request.seed),
            output_type="np",
            callback_on_step_end=progress,
            **self._model_specific_inputs(request, width, height),
        )
        finished = time.perf_counter()
        if progress.cancelled:
            raise GenerationCancelled
        return GenerationResult(
            frames=_to_uint8(output.frames[0]),
            fps=request.fps,
            seed=request.seed,
            width=width,
            height=height,
            steps=request.steps,
            guidance=request.guidance,
            model=self.preset.name,
            timings={
                "denoise": progress.last_step_at - progress.started_at,
                "decode": finished - progress.last_step_at,
            },
        )

    def _model_specific_inputs(
        self, request: ResolvedRequest, width: int, height: int
    ) -> dict[str, Any]:
        inputs: dict[str, Any] = {}
        if request.start_image is not None:
            inputs["image"] = fit_image(request.start_image, width, height)
        if self.preset.pipeline_class.startswith("LTX"):
            inputs["frame_rate"] = request.fps
        return inputs

    def _set_flow_shift(self, flow_shift: float | None) -> None:
        scheduler = self._pipe.scheduler
        if flow_shift is None or "flow_shift" not in scheduler.config:
            return
        if scheduler.config.flow_shift != flow_shift:
            self._pipe.scheduler = type(scheduler).from_config(
                scheduler.config, flow_shift=flow_shift
            )


def fit_image(image: Image.Image, width: int, height: int) -> Image.Image:
    """The start image cropped to the clip's aspect ratio (centred) and resized to its size."""
    rgb = ImageOps.exif_transpose(image).convert("RGB")
    return ImageOps.fit(rgb, (width, height), method=Image.Resampling.LANCZOS)


def _to_uint8(frames: np.ndarray) -> np.ndarray:
    return np.asarray(np.clip(np.rint(frames * 255.0), 0, 255), dtype=np.uint8)


def _never() -> bool:
    return False


class _StepReporter:
    """diffusers' ``callback_on_step_end``: reports each step, stops the loop when asked."""

    def __init__(
        self,
        total: int,
        on_step: ProgressCallback | None,
        should_cancel: Callable[[], bool],
    ) -> None:
        self.total = total
        self.on_step = on_step
        self.should_cancel = should_cancel
        self.cancelled = False
        self.started_at = time.perf_counter()
        self.last_step_at = self.started_at

    def __call__(
        self, pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]
    ) -> dict[str, Any]:
        self.last_step_at = time.perf_counter()
        if self.on_step is not None:
            self.on_step(step + 1, self.total)
        if self.should_cancel():
            self.cancelled = True
            pipe._interrupt = True
        return {}
