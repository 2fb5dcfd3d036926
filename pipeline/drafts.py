"""Drafts: four quick variations of a request, a labelled grid of them, and what Render and
Vary start from.

A draft is a clip at ``preset.draft_scale`` of the size with ``preset.draft_steps`` steps and
the request's length, so its composition and motion are the clip's. Beside each draft's MP4
lie its final latents (``<draft>.latents.npz``): Render upscales them to the full size and
re-runs the end of the schedule from a partial noise level; Vary does the same at draft size
with new seeds. The grid shows the drafts 2x2, each cell labelled 1-4.

:func:`draft_cost` is the arithmetic behind "drafts are cheap": transformer compute from token
counts (linear layers grow with tokens, attention with their square).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pipeline.encode import ClipMetadata, EncodedClip, encode_mp4
from pipeline.errors import ClipFailed
from pipeline.presets import ASPECTS, ModelPreset
from pipeline.request import MAX_SEED, ClipRequest, ResolvedRequest

log = logging.getLogger(__name__)

DRAFT_COUNT = 4
LATENTS_SUFFIX = ".latents.npz"
DRAFT_GONE = "This draft is no longer available; make the drafts again."
NO_DRAFTS = "The model {model} renders clips straight away; it cannot make drafts."
# Wan 2.1 1.3B: the share of a forward's compute in attention at 32,760 tokens (ML.md:
# 283 TFLOP a forward, 70 % of it attention over the tokens).
WAN_TOKENS = 32_760
WAN_ATTENTION_SHARE = 0.70
# Wan's VAE packs 4 frames and 8x8 pixels into one latent; the transformer patches 2x2 of them.
TEMPORAL_PACKING = 4
SPATIAL_PACKING = 16
LABEL_HEIGHT = 0.2
"""A label's height as a share of its cell's."""


@dataclass(frozen=True)
class DraftLatents:
    """A finished draft's latents (1, 16, F, h, w), normalised as the transformer sees them,
    and the shape of the clip they decode to."""

    latents: np.ndarray
    frames: int
    fps: int
    aspect: str
    seed: int


def draft_beside(grid: Path, number: int) -> Path:
    """Where draft ``number`` (1-4) of the grid at ``grid`` is written."""
    return grid.with_name(f"{grid.stem}-{number}{grid.suffix}")


def latents_beside(clip: Path) -> Path:
    """Where the latents of the draft at ``clip`` are kept."""
    return clip.with_name(clip.stem + LATENTS_SUFFIX)


def save_latents(clip: Path, draft: DraftLatents) -> Path:
    path = latents_beside(clip)
    np.savez(
        path,
        latents=draft.latents.astype(np.float16),
        frames=draft.frames,
        fps=draft.fps,
        aspect=draft.aspect,
        seed=draft.seed,
    )
    return path


def load_latents(clip: Path) -> DraftLatents:
    """The latents kept beside the draft at ``clip``; ClipFailed when they are gone."""
    path = latents_beside(clip)
    try:
        with np.load(path, allow_pickle=False) as stored:
            return DraftLatents(
                latents=stored["latents"].astype(np.float32),
                frames=int(stored["frames"]),
                fps=int(stored["fps"]),
                aspect=str(stored["aspect"]),
                seed=int(stored["seed"]),
            )
    except (OSError, KeyError, ValueError) as exc:
        raise ClipFailed(DRAFT_GONE, f"cannot read the draft latents {path}: {exc!r}") from exc


def check_drafts(preset: ModelPreset) -> None:
    if not preset.makes_drafts:
        raise ClipFailed(NO_DRAFTS.format(model=preset.name))


def as_draft(preset: ModelPreset, request: ResolvedRequest) -> ResolvedRequest:
    """``request`` at draft size with the preset's draft steps (its length and motion kept)."""
    width, height = preset.draft_size_for(request.aspect)
    return replace(request, width=width, height=height, steps=preset.draft_steps, hd=False)


def draft_seeds(seed: int, count: int = DRAFT_COUNT) -> tuple[int, ...]:
    """One seed per draft, from the request's: draft N can be made again on its own."""
    return tuple((seed + index) % (MAX_SEED + 1) for index in range(count))


def shaped_like(asked: ClipRequest, draft: DraftLatents) -> ClipRequest:
    """``asked`` with ``draft``'s length, frame rate and aspect: what it starts from decides."""
    return replace(asked, aspect=draft.aspect, frames=draft.frames, duration_s=None, fps=draft.fps)


@dataclass(frozen=True)
class DraftClip:
    """One finished draft: its seed, frames and final latents."""

    seed: int
    frames: np.ndarray
    latents: np.ndarray


