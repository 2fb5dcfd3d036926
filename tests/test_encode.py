"""Encoding: playable H.264 with metadata and a poster, within a byte budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.encode import (
    AI_NOTICE,
    ClipMetadata,
    ClipTooLarge,
    encode_mp4,
    fit_clip,
    last_frame,
    read_frames,
    read_tags,
)
from tests.mp4probe import probe_mp4

METADATA = ClipMetadata(
    prompt="a cat surfing at sunset; waves = big", seed=1234, model="tiny", rewritten_prompt=None
)


@pytest.fixture
def smooth_frames() -> np.ndarray:
    """A gradient that slides sideways: compresses well, like real footage."""
    x = np.linspace(0, 255, 112, dtype=np.float32)
    rows = [np.roll(x, shift * 4) for shift in range(9)]
    frames = np.stack([np.broadcast_to(row[None, :, None], (64, 112, 3)) for row in rows])
    return frames.astype(np.uint8)


@pytest.fixture
def noisy_frames() -> np.ndarray:
    """Random pixels: the worst case for a codec, so a small budget is really over at first."""
    return np.random.default_rng(0).integers(0, 256, (9, 64, 112, 3), dtype=np.uint8)


def test_the_clip_is_h264_yuv420p_with_faststart(smooth_frames: np.ndarray, tmp_path: Path) -> None:
    clip = encode_mp4(smooth_frames, 16, tmp_path / "clip.mp4", metadata=METADATA)
    info = probe_mp4(clip.path)
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
    assert (info.width, info.height, info.frames, info.fps) == (112, 64, 9, 16.0)
    assert info.moov_before_mdat
    assert (clip.width, clip.height, clip.frames, clip.fps) == (112, 64, 9, 16)
    assert clip.size_bytes == clip.path.stat().st_size
    assert clip.duration_s == pytest.approx(9 / 16)


def test_the_metadata_names_prompt_seed_model_and_ai(
    smooth_frames: np.ndarray, tmp_path: Path
) -> None:
    metadata = ClipMetadata("a cat", seed=7, model="tiny", rewritten_prompt="A ginger cat surfs")
    clip = encode_mp4(smooth_frames, 16, tmp_path / "clip.mp4", metadata=metadata)
    tags = read_tags(clip.path)
    assert tags["title"] == "a cat"
    for expected in (AI_NOTICE, "Seed: 7", "Model: tiny", "Prompt: a cat", "A ginger cat surfs"):
        assert expected in tags["comment"]


@pytest.mark.parametrize(
    "typed",
    [
        pytest.param("a cat\x00 with text", id="NUL"),
        pytest.param("a cat\x1b[31m with text\x07", id="ESC and BEL"),
        pytest.param("a cat \u202ewith text", id="RTL override"),
        pytest.param("a cat\ud800 with text", id="lone surrogate"),
    ],
)
def test_metadata_never_fails_on_what_a_user_can_type(
    smooth_frames: np.ndarray, tmp_path: Path, typed: str
) -> None:
    metadata = ClipMetadata(typed, seed=7, model="tiny", rewritten_prompt=f"Scene: {typed}")
    clip = encode_mp4(smooth_frames, 16, tmp_path / "clip.mp4", metadata=metadata)
    tags = read_tags(clip.path)
    assert tags["title"].startswith("a cat")
    assert tags["title"].endswith("with text")
    assert "Rewritten prompt: Scene: a cat" in tags["comment"]
    for control in ("\x00", "\x1b", "\x07", "\u202e", "\ud800"):
        assert control not in "".join(tags.values())


def test_a_poster_jpeg_sits_next_to_the_clip(smooth_frames: np.ndarray, tmp_path: Path) -> None:
    clip = encode_mp4(smooth_frames, 16, tmp_path / "clip.mp4", metadata=METADATA)
    assert clip.poster_path == tmp_path / "clip.jpg"
    with Image.open(clip.poster_path) as poster:
        assert (poster.format, poster.size) == ("JPEG", (112, 64))


def test_frames_read_back_close_to_what_was_written(
    smooth_frames: np.ndarray, tmp_path: Path
) -> None:
    clip = encode_mp4(smooth_frames, 16, tmp_path / "clip.mp4", metadata=METADATA)
    frames, fps = read_frames(clip.path)
    assert (frames.shape, fps) == (smooth_frames.shape, 16)
    assert np.abs(frames.astype(int) - smooth_frames.astype(int)).mean() < 8
    last = last_frame(clip.path)
    assert last.size == (112, 64)
    assert np.array_equal(np.asarray(last), frames[-1])


def test_odd_sized_frames_become_an_even_sized_clip(tmp_path: Path) -> None:
    frames = np.full((5, 33, 47, 3), 128, dtype=np.uint8)
    clip = encode_mp4(frames, 8, tmp_path / "odd.mp4", metadata=METADATA)
    info = probe_mp4(clip.path)
    assert (info.width, info.height, info.frames) == (46, 32, 5)


def test_an_encode_over_budget_is_redone_at_lower_quality(
    noisy_frames: np.ndarray, tmp_path: Path
) -> None:
    unlimited = encode_mp4(noisy_frames, 16, tmp_path / "full.mp4", metadata=METADATA)
    budget = unlimited.size_bytes // 2
    clip = encode_mp4(noisy_frames, 16, tmp_path / "fit.mp4", metadata=METADATA, max_bytes=budget)
    assert clip.size_bytes <= budget < unlimited.size_bytes
    assert clip.quality > unlimited.quality
    assert (clip.width, clip.height) == (112, 64)
    assert probe_mp4(clip.path).frames == 9
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "fit.jpg",
        "fit.mp4",
        "full.jpg",
        "full.mp4",
    ]


def test_when_quality_is_not_enough_the_clip_gets_smaller(
    noisy_frames: np.ndarray, tmp_path: Path
) -> None:
    unlimited = encode_mp4(noisy_frames, 16, tmp_path / "full.mp4", metadata=METADATA)
    budget = unlimited.size_bytes // 8
    clip = encode_mp4(noisy_frames, 16, tmp_path / "small.mp4", metadata=METADATA, max_bytes=budget)
    info = probe_mp4(clip.path)
    assert clip.size_bytes <= budget
    assert (info.width, info.height) == (clip.width, clip.height)
    assert info.width < 112
    assert info.width % 16 == 0
    assert info.height % 16 == 0
    assert info.frames == 9


def test_an_unreachable_budget_raises_with_the_smallest_attempt_on_disk(
    noisy_frames: np.ndarray, tmp_path: Path
) -> None:
    with pytest.raises(ClipTooLarge, match=r"even at \d+x\d+ .*the limit is 1.0 KiB") as caught:
        encode_mp4(noisy_frames, 16, tmp_path / "big.mp4", metadata=METADATA, max_bytes=1024)
    best = caught.value.best
    assert best.path == tmp_path / "big.mp4"
    assert best.size_bytes == best.path.stat().st_size > 1024
    assert probe_mp4(best.path).frames == 9
    assert sorted(path.name for path in tmp_path.iterdir()) == ["big.jpg", "big.mp4"]


def test_fit_clip_reencodes_to_a_smaller_limit_and_keeps_metadata(
    noisy_frames: np.ndarray, tmp_path: Path
) -> None:
    original = encode_mp4(noisy_frames, 16, tmp_path / "clip.mp4", metadata=METADATA)
    budget = original.size_bytes // 2
    fitted = fit_clip(original.path, budget, out_path=tmp_path / "small.mp4")
    assert fitted.size_bytes <= budget
    assert fitted.poster_path.exists()
    assert read_tags(fitted.path) == read_tags(original.path)
    assert probe_mp4(fitted.path).frames == 9


def test_fit_clip_copies_a_clip_that_already_fits(
    smooth_frames: np.ndarray, tmp_path: Path
) -> None:
    original = encode_mp4(smooth_frames, 16, tmp_path / "clip.mp4", metadata=METADATA)
    fitted = fit_clip(original.path, original.size_bytes, out_path=tmp_path / "copy.mp4")
    assert fitted.path.read_bytes() == original.path.read_bytes()
    assert fitted.quality == original.quality == 20
