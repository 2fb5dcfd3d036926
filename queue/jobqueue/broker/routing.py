"""Which worker can run which job: by model, and by the size of the clip.

A job needs the model its request names, else the bot's configured model for its task
(:func:`jobqueue.clipjob.job_model`), and a number of pixels (width x height x frames). A
worker serves a list of models (a local worker: any) up to a size its owner may cap, so an
80 GB card can keep HD renders of the big model while 24 GB cards take the small one.
Models are compared by preset name: a preset's hub id names the same model as the preset.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jobqueue.clipjob import job_model
from jobqueue.models import Job, WorkerInfo
from pipeline.clip import ModelChoice
from pipeline.errors import InvalidRequest
from pipeline.presets import PRESETS, resolve_preset
from pipeline.request import resolve_request


def route_name(model: str) -> str:
    """The name workers and jobs compare: the preset's name for a preset or its hub id."""
    if model in PRESETS:
        return model
    for preset in PRESETS.values():
        if preset.source == model:
            return preset.name
    return model


@dataclass(frozen=True)
class Need:
    """What running one job takes."""

    model: str
    video_pixels: int | None
    """Width x height x frames of the clip; None when the request cannot be resolved (the
    worker then fails it with the reason)."""


def need_of(job: Job, models: ModelChoice) -> Need:
    model = job_model(job, models)
    return Need(route_name(model), _video_pixels(job, model))


def _video_pixels(job: Job, model: str) -> int | None:
    # The start image decides nothing about the shape: resolve as a text-to-video request
    # of the same preset so no picture is needed here.
    preset = dataclasses.replace(resolve_preset(model), task="t2v")
    try:
        resolved = resolve_request(preset, job.request.as_asked())
    except InvalidRequest:
        return None
    return resolved.width * resolved.height * resolved.frames


@dataclass(frozen=True)
class Capability:
    """What a worker can run, and its card."""

    models: tuple[str, ...] | None = None
    """Route names of the models it serves; None: any model."""
    max_video_pixels: int | None = None
    """The largest clip it takes (width x height x frames); None: any size."""
    gpu_total_bytes: int | None = None

    @classmethod
    def serving(
        cls,
        models: Iterable[str],
        *,
        max_video_pixels: int | None = None,
        gpu_total_bytes: int | None = None,
    ) -> Capability:
        names = tuple(dict.fromkeys(route_name(model) for model in models))
        return cls(names, max_video_pixels, gpu_total_bytes)

    @classmethod
    def of_worker(cls, worker: WorkerInfo) -> Capability:
        models = tuple(worker.models) if worker.models is not None else None
        return cls(models, worker.max_video_pixels, worker.gpu_total_bytes)

    @property
    def serves_anything(self) -> bool:
        return self.models is None and self.max_video_pixels is None

    def can_run(self, need: Need) -> bool:
        if self.models is not None and need.model not in self.models:
            return False
        return (
            self.max_video_pixels is None
            or need.video_pixels is None
            or need.video_pixels <= self.max_video_pixels
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "models": list(self.models) if self.models is not None else None,
            "max_video_pixels": self.max_video_pixels,
            "gpu_total_bytes": self.gpu_total_bytes,
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Capability:
        models = data.get("models")
        return cls(
            tuple(str(model) for model in models) if models is not None else None,
            data.get("max_video_pixels"),
            data.get("gpu_total_bytes"),
        )


def anyone_can_run(capabilities: Iterable[Capability], need: Need) -> bool:
    return any(capability.can_run(need) for capability in capabilities)
