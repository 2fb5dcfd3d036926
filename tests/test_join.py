"""Joining shots into one film with the real ffmpeg: cuts, crossfades, mixed sizes, the limit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from pipeline.encode import AI_NOTICE, ClipMetadata, EncodedClip, encode_mp4, read_frames, read_tags
from pipeline.errors import ClipFailed
from pipeline.join import join_clips
from tests.mp4probe import probe_mp4

METADATA = ClipMetadata(prompt="a fox explores a city at night", seed=3, model="tiny")
BRIGHT, DARK = 200, 50


def _flat_clip(path: Path, level: int, *, frames: int, size: tuple[int, int], fps: int) -> Path:
    width, height = size
    pixels = np.full((frames, height, width, 3), level, dtype=np.uint8)
    return encode_mp4(pixels, fps, path, metadata=METADATA).path


@pytest.fixture
def shots(tmp_path: Path) -> list[Path]:
    """Three shots as a model might leave them: the second smaller and at half the rate."""
    return [
        _flat_clip(tmp_path / "shot1.mp4", BRIGHT, frames=16, size=(96, 64), fps=16),
        _flat_clip(tmp_path / "shot2.mp4", DARK, frames=12, size=(64, 48), fps=8),
        _flat_clip(tmp_path / "shot3.mp4", BRIGHT, frames=24, size=(96, 64), fps=16),
    ]


SHOTS_SECONDS = 16 / 16 + 12 / 8 + 24 / 16


def _brightness(frame: np.ndarray) -> float:
    """The middle of the picture (the second shot is letterboxed, its edges are padding)."""
    height, width = frame.shape[:2]
    return float(frame[height // 3 : 2 * height // 3, width // 3 : 2 * width // 3].mean())


def test_cuts_make_one_h264_film_as_long_as_its_shots(shots: list[Path], tmp_path: Path) -> None:
    film = join_clips(shots, tmp_path / "film.mp4", max_bytes=10 * 1024 * 1024)
    info = probe_mp4(film.path)
    assert (info.codec, info.pix_fmt, info.moov_before_mdat) == ("h264", "yuv420p", True)
    assert (info.width, info.height, info.fps) == (96, 64, 16.0)
    assert info.frames / info.fps == pytest.approx(SHOTS_SECONDS, abs=1 / 16)
    assert film.duration_s == pytest.approx(info.frames / info.fps)
    assert Image.open(film.poster_path).size == (96, 64)


def test_a_cut_goes_straight_from_one_shot_to_the_next(shots: list[Path], tmp_path: Path) -> None:
    film = join_clips(shots, tmp_path / "film.mp4", max_bytes=10 * 1024 * 1024)
    frames, _ = read_frames(film.path)
    levels = [_brightness(frame) for frame in frames]
    assert levels[15] == pytest.approx(BRIGHT, abs=8)
    assert levels[16] == pytest.approx(DARK, abs=8)


def test_a_crossfade_blends_the_shots_and_shortens_the_film(
    shots: list[Path], tmp_path: Path
) -> None:
    fade = 0.5
    film = join_clips(shots, tmp_path / "film.mp4", crossfade_s=fade, max_bytes=10 * 1024 * 1024)
    frames, fps = read_frames(film.path)
    assert len(frames) / fps == pytest.approx(SHOTS_SECONDS - 2 * fade, abs=1 / 16)
    # The first fade runs from 0.5 s to 1.0 s: halfway, the picture is half of each shot.
    halfway = _brightness(frames[int(0.75 * fps)])
    assert DARK + 30 < halfway < BRIGHT - 30
    assert _brightness(frames[int(1.25 * fps)]) == pytest.approx(DARK, abs=8)


def test_a_crossfade_longer_than_a_shot_is_shortened_not_refused(
    shots: list[Path], tmp_path: Path
) -> None:
    film = join_clips(shots, tmp_path / "film.mp4", crossfade_s=30, max_bytes=10 * 1024 * 1024)
    # At most half the shortest shot (1 s) per join.
    assert film.duration_s == pytest.approx(SHOTS_SECONDS - 2 * 0.5, abs=1 / 16)


def test_the_film_carries_the_metadata_it_is_given_or_the_first_shots(
    shots: list[Path], tmp_path: Path
) -> None:
    given = ClipMetadata(prompt="storyboard: a fox at night", seed=9, model="tiny")
    named = join_clips(shots, tmp_path / "named.mp4", metadata=given, max_bytes=10 * 1024 * 1024)
    assert read_tags(named.path)["title"] == "storyboard: a fox at night"
    inherited = join_clips(shots, tmp_path / "inherited.mp4", max_bytes=10 * 1024 * 1024)
    assert read_tags(inherited.path)["title"] == METADATA.prompt
    assert AI_NOTICE in read_tags(inherited.path)["comment"]


def test_a_film_over_the_limit_is_made_smaller_until_it_fits(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (16, 96, 128, 3), dtype=np.uint8)
    clips = [encode_mp4(noise, 16, tmp_path / f"n{n}.mp4", metadata=METADATA) for n in (1, 2)]
    roomy = join_clips([clip.path for clip in clips], tmp_path / "roomy.mp4", max_bytes=10**8)
    limit = roomy.size_bytes // 2
    film = join_clips([clip.path for clip in clips], tmp_path / "film.mp4", max_bytes=limit)
    assert film.size_bytes <= limit
    assert (film.quality, film.width) != (roomy.quality, roomy.width)


def test_a_film_that_cannot_fit_says_so_in_a_sentence(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (16, 96, 128, 3), dtype=np.uint8)
    clip: EncodedClip = encode_mp4(noise, 16, tmp_path / "noise.mp4", metadata=METADATA)
    with pytest.raises(ClipFailed) as raised:
        join_clips([clip.path, clip.path], tmp_path / "film.mp4", max_bytes=1000)
    assert raised.value.sentence.endswith("the limit is 1.0 KiB.")


def test_an_unreadable_shot_is_named_in_the_sentence(shots: list[Path], tmp_path: Path) -> None:
    broken = tmp_path / "shot2-broken.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(ClipFailed) as raised:
        join_clips([shots[0], broken], tmp_path / "film.mp4", max_bytes=10 * 1024 * 1024)
    assert "shot2-broken.mp4" in raised.value.sentence
    assert not (tmp_path / "film.mp4").exists()


async def test_a_poster_past_the_films_end_is_a_sentence_not_a_hang(
    shots: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A film whose container over-states its length: the poster's seek finds no frame. The
    join runs in a thread (asyncio.to_thread), which cannot carry a StopIteration back."""
    counted = imageio_ffmpeg.count_frames_and_secs

    def overstated(path: str) -> tuple[int, float]:
        frames, seconds = counted(path)
        return frames, seconds * 10 if path.endswith("film.mp4") else seconds

    monkeypatch.setattr(imageio_ffmpeg, "count_frames_and_secs", overstated)
    output = tmp_path / "film.mp4"
    with pytest.raises(ClipFailed) as failed:
        async with asyncio.timeout(60):
            await asyncio.to_thread(join_clips, shots, output, max_bytes=10 * 1024 * 1024)
    assert failed.value.sentence == "The shots could not be joined into one film."
