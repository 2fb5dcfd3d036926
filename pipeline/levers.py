"""Speed levers: diffusers' own ways to make a clip faster or fit a smaller card.

Each lever is a field of a model preset (:class:`SpeedLevers`, :class:`LoraWeights`) and a
setting (:class:`LeverSettings`, read at the entry points). :func:`check_levers` says in one
sentence, before any weights load, when this machine lacks what a lever needs;
:func:`apply_load_levers` sets the levers that belong to a loaded pipeline (LoRAs, attention
backend, VAE tiling and slicing, regional compilation) and :func:`step_cache_for` builds the
step cache for one run (MagCache's ratios depend on the run's step count).
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch

from pipeline.errors import ModelUnavailable

log = logging.getLogger(__name__)

StepCache = Literal["off", "first-block", "taylorseer", "mag"]
Attention = Literal["native", "flash", "flash3", "sage", "cudnn"]
STEP_CACHES: tuple[str, ...] = get_args(StepCache)
ATTENTION_BACKENDS: tuple[str, ...] = get_args(Attention)
FROM_PRESET = "preset"
"""A setting's value that leaves the choice to the model's preset."""

# diffusers' names for the attention backends, and the package each needs.
_DIFFUSERS_BACKEND = {
    "flash": "flash",
    "flash3": "_flash_3",
    "sage": "sage",
    "cudnn": "_native_cudnn",
}
_BACKEND_PACKAGE = {
    "flash": "flash_attn",
    "flash3": "flash_attn_interface",
    "sage": "sageattention",
}
_BACKEND_INSTALL = {"flash": "flash-attn", "flash3": "flash-attn 3", "sage": "sageattention"}

# MagCache's settings for Wan from its authors (threshold 0.12, at most 2 steps skipped in a
# row, the first 20 % of steps always computed).
MAG_THRESHOLD = 0.12
MAG_MAX_SKIPS = 2
MAG_RETENTION = 0.2
# TaylorSeer: a full forward every 5 steps, none predicted in the first fifth of the run.
TAYLORSEER_INTERVAL = 5
TAYLORSEER_WARMUP = 0.2
# Regional compilation compiles one transformer block per input shape: frame counts are rounded
# up to one of a few lengths (and cut back after decoding) so a busy bot compiles each size a
# handful of times, not once per request. Dynamo's own limit is raised to match.
COMPILE_FRAME_BUCKET = 16
COMPILE_CACHE_LIMIT = 64


@dataclass(frozen=True)
class LoraWeights:
    """A LoRA loaded into the pipeline: a hub repository or a local file or folder.

    ``weight_name`` is the file inside a repository or folder (``None``: the single LoRA file
    there); ``scale`` its strength.
    """

    source: str
    weight_name: str | None = None
    scale: float = 1.0

    @classmethod
    def parse(cls, text: str, *, scale: float = 1.0) -> LoraWeights:
        """``owner/repo``, ``owner/repo/path/in/repo.safetensors`` or a local file or folder."""
        path = Path(text).expanduser()
        if path.is_file():
            return cls(str(path.parent), weight_name=path.name, scale=scale)
        if path.is_dir() or text.startswith((".", "/", "~")):
            return cls(str(path), scale=scale)
        owner, _, rest = text.partition("/")
        repo, _, weight_name = rest.partition("/")
        return cls(f"{owner}/{repo}", weight_name=weight_name or None, scale=scale)

    def describe(self) -> str:
        return f"{self.source}/{self.weight_name}" if self.weight_name else self.source


@dataclass(frozen=True)
class SpeedLevers:
    """How a preset's pipeline runs. All off is plain diffusers."""

    step_cache: StepCache = "off"
    compile: bool = False
    attention: Attention = "native"
    vae_tiling: bool = False
    vae_slicing: bool = False
    group_offload: bool = False


