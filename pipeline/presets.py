"""Model presets: which diffusers pipeline a model runs on, and its defaults and limits.

A preset is looked up by name (``wan2.1-t2v-1.3b``), by the hub id it stands for, or made up
on the spot for any other diffusers id or local folder, with the limits of its model family.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Literal

log = logging.getLogger(__name__)

ASPECTS = ("16:9", "9:16", "1:1")
TINY_SOURCE_PREFIX = "tiny:"

Task = Literal["t2v", "i2v"]


@dataclass(frozen=True)
class ModelPreset:
    """A model and the request limits that suit it.

    ``sizes`` and ``hd_sizes`` map each aspect in ``ASPECTS`` to ``(width, height)``; valid
    frame counts are ``1 + k * frame_step`` between ``min_frames`` and ``max_frames``.
    ``hd_flow_shift`` replaces ``flow_shift`` for HD renders (larger sizes want more shift).
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

    @property
    def is_tiny(self) -> bool:
        return self.source.startswith(TINY_SOURCE_PREFIX)

    def size_for(self, aspect: str, *, hd: bool = False) -> tuple[int, int]:
        return (self.hd_sizes if hd else self.sizes)[aspect]

    def flow_shift_for(self, *, hd: bool) -> float | None:
        if hd and self.hd_flow_shift is not None:
            return self.hd_flow_shift
        return self.flow_shift

    def valid_frame_counts(self) -> range:
        return range(self.min_frames, self.max_frames + 1, self.frame_step)


def _sizes(landscape: tuple[int, int], square: tuple[int, int]) -> Mapping[str, tuple[int, int]]:
    width, height = landscape
    return MappingProxyType({"16:9": landscape, "9:16": (height, width), "1:1": square})


# Wan 2.1 at 480p: its sizes, 4k+1 frames at 16 fps, and the flow shift its authors use
# (5.0 at 720p).
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
)

TINY_I2V = replace(
    TINY,
    name="tiny-i2v",
    source=TINY_SOURCE_PREFIX + "i2v",
    task="i2v",
    pipeline_class="WanImageToVideoPipeline",
)

PRESETS: Mapping[str, ModelPreset] = MappingProxyType(
    {preset.name: preset for preset in (WAN_T2V, WAN_I2V, LTX_VIDEO, TINY, TINY_I2V)}
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
    if "i2v" in lowered or "image-to-video" in lowered:
        return "WanImageToVideoPipeline"
    return "WanPipeline"


def _is_image_to_video(class_name: str) -> bool:
    return "ImageToVideo" in class_name or "Image2Video" in class_name or "I2V" in class_name


def _preset_for_class(source: str, class_name: str) -> ModelPreset:
    family = LTX_VIDEO if class_name.startswith("LTX") else WAN_T2V
    return replace(
        family,
        name=source,
        source=source,
        task="i2v" if _is_image_to_video(class_name) else "t2v",
        pipeline_class=class_name,
    )
