"""Model presets: which diffusers pipeline a model runs on, and its defaults and limits.

A preset is looked up by name (``wan2.1-t2v-1.3b``), by the hub id it stands for, or made up
on the spot for any other diffusers id or local folder, with the limits of its model family.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from pipeline.levers import LoraWeights, SpeedLevers

log = logging.getLogger(__name__)

ASPECTS = ("16:9", "9:16", "1:1")
TINY_SOURCE_PREFIX = "tiny:"
# Sizes are multiples of this (Wan's VAE downsamples by 8, its transformer patches by 2).
SIZE_MULTIPLE = 16

Task = Literal["t2v", "i2v"]
Sampler = Literal["default", "lcm"]
"""``lcm``: predict the clean clip and add fresh noise at each step, as step-distilled models
expect (diffusers' FlowMatchEulerDiscreteScheduler with stochastic sampling)."""
VACE_PIPELINE = "WanVACEPipeline"


@dataclass(frozen=True)
class ModelPreset:
    """A model and the request limits that suit it.

    ``sizes`` and ``hd_sizes`` map each aspect in ``ASPECTS`` to ``(width, height)``; valid
    frame counts are ``1 + k * frame_step`` between ``min_frames`` and ``max_frames``.
    ``hd_flow_shift`` replaces ``flow_shift`` for HD renders (larger sizes want more shift).

    Drafts are made at ``draft_scale`` of the size with ``draft_steps`` steps; Render re-runs
    the last ``render_strength`` of the schedule from a draft upscaled to full size, Vary the
    last ``vary_strength`` of the draft schedule from a draft. ``mag_ratios`` are the model's
    MagCache magnitude ratios per step (None: MagCache cannot run). ``levers``, ``loras`` and
    ``fuse_loras`` say how the pipeline runs. ``takes_end_frame``: the model can be given the
    clip's last frame as well as its first (loops and ``end_image``); Wan's first-last-frame
    model needs both, VACE (``end_frame_optional``) also animates a start image alone.
    """

    name: str
    source: str
    task: Task
    pipeline_class: str
    sizes: Mapping[str, tuple[int, int]]
    hd_sizes: Mapping[str, tuple[int, int]]
    fps: int
    default_frames: int
    min_frames: int
    max_frames: int
    frame_step: int
    steps: int
    max_steps: int
    hd_steps: int
    guidance: float
    flow_shift: float | None
    hd_flow_shift: float | None = None
    sampler: Sampler = "default"
    draft_scale: float = 0.5
    draft_steps: int = 6
    render_strength: float = 0.5
    vary_strength: float = 0.7
    mag_ratios: tuple[float, ...] | None = None
    levers: SpeedLevers = field(default_factory=SpeedLevers)
    loras: tuple[LoraWeights, ...] = ()
    fuse_loras: bool = False
    takes_end_frame: bool = False
    end_frame_optional: bool = False

    @property
    def is_tiny(self) -> bool:
        return self.source.startswith(TINY_SOURCE_PREFIX)

    @property
    def load_key(self) -> tuple[object, ...]:
        """What the loaded pipeline depends on: another key needs another load."""
        return (self.source, self.loras, self.fuse_loras, self.levers)

    @property
    def needs_end_frame(self) -> bool:
        """Whether every clip needs an end frame (a loop or an end image) besides its first."""
        return self.takes_end_frame and not self.end_frame_optional

    @property
    def makes_drafts(self) -> bool:
        """Whether drafts, Render and Vary work with this model (Wan's latents and flow
        matching, several clips in one batch, which diffusers' VACE pipeline cannot make;
        others render straight away)."""
        return self.pipeline_class.startswith("Wan") and self.pipeline_class != VACE_PIPELINE

    def draft_size_for(self, aspect: str) -> tuple[int, int]:
        width, height = self.size_for(aspect)
        return _scaled(width, self.draft_scale), _scaled(height, self.draft_scale)

    def size_for(self, aspect: str, *, hd: bool = False) -> tuple[int, int]:
        return (self.hd_sizes if hd else self.sizes)[aspect]

    def flow_shift_for(self, *, hd: bool) -> float | None:
        if hd and self.hd_flow_shift is not None:
            return self.hd_flow_shift
        return self.flow_shift

    def valid_frame_counts(self) -> range:
        return range(self.min_frames, self.max_frames + 1, self.frame_step)


def _scaled(length: int, scale: float) -> int:
    return max(SIZE_MULTIPLE, round(length * scale / SIZE_MULTIPLE) * SIZE_MULTIPLE)


def _sizes(landscape: tuple[int, int], square: tuple[int, int]) -> Mapping[str, tuple[int, int]]:
    width, height = landscape
    return MappingProxyType({"16:9": landscape, "9:16": (height, width), "1:1": square})


# MagCache's magnitude ratios per step for Wan 2.1, as its authors measured them
# (github.com/Zehong-Ma/MagCache, MagCache4Wan2.1; the conditional pass of each step).
WAN_T2V_1_3B_MAG_RATIOS = (
    1.0, 1.0124, 1.00166, 0.99791, 0.99682, 0.99634, 0.99567, 0.99416, 0.99578, 0.9957,
    0.99511, 0.99535, 0.99552, 0.99541, 0.9954, 0.99489, 0.99518, 0.99484, 0.99481, 0.99415,
    0.99419, 0.99396, 0.99388, 0.99349, 0.99309, 0.9927, 0.99228, 0.99171, 0.99137, 0.99068,
    0.99005, 0.98944, 0.98849, 0.98758, 0.98644, 0.98504, 0.9836, 0.98202, 0.97977, 0.97717,
    0.9741, 0.97003, 0.96538, 0.9593, 0.95086, 0.94013, 0.92402, 0.90241, 0.86821, 0.81838,
)  # fmt: skip
WAN_I2V_480P_MAG_RATIOS = (
    1.0, 0.98783, 0.97559, 0.98311, 0.98202, 0.9888, 0.98762, 0.98957, 0.99052, 0.99383,
    0.98857, 0.99065, 0.98845, 0.99057, 0.98957, 0.98601, 0.98823, 0.98756, 0.98808,
    0.98721, 0.98571, 0.98543, 0.98157, 0.98411, 0.97952, 0.98149, 0.9774, 0.97825, 0.97355,
    0.97085, 0.97056, 0.96588, 0.96113, 0.9567, 0.94961, 0.93973, 0.93217, 0.91878, 0.90955,
    0.92617,
)  # fmt: skip

# Wan 2.1 at 480p: its sizes, 4k+1 frames at 16 fps, and the flow shift its authors use
# (5.0 at 720p). Four drafts at half the size with 6 steps cost about 6 % of one render's
# transformer compute (pipeline.drafts.draft_cost); Render re-runs the last half of the
# schedule (from noise level 0.75), Vary the last 70 % of a draft's.
WAN_T2V = ModelPreset(
    name="wan2.1-t2v-1.3b",
    source="Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
    task="t2v",
    pipeline_class="WanPipeline",
    sizes=_sizes((832, 480), (624, 624)),
    hd_sizes=_sizes((1280, 720), (960, 960)),
    fps=16,
    default_frames=81,
    min_frames=5,
    max_frames=81,
    frame_step=4,
    steps=50,
    max_steps=100,
    hd_steps=50,
    guidance=5.0,
    flow_shift=3.0,
    hd_flow_shift=5.0,
    mag_ratios=WAN_T2V_1_3B_MAG_RATIOS,
    # Four drafts decode one at a time: a quarter of the peak memory, the same speed.
    levers=SpeedLevers(vae_slicing=True),
)

# The fast preset: Self-Forcing's step-distilled Wan 2.1 1.3B as a LoRA (Kijai's extraction),
# fused into the weights: 4 steps without guidance, sampled as it was trained (fresh noise
# each step, flow shift 8). Four drafts take one step each.
SELF_FORCING_LORA = LoraWeights(
    "Kijai/WanVideo_comfy",
    weight_name="LoRAs/Wan2_1_self_forcing_1_3B/Wan2_1_self_forcing_dmd_1_3B_lora_rank_32_fp16.safetensors",
)
WAN_T2V_FAST = replace(
    WAN_T2V,
    name="wan2.1-t2v-1.3b-fast",
    steps=4,
    max_steps=8,
    hd_steps=4,
    guidance=1.0,
    flow_shift=8.0,
    hd_flow_shift=8.0,
    sampler="lcm",
    draft_steps=1,
    mag_ratios=None,
    loras=(SELF_FORCING_LORA,),
    fuse_loras=True,
)

# The 480p image-to-video model: HD means more steps, not a size it was not trained for.
WAN_I2V = replace(
    WAN_T2V,
    name="wan2.1-i2v-14b-480p",
    source="Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
    task="i2v",
    pipeline_class="WanImageToVideoPipeline",
    hd_sizes=WAN_T2V.sizes,
    steps=40,
    hd_flow_shift=None,
    mag_ratios=WAN_I2V_480P_MAG_RATIOS,
)

# Wan 2.1's first-last-frame model (14B, 720p): the image-to-video model with both pictures
# given, its CLIP embeddings side by side. Its authors sample it with 50 steps and flow shift
# 16 (Wan2.1 generate.py); it was trained at 720p only, so HD means more steps.
WAN_FLF2V = replace(
    WAN_I2V,
    name="wan2.1-flf2v-14b-720p",
    source="Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers",
    sizes=_sizes((1280, 720), (960, 960)),
    hd_sizes=_sizes((1280, 720), (960, 960)),
    steps=50,
    hd_steps=50,
    flow_shift=16.0,
    mag_ratios=None,
    takes_end_frame=True,
)

# Wan 2.1 VACE (1.3B, 480p): the text-to-video model with control blocks that follow a
# conditioning video and mask. Given the start frame (and the end frame) as the video's known
# frames and the frames between to generate, it animates a picture and ends on another, on
# cards far too small for the 14B first-last-frame model; sampled like the 1.3B text model.
WAN_VACE = replace(
    WAN_T2V,
    name="wan2.1-vace-1.3b",
    source="Wan-AI/Wan2.1-VACE-1.3B-diffusers",
    task="i2v",
    pipeline_class=VACE_PIPELINE,
    hd_sizes=WAN_T2V.sizes,
    hd_flow_shift=None,
    mag_ratios=None,
    takes_end_frame=True,
    end_frame_optional=True,
)

# LTX-Video: sizes in multiples of 32, 8k+1 frames at 24 fps (5 s by default); its scheduler
# shifts by resolution itself.
LTX_VIDEO = ModelPreset(
    name="ltx-video",
    source="Lightricks/LTX-Video",
    task="t2v",
    pipeline_class="LTXPipeline",
    sizes=_sizes((832, 480), (640, 640)),
    hd_sizes=_sizes((1216, 704), (928, 928)),
    fps=24,
    default_frames=121,
    min_frames=9,
    max_frames=257,
    frame_step=8,
    steps=50,
    max_steps=100,
    hd_steps=50,
    guidance=3.0,
    flow_shift=None,
)

# Random pipelines of Wan's classes: small by default so tests take a fraction of a second,
# yet they accept Wan's real shapes (the benchmark runs them at 832x480, 81 frames).
TINY = ModelPreset(
    name="tiny",
    source=TINY_SOURCE_PREFIX + "t2v",
    task="t2v",
    pipeline_class="WanPipeline",
    sizes=_sizes((112, 64), (80, 80)),
    hd_sizes=_sizes((224, 128), (160, 160)),
    fps=16,
    default_frames=9,
    min_frames=5,
    max_frames=81,
    frame_step=4,
    steps=2,
    max_steps=50,
    hd_steps=3,
    guidance=5.0,
    flow_shift=3.0,
    # Random weights pull a render away from its draft at every step (a trained model pulls it
    # towards a clean clip that agrees with the draft): renders start at noise 0.56, not 0.75.
    render_strength=0.3,
    # Random weights have no ratios of their own: Wan's let MagCache run on them in tests.
    mag_ratios=WAN_T2V_1_3B_MAG_RATIOS,
)

TINY_I2V = replace(
    TINY,
    name="tiny-i2v",
    source=TINY_SOURCE_PREFIX + "i2v",
    task="i2v",
    pipeline_class="WanImageToVideoPipeline",
)

TINY_FLF2V = replace(
    TINY_I2V,
    name="tiny-flf2v",
    source=TINY_SOURCE_PREFIX + "flf2v",
    takes_end_frame=True,
)

TINY_VACE = replace(
    TINY_I2V,
    name="tiny-vace",
    source=TINY_SOURCE_PREFIX + "vace",
    pipeline_class=VACE_PIPELINE,
    mag_ratios=None,
    takes_end_frame=True,
    end_frame_optional=True,
)

PRESETS: Mapping[str, ModelPreset] = MappingProxyType(
    {
        preset.name: preset
        for preset in (
            WAN_T2V,
            WAN_T2V_FAST,
            WAN_I2V,
            WAN_FLF2V,
            WAN_VACE,
            LTX_VIDEO,
            TINY,
            TINY_I2V,
            TINY_FLF2V,
            TINY_VACE,
        )
    }
)
DEFAULT_PRESET = WAN_T2V.name


def resolve_preset(name_or_path: str) -> ModelPreset:
    """The preset for a preset name, the hub id of a preset, a local folder or any hub id.

    A folder's ``model_index.json`` names its pipeline class; a hub id that is not a preset's
    gets the limits of the family its name suggests (Wan's when nothing matches). Nothing is
    downloaded here.
    """
    if name_or_path in PRESETS:
        return PRESETS[name_or_path]
    for preset in PRESETS.values():
        if preset.source == name_or_path:
            return preset
    folder = Path(name_or_path).expanduser()
    if folder.is_dir():
        return _preset_for_folder(folder)
    return _preset_for_class(name_or_path, _guess_class(name_or_path))


def end_frame_model(default: str, end_frame: str) -> str | None:
    """The model for a clip that ends on a chosen frame (a loop or an end image): the
    ``default`` image-to-video model when it can, else the ``end_frame`` model the server
    names for them (``None`` when it names none)."""
    if resolve_preset(default).takes_end_frame:
        return default
    return end_frame or None


def _preset_for_folder(folder: Path) -> ModelPreset:
    index = folder / "model_index.json"
    try:
        class_name = str(json.loads(index.read_text())["_class_name"])
    except (OSError, ValueError, KeyError) as exc:
        log.warning("could not read the pipeline class from %s: %s", index, exc)
        class_name = _guess_class(folder.name)
    return _preset_for_class(str(folder), class_name)


def _guess_class(model_id: str) -> str:
    lowered = model_id.lower()
    if "ltx" in lowered:
        return "LTXPipeline"
    if "vace" in lowered:
        return VACE_PIPELINE
    if "i2v" in lowered or "flf2v" in lowered or "image-to-video" in lowered:
        return "WanImageToVideoPipeline"
    return "WanPipeline"


def _is_image_to_video(class_name: str) -> bool:
    return "ImageToVideo" in class_name or "Image2Video" in class_name or "I2V" in class_name


def _preset_for_class(source: str, class_name: str) -> ModelPreset:
    family = LTX_VIDEO if class_name.startswith("LTX") else WAN_T2V
    vace = class_name == VACE_PIPELINE
    image_to_video = vace or _is_image_to_video(class_name)
    return replace(
        family,
        name=source,
        source=source,
        task="i2v" if image_to_video else "t2v",
        pipeline_class=class_name,
        # Wan's first-last-frame weights load into the image-to-video class: only the name
        # tells them apart without loading them.
        takes_end_frame=vace or (image_to_video and "flf2v" in source.lower()),
        end_frame_optional=vace,
    )