@dataclass(frozen=True)
class LeverSettings:
    """The server's settings for the levers: ``preset`` leaves a choice to the model's preset;
    a boolean that is on turns its lever on for every model. ``lora`` (with its scale and
    whether to fuse it) replaces the text-to-video preset's LoRAs when set."""

    step_cache: str = FROM_PRESET
    attention: str = FROM_PRESET
    compile: bool = False
    vae_tiling: bool = False
    vae_slicing: bool = False
    group_offload: bool = False
    lora: str = ""
    lora_scale: float = 1.0
    fuse_lora: bool = False

    def applied_to(self, levers: SpeedLevers) -> SpeedLevers:
        """``levers`` with these settings over them; raises ValueError for an unknown name."""
        return SpeedLevers(
            step_cache=_chosen(self.step_cache, levers.step_cache, STEP_CACHES, "step cache"),
            compile=levers.compile or self.compile,
            attention=_chosen(self.attention, levers.attention, ATTENTION_BACKENDS, "attention"),
            vae_tiling=levers.vae_tiling or self.vae_tiling,
            vae_slicing=levers.vae_slicing or self.vae_slicing,
            group_offload=levers.group_offload or self.group_offload,
        )

    def loras(self) -> tuple[LoraWeights, ...] | None:
        """The LoRA this setting names, or None to keep the preset's."""
        if not self.lora.strip():
            return None
        return (LoraWeights.parse(self.lora.strip(), scale=self.lora_scale),)


def _chosen(setting: str, preset_value: Any, allowed: tuple[str, ...], what: str) -> Any:
    if setting == FROM_PRESET:
        return preset_value
    if setting not in allowed:
        choices = ", ".join((FROM_PRESET, *allowed))
        raise ValueError(f"unknown {what} {setting!r}; choose one of {choices}")
    return setting


class LeverUnavailable(ModelUnavailable):
    """A speed lever this machine cannot pull; the message says which and what to do."""


def check_levers(
    levers: SpeedLevers,
    *,
    device: torch.device,
    cpu_offload: bool,
    loras: tuple[LoraWeights, ...],
    mag_ratios: tuple[float, ...] | None,
    model: str,
) -> None:
    """Raise LeverUnavailable with one sentence when a lever cannot run here."""
    on_gpu = device.type == "cuda"
    if levers.compile and not on_gpu:
        _refuse(
            "Compiling the model (REELBOT_COMPILE) needs a CUDA GPU; this worker runs "
            f"on {device.type}, so turn it off."
        )
    if levers.group_offload and not on_gpu:
        _refuse(
            "Group offloading (REELBOT_GROUP_OFFLOAD) moves the model between a GPU and "
            f"memory, and this worker runs on {device.type}; turn it off."
        )
    if levers.group_offload and cpu_offload:
        _refuse(
            "Group offloading and REELBOT_CPU_OFFLOAD both move the model out of GPU "
            "memory; turn one of them off."
        )
    if levers.attention != "native":
        _check_attention(levers.attention, on_gpu=on_gpu)
    if levers.step_cache == "mag" and not mag_ratios:
        _refuse(
            f"MagCache needs magnitude ratios measured for the model, and none are known "
            f"for {model}; set REELBOT_STEP_CACHE to first-block, taylorseer or off."
        )
    if loras and importlib.util.find_spec("peft") is None:
        _refuse("Loading a LoRA needs the peft package; install it with `pip install peft`.")


def _check_attention(backend: str, *, on_gpu: bool) -> None:
    if not on_gpu:
        _refuse(
            f"The {backend} attention backend (REELBOT_ATTENTION) needs a CUDA GPU; set "
            "REELBOT_ATTENTION=native on this machine."
        )
    package = _BACKEND_PACKAGE.get(backend)
    if package is not None and importlib.util.find_spec(package) is None:
        _refuse(
            f"The {backend} attention backend needs {_BACKEND_INSTALL[backend]}, which is "
            "not installed; install it or set REELBOT_ATTENTION=native."
        )


def _refuse(sentence: str) -> None:
    raise LeverUnavailable(sentence)


