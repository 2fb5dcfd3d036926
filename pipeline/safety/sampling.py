"""Which frames of a clip the classifiers look at: a few, spread over the whole clip.

A model can draw something unsafe for a fraction of a second, so the frames are spread evenly
from the first to the last (12 frames of an 81-frame clip are at most 8 frames, half a second
at 16 fps, apart), and the poster is looked at too, since it is shown on its own.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from PIL import Image

SAMPLE_SIDE = 416
"""Longest side of a sampled frame: above what either packaged classifier looks at."""


def spread(total: int, count: int) -> list[int]:
    """``count`` frame indices spread evenly over ``total`` frames, first and last included
    (every frame when there are no more than ``count``)."""
    if total <= 0 or count <= 0:
        return []
    if total <= count:
        return list(range(total))
    if count == 1:
        return [total // 2]
    return sorted({round(i * (total - 1) / (count - 1)) for i in range(count)})


def sample_frames(frames: np.ndarray, count: int) -> list[np.ndarray]:
    """``count`` frames spread over ``frames`` ((F, H, W, 3) uint8)."""
    return [frames[index] for index in spread(len(frames), count)]


def keep_samples(frames: np.ndarray, count: int) -> np.ndarray:
    """``count`` frames spread over a clip still in memory ((F, H, W, 3) uint8), shrunk as
    :func:`sample_clip` shrinks them: what the check looks at, kept from before encoding so
    the file need not be decoded again (12 frames of 832x480 keep 3.6 MB)."""
    chosen = sample_frames(frames, count)
    if not chosen:
        return np.empty((0, *frames.shape[1:]), dtype=np.uint8)
    height, width = frames.shape[1:3]
    size = scaled_size(width, height)
    if size == (width, height):
        return np.stack(chosen)
    shrunk = [Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR) for frame in chosen]
    return np.stack([np.asarray(image) for image in shrunk])


def sample_clip(
    path: Path, count: int, *, total: int | None = None, size: tuple[int, int] | None = None
) -> list[np.ndarray]:
    """``count`` frames spread over the video at ``path``, at most :data:`SAMPLE_SIDE` pixels
    a side.

    ffmpeg decodes the clip once and converts only the chosen frames, already scaled down
    (both classifiers look at 320 or 256 pixels, so nothing they would see is lost).
    ``total`` (frames) and ``size`` (width, height) are the clip's, when known (the encoder
    reports them); otherwise the file is probed first.
    """
    if total is None or size is None:
        total, size = probe(path)
    indices = spread(total, count)
    width, height = scaled_size(*size)
    chosen = "+".join(f"eq(n\\,{index})" for index in indices)
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        *("-v", "error", "-nostdin", "-i", str(path)),
        *("-vf", f"select='{chosen}',scale={width}:{height}", "-fps_mode", "passthrough"),
        *("-f", "rawvideo", "-pix_fmt", "rgb24", "-"),
    ]
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0:
        raise OSError(result.stderr.decode("utf-8", errors="replace").strip() or "ffmpeg failed")
    frames = np.frombuffer(result.stdout, dtype=np.uint8).reshape(-1, height, width, 3)
    return list(frames)


def probe(path: Path) -> tuple[int, tuple[int, int]]:
    """The frame count and (width, height) of the video at ``path``."""
    total, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(reader)
    finally:
        reader.close()
    width, height = meta["size"]
    return total, (width, height)


def scaled_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) shrunk to at most :data:`SAMPLE_SIDE` a side, even, never enlarged."""
    scale = min(1.0, SAMPLE_SIDE / max(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def read_picture(path: Path) -> np.ndarray:
    """A picture (the poster) as an (H, W, 3) uint8 RGB array."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))