def encode_drafts(
    drafts: list[DraftClip],
    request: ResolvedRequest,
    grid_path: Path,
    metadata: ClipMetadata,
    max_bytes: int,
) -> tuple[EncodedClip, tuple[EncodedClip, ...]]:
    """The grid at ``grid_path`` and each draft beside it (``draft_beside``) with its
    latents; ``metadata`` is the grid's, each draft's names its own seed."""
    clips = []
    for number, draft in enumerate(drafts, start=1):
        path = draft_beside(grid_path, number)
        clips.append(
            encode_mp4(
                draft.frames,
                request.fps,
                path,
                metadata=replace(metadata, seed=draft.seed),
                max_bytes=max_bytes,
            )
        )
        kept = DraftLatents(draft.latents, request.frames, request.fps, request.aspect, draft.seed)
        save_latents(path, kept)
    grid = encode_mp4(
        grid_frames([draft.frames for draft in drafts]),
        request.fps,
        grid_path,
        metadata=metadata,
        max_bytes=max_bytes,
    )
    return grid, tuple(clips)


# --- the grid -------------------------------------------------------------------------------


def grid_frames(clips: list[np.ndarray]) -> np.ndarray:
    """Up to four (F, H, W, 3) uint8 clips of one shape in a 2x2 grid, each labelled with its
    number in the top-left corner."""
    if not 1 <= len(clips) <= DRAFT_COUNT or len({clip.shape for clip in clips}) != 1:
        raise ValueError("a grid takes one to four clips of the same shape")
    frames, height, width = clips[0].shape[:3]
    columns = 1 if len(clips) == 1 else 2
    rows = -(-len(clips) // columns)
    grid = np.zeros((frames, rows * height, columns * width, 3), dtype=np.uint8)
    for index, clip in enumerate(clips):
        row, column = divmod(index, columns)
        top, left = row * height, column * width
        grid[:, top : top + height, left : left + width] = _labelled(clip, index + 1)
    return grid


def _labelled(clip: np.ndarray, number: int) -> np.ndarray:
    """The clip with its number on a dark badge: drawn once, laid over every frame."""
    height, width = clip.shape[1:3]
    badge, mask = _badge(number, max(8, round(height * LABEL_HEIGHT)))
    badge_height, badge_width = badge.shape[:2]
    margin = max(1, badge_height // 4)
    bottom = min(height, margin + badge_height)
    right = min(width, margin + badge_width)
    if bottom <= margin or right <= margin:
        return clip
    out = clip.copy()
    region = out[:, margin:bottom, margin:right].astype(np.float32)
    alpha = mask[: bottom - margin, : right - margin, None]
    cover = badge[: bottom - margin, : right - margin]
    out[:, margin:bottom, margin:right] = (region * (1 - alpha) + cover * alpha).astype(np.uint8)
    return out


@cache
def _badge(number: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGB badge ``size`` pixels high with ``number`` in white, and its alpha (0-1)."""
    font = ImageFont.load_default(size=max(6, round(size * 0.8)))
    text = str(number)
    left, top, right, bottom = font.getbbox(text)
    width = max(size, round(right - left) + size // 2)
    image = Image.new("RGBA", (width, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((0, 0, width - 1, size - 1), radius=size // 4, fill=(0, 0, 0, 180))
    draw.text(
        ((width - (right - left)) / 2 - left, (size - (bottom - top)) / 2 - top),
        text,
        font=font,
        fill=(255, 255, 255, 255),
    )
    pixels = np.asarray(image, dtype=np.float32)
    return pixels[..., :3], pixels[..., 3] / 255.0


# --- what drafts cost -----------------------------------------------------------------------


def transformer_tokens(width: int, height: int, frames: int) -> int:
    """Tokens per transformer forward for a Wan clip of this shape."""
    latent_frames = (frames - 1) // TEMPORAL_PACKING + 1
    return latent_frames * (height // SPATIAL_PACKING) * (width // SPATIAL_PACKING)


def forward_cost(tokens: int) -> float:
    """One forward's compute relative to a forward at Wan's full 480p shape."""
    share = tokens / WAN_TOKENS
    return (1 - WAN_ATTENTION_SHARE) * share + WAN_ATTENTION_SHARE * share**2


@dataclass(frozen=True)
class DraftCost:
    """Four drafts' transformer compute against one full render of the same request."""

    draft_tokens: int
    render_tokens: int
    draft_forwards: int
    render_forwards: int

    @property
    def token_ratio(self) -> float:
        """Counting tokens only (linear layers; the upper bound)."""
        return (self.draft_forwards * self.draft_tokens) / (
            self.render_forwards * self.render_tokens
        )

    @property
    def compute_ratio(self) -> float:
        """Linear layers by tokens, attention by tokens squared, shares as in Wan at 480p."""
        return (self.draft_forwards * forward_cost(self.draft_tokens)) / (
            self.render_forwards * forward_cost(self.render_tokens)
        )


def draft_cost(
    preset: ModelPreset, aspect: str = ASPECTS[0], *, count: int = DRAFT_COUNT
) -> DraftCost:
    """What ``count`` drafts of a default-length clip cost against its full render."""
    width, height = preset.size_for(aspect)
    draft_width, draft_height = preset.draft_size_for(aspect)
    per_step = 2 if preset.guidance > 1.0 else 1  # guidance runs the model twice a step
    return DraftCost(
        draft_tokens=transformer_tokens(draft_width, draft_height, preset.default_frames),
        render_tokens=transformer_tokens(width, height, preset.default_frames),
        draft_forwards=count * preset.draft_steps * per_step,
        render_forwards=preset.steps * per_step,
    )