def apply_load_levers(
    pipe: Any, levers: SpeedLevers, loras: tuple[LoraWeights, ...], *, fuse_loras: bool
) -> None:
    """Set the levers that belong to the loaded pipeline (before it is placed on a device)."""
    if loras:
        _load_loras(pipe, loras, fuse=fuse_loras)
    if levers.attention != "native":
        pipe.transformer.set_attention_backend(_DIFFUSERS_BACKEND[levers.attention])
    if levers.vae_tiling:
        pipe.vae.enable_tiling()
    if levers.vae_slicing:
        pipe.vae.enable_slicing()


def compile_blocks(pipe: Any) -> None:
    """Regional compilation: each repeated transformer block is compiled once per shape."""
    torch._dynamo.config.cache_size_limit = max(
        torch._dynamo.config.cache_size_limit, COMPILE_CACHE_LIMIT
    )
    pipe.transformer.compile_repeated_blocks(fullgraph=True)


def _load_loras(pipe: Any, loras: tuple[LoraWeights, ...], *, fuse: bool) -> None:
    names = [f"reelbot{index}" for index in range(len(loras))]
    for name, lora in zip(names, loras, strict=True):
        log.info("loading the LoRA %s (scale %g)", lora.describe(), lora.scale)
        try:
            pipe.load_lora_weights(lora.source, weight_name=lora.weight_name, adapter_name=name)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelUnavailable(
                f"The LoRA {lora.describe()} could not be loaded ({_first_line(exc)}); check "
                "REELBOT_LORA or the preset's LoRA.",
                f"loading the LoRA {lora.describe()} failed: {exc!r}",
            ) from exc
    pipe.set_adapters(names, [lora.scale for lora in loras])
    if fuse:
        # Fused into the weights, a LoRA costs nothing per step; its layers are then dropped.
        pipe.fuse_lora(adapter_names=names, lora_scale=1.0)
        pipe.unload_lora_weights()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].rstrip(".") if text else type(exc).__name__


def step_cache_for(
    kind: StepCache,
    *,
    steps: int,
    skipped: int,
    mag_ratios: tuple[float, ...] | None,
    dtype: torch.dtype,
) -> Any:
    """The diffusers cache config for a run of ``steps`` steps that starts ``skipped`` steps
    into a longer schedule (a render from a draft), or None for ``off``."""
    from diffusers import FirstBlockCacheConfig, MagCacheConfig, TaylorSeerCacheConfig

    if kind == "off":
        return None
    if kind == "first-block":
        return FirstBlockCacheConfig()
    if kind == "taylorseer":
        # The lite variant predicts the final projection and skips every block in between;
        # the default patterns end in "attn" and miss Wan's attn1/attn2 altogether.
        return TaylorSeerCacheConfig(
            cache_interval=TAYLORSEER_INTERVAL,
            disable_cache_before_step=max(1, round(steps * TAYLORSEER_WARMUP)),
            taylor_factors_dtype=dtype,
            use_lite_mode=True,
        )
    assert mag_ratios is not None  # check_levers refused MagCache without ratios
    ratios = _resampled(mag_ratios, steps + skipped)[skipped:]
    return MagCacheConfig(
        threshold=MAG_THRESHOLD,
        max_skip_steps=MAG_MAX_SKIPS,
        retention_ratio=MAG_RETENTION,
        num_inference_steps=steps,
        mag_ratios=ratios.tolist(),
    )


def _resampled(curve: tuple[float, ...], length: int) -> np.ndarray:
    """The ratio curve at ``length`` points (nearest neighbour, as MagCache's authors do)."""
    source = np.asarray(curve, dtype=np.float64)
    if length == 1:
        return source[-1:]
    positions = np.round(np.arange(length) * (len(source) - 1) / (length - 1)).astype(int)
    return source[positions]


def compile_frames(frames: int, *, frame_step: int, max_frames: int) -> int:
    """The frame count a compiled model runs ``frames`` at: the next of a few fixed lengths."""
    bucket = max(COMPILE_FRAME_BUCKET, frame_step)
    rounded = 1 + -(-(frames - 1) // bucket) * bucket
    return min(max(rounded, frames), max_frames)
