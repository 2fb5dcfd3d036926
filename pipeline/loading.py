"""Loading a preset's diffusers pipeline onto a device, or saying in one sentence why not.

The preset's LoRAs and load-time speed levers are set here (see :mod:`pipeline.levers`); its
placement is one of: on the device, model CPU offload, group offload.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipeline.errors import ModelUnavailable
from pipeline.levers import apply_load_levers, compile_blocks
from pipeline.presets import TINY_SOURCE_PREFIX, ModelPreset
from pipeline.tiny import ensure_tiny_pipeline, tiny_kind

log = logging.getLogger(__name__)

# Words in huggingface_hub / diffusers errors that mean "no network and not cached".
_UNREACHABLE_HINTS = ("offline", "connect", "not fully cached", "cached snapshot", "resolve host")

USE_LOCAL_HINT = (
    "set REELBOT_MODEL (or --model) to a local folder holding a diffusers pipeline, "
    "or use --model tiny to try reelbot without downloading anything"
)


@dataclass(frozen=True)
class Placement:
    """Where the pipeline runs and in which precision."""

    device: torch.device
    dtype: torch.dtype
    cpu_offload: bool

    @classmethod
    def choose(cls, device: str, *, cpu_offload: bool) -> Placement:
        """CUDA with bf16 when present (or asked for), else the CPU in fp32."""
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        resolved = torch.device(device)
        on_gpu = resolved.type == "cuda"
        if cpu_offload and not on_gpu:
            log.info("CPU offload only helps on a GPU; running fully on %s", resolved)
        return cls(
            device=resolved,
            dtype=torch.bfloat16 if on_gpu else torch.float32,
            cpu_offload=cpu_offload and on_gpu,
        )


def load_pipeline(preset: ModelPreset, *, models_dir: Path, placement: Placement) -> Any:
    """The preset's pipeline through ``from_pretrained``, placed; raises ModelUnavailable."""
    source = _local_source(preset, models_dir)
    pipeline_class = _pipeline_class(preset)
    log.info("loading %s (%s) from %s", preset.name, pipeline_class.__name__, source)
    try:
        pipe = pipeline_class.from_pretrained(source, dtype=_dtypes(preset, placement))
    except (OSError, ValueError) as exc:
        raise _unavailable(preset, source, exc) from exc
    apply_load_levers(pipe, preset.levers, preset.loras, fuse_loras=preset.fuse_loras)
    _place(pipe, placement, group_offload=preset.levers.group_offload)
    if preset.levers.compile:
        compile_blocks(pipe)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _place(pipe: Any, placement: Placement, *, group_offload: bool) -> None:
    if group_offload:
        # Layer by layer, prefetched on a CUDA stream: the smallest cards, at a small cost.
        pipe.enable_group_offload(
            onload_device=placement.device,
            offload_device=torch.device("cpu"),
            offload_type="leaf_level",
            use_stream=True,
        )
    elif placement.cpu_offload:
        pipe.enable_model_cpu_offload(device=placement.device)
    else:
        pipe.to(placement.device)


def _local_source(preset: ModelPreset, models_dir: Path) -> str:
    if preset.source.startswith(TINY_SOURCE_PREFIX):
        return str(ensure_tiny_pipeline(models_dir, tiny_kind(preset.source)))
    return preset.source


def _pipeline_class(preset: ModelPreset) -> Any:
    import diffusers

    # Custom models may name a class this diffusers lacks; DiffusionPipeline reads it from
    # model_index.json and says so clearly.
    return getattr(diffusers, preset.pipeline_class, diffusers.DiffusionPipeline)


def _dtypes(preset: ModelPreset, placement: Placement) -> Any:
    if placement.dtype == torch.float32 or not preset.pipeline_class.startswith("Wan"):
        return placement.dtype
    # Wan's authors run the VAE and the CLIP image encoder in fp32: bf16 costs detail.
    return {"default": placement.dtype, "vae": torch.float32, "image_encoder": torch.float32}


def _unavailable(preset: ModelPreset, source: str, exc: Exception) -> ModelUnavailable:
    return ModelUnavailable(
        _why_unavailable(source, exc), f"loading {preset.name} from {source} failed: {exc!r}"
    )


def _why_unavailable(source: str, exc: Exception) -> str:
    folder = Path(source).expanduser()
    if folder.is_dir():
        return (
            f"The folder {folder} does not hold a loadable diffusers pipeline "
            f"({_first_line(exc)}); point REELBOT_MODEL (or --model) at a folder written by "
            "save_pretrained."
        )
    if _looks_like_path(source):
        return f"There is no model folder at {source}; {USE_LOCAL_HINT}."
    if any(hint in str(exc).lower() for hint in _UNREACHABLE_HINTS):
        return (
            f"The model {source} is not in the local cache and the model hub cannot be "
            f"reached; {USE_LOCAL_HINT}."
        )
    return f"The model {source} could not be loaded ({_first_line(exc)}); {USE_LOCAL_HINT}."


def _looks_like_path(source: str) -> bool:
    """Hub ids are ``owner/name``; anything else with slashes is a path."""
    return source.startswith((".", "/", "~")) or source.count("/") > 1 or "\\" in source


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else type(exc).__name__
