"""Which frames of a clip the classifiers look at: a few, spread over the whole clip.

A model can draw something unsafe for a fraction of a second, so the frames are spread evenly
from the first to the last (12 frames of an 81-frame clip are at most 8 frames, half a second
at 16 fps, apart), and the poster is looked at too, since it is shown on its own.
"""

from __future__ import annotations

from pathlib import Path

import imageio_ffmpeg
import numpy as np
from PIL import Image


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


def sample_clip(path: Path, count: int, *, total: int | None = None) -> list[np.ndarray]:
    """``count`` frames spread over the video at ``path``, decoded in one pass.

    ``total`` is the clip's frame count when known (the encoder reports it); otherwise ffmpeg
    counts the frames first.
    """
    if total is None:
        total, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    wanted = set(spread(total, count))
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    sampled = []
    for index, raw in enumerate(reader):
        if index in wanted:
            sampled.append(np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3))
    reader.close()
    return sampled


def read_picture(path: Path) -> np.ndarray:
    """A picture (the poster) as an (H, W, 3) uint8 RGB array."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))
