"""Image-to-video on the tiny Wan I2V pipeline: a start image in, a clip out, Extend's path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.encode import ClipMetadata, encode_mp4, last_frame
from pipeline.generator import VideoGenerator, fit_image
from pipeline.presets import PRESETS
from pipeline.request import ClipRequest, ResolvedRequest, resolve_request


@pytest.fixture(scope="module")
def animator(tiny_models_dir: Path) -> VideoGenerator:
    return VideoGenerator(PRESETS["tiny-i2v"], models_dir=tiny_models_dir, device="cpu")


def animate(prompt: str, image: Image.Image, *, seed: int) -> ResolvedRequest:
    return resolve_request(PRESETS["tiny-i2v"], ClipRequest(prompt, seed=seed), image=image)


@pytest.fixture
def start_image() -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 256, (90, 160, 3), dtype=np.uint8))


def test_a_start_image_becomes_a_clip(animator: VideoGenerator, start_image: Image.Image) -> None:
    result = animator.generate(animate("the scene comes alive", start_image, seed=4))
    assert result.frames.shape == (9, 64, 112, 3)
    assert result.model == "tiny-i2v"


def test_the_same_image_and_seed_give_identical_frames(
    animator: VideoGenerator, start_image: Image.Image
) -> None:
    request = animate("the scene comes alive", start_image, seed=4)
    assert np.array_equal(animator.generate(request).frames, animator.generate(request).frames)


def test_the_start_image_shapes_the_clip(
    animator: VideoGenerator, start_image: Image.Image
) -> None:
    flat = Image.new("RGB", start_image.size, (20, 200, 20))
    from_noise = animator.generate(animate("x", start_image, seed=4))
    from_green = animator.generate(animate("x", flat, seed=4))
    assert not np.array_equal(from_noise.frames, from_green.frames)


def test_an_image_of_another_shape_is_cropped_from_its_centre() -> None:
    # Wide image: blue left and right thirds, red in the middle.
    wide = np.zeros((100, 300, 3), dtype=np.uint8)
    wide[:, :100] = wide[:, 200:] = (0, 0, 255)
    wide[:, 100:200] = (255, 0, 0)
    portrait = fit_image(Image.fromarray(wide), 64, 112)
    assert portrait.size == (64, 112)
    assert np.asarray(portrait)[:, 4:-4].mean(axis=(0, 1)) == pytest.approx([255, 0, 0], abs=2)


def test_a_clip_continues_from_its_last_frame(
    tiny_models_dir: Path, animator: VideoGenerator, tmp_path: Path
) -> None:
    """What Extend does: the last frame of a posted clip starts the next one."""
    text_to_video = VideoGenerator(PRESETS["tiny"], models_dir=tiny_models_dir, device="cpu")
    first = text_to_video.generate(
        resolve_request(PRESETS["tiny"], ClipRequest("a red balloon", seed=2))
    )
    clip = encode_mp4(
        first.frames,
        first.fps,
        tmp_path / "1.mp4",
        metadata=ClipMetadata("a red balloon", 2, "tiny"),
    )
    continued = animator.generate(animate("a red balloon rises", last_frame(clip.path), seed=2))
    assert continued.frames.shape == first.frames.shape
