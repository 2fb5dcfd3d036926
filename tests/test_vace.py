"""Wan VACE on the tiny random VACE pipeline: the start (and end) image reach the model as the
known frames of its conditioning video with their mask, a loop, an end image and a start image
alone each make a playable MP4, and the door treats VACE as a model that may end on a chosen
frame but need not (so it serves as the image-to-video model and as the end-frame model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pipeline.clip import ClipMaker, ModelChoice
from pipeline.errors import ClipFailed, InvalidRequest
from pipeline.generator import VideoGenerator, fit_image, vace_conditioning
from pipeline.presets import PRESETS, end_frame_model, resolve_preset
from pipeline.request import ClipRequest, check_request, resolve_request
from pipeline.tiny import ensure_tiny_pipeline
from tests.end_frames import generate_from_pictures, noise, record_calls, use_models
from tests.mp4probe import probe_mp4

VACE = PRESETS["tiny-vace"]
GREY = (128, 128, 128)
ALL_VACE = "wan2.1-flf2v-14b-720p, wan2.1-vace-1.3b, tiny-flf2v, tiny-vace"


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image)


@pytest.fixture(scope="module")
def vace_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder with only the tiny VACE pipeline: VACE alone serves image-to-video."""
    models_dir = tmp_path_factory.mktemp("vace-data") / "models"
    ensure_tiny_pipeline(models_dir, "vace")
    return models_dir


@pytest.fixture(scope="module")
def vace(vace_models_dir: Path) -> VideoGenerator:
    return VideoGenerator(VACE, models_dir=vace_models_dir, device="cpu")


@pytest.fixture
def calls(vace: VideoGenerator, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    return record_calls(vace, monkeypatch)


def assert_conditioning(
    call: dict[str, Any], first: Image.Image, last: Image.Image | None, frames: int = 9
) -> None:
    """The video holds ``first`` (and ``last``) where they belong, grey between; the mask keeps
    exactly those frames (0) and generates the rest (255)."""
    video, mask = call["video"], call["mask"]
    assert (len(video), len(mask), call["num_frames"]) == (frames, frames, frames)
    known = {0: first} if last is None else {0: first, frames - 1: last}
    for index, (frame, frame_mask) in enumerate(zip(video, mask, strict=True)):
        expected = known.get(index)
        if expected is None:
            assert frame.getcolors() == [(112 * 64, GREY)], index
            assert frame_mask.getextrema() == (255, 255), index
        else:
            assert np.array_equal(pixels(frame), pixels(fit_image(expected, 112, 64))), index
            assert frame_mask.getextrema() == (0, 0), index


def test_the_start_and_end_images_are_the_kept_frames_of_the_conditioning_video(
    vace: VideoGenerator, calls: list[dict[str, Any]]
) -> None:
    start, end = noise(1), noise(2, (90, 160))
    request = resolve_request(VACE, ClipRequest("x", seed=3), image=start, end_image=end)
    result = vace.generate(request)
    (call,) = calls
    assert result.frames.shape == (9, 64, 112, 3)
    assert_conditioning(call, start, end)
    assert not {"image", "last_image"} & call.keys()
    assert (call["prompt"], call["width"], call["height"]) == ("x", 112, 64)


def test_a_loop_keeps_the_start_image_as_its_last_frame(
    vace: VideoGenerator, calls: list[dict[str, Any]]
) -> None:
    start = noise(1)
    vace.generate(resolve_request(VACE, ClipRequest("x", seed=3, loop=True), image=start))
    (call,) = calls
    assert_conditioning(call, start, start)


def test_a_start_image_alone_keeps_only_the_first_frame(
    vace: VideoGenerator, calls: list[dict[str, Any]]
) -> None:
    start = noise(1)
    vace.generate(resolve_request(VACE, ClipRequest("x", seed=3), image=start))
    (call,) = calls
    assert_conditioning(call, start, None)


def test_frames_the_model_makes_past_the_clip_are_generated_after_its_last_frame() -> None:
    start, end = noise(1), noise(2)
    request = resolve_request(VACE, ClipRequest("x", frames=9), image=start, end_image=end)
    conditioning = vace_conditioning(request, 17)
    video, mask = conditioning["video"], conditioning["mask"]
    assert (len(video), len(mask)) == (17, 17)
    assert np.array_equal(pixels(video[8]), pixels(fit_image(end, 112, 64)))
    kept = [index for index, frame_mask in enumerate(mask) if frame_mask.getextrema() == (0, 0)]
    assert kept == [0, 8]


def test_the_end_image_shapes_the_clip(vace: VideoGenerator) -> None:
    start = noise(1)

    def clip(**ending: Any) -> np.ndarray:
        asked = ClipRequest("x", seed=3, loop=bool(ending.pop("loop", False)))
        return vace.generate(resolve_request(VACE, asked, image=start, **ending)).frames

    assert np.array_equal(clip(end_image=noise(2)), clip(end_image=noise(2)))
    assert not np.array_equal(clip(end_image=noise(2)), clip(end_image=noise(4)))
    assert not np.array_equal(clip(end_image=noise(2)), clip())
    assert not np.array_equal(clip(loop=True), clip())


@pytest.fixture
def models(vace_models_dir: Path) -> ModelChoice:
    """A server whose image-to-video model is tiny-vace, with no end-frame model of its own."""
    return ModelChoice(
        models_dir=vace_models_dir, t2v_model="tiny", i2v_model="tiny-vace", device="cpu"
    )


@pytest.mark.parametrize(
    ("asked", "with_end_image"),
    [
        (ClipRequest("x", seed=5, loop=True), False),
        (ClipRequest("x", seed=5), True),
        (ClipRequest("x", seed=5), False),
    ],
    ids=["loop", "end image", "start only"],
)
async def test_a_vace_clip_is_a_playable_mp4(
    models: ModelChoice, tmp_path: Path, asked: ClipRequest, with_end_image: bool
) -> None:
    start, end = tmp_path / "start.png", tmp_path / "end.png"
    noise(1).save(start)
    noise(2).save(end)
    model = models.model_for("i2v", end_frame=asked.loop or with_end_image)
    made = await ClipMaker(models).make_clip(
        asked,
        model=model,
        output=lambda _request: tmp_path / "clip.mp4",
        max_bytes=10 * 2**20,
        start_image=start,
        end_image=end if with_end_image else None,
    )
    info = probe_mp4(made.clip.path)
    assert (info.codec, info.width, info.height, info.frames) == ("h264", 112, 64, 9)
    assert made.request.model == "tiny-vace"
    assert (made.request.end_image is not None) is (asked.loop or with_end_image)


def test_vace_passes_the_door_with_or_without_an_end_frame() -> None:
    assert check_request(VACE, ClipRequest(" x ")).prompt == "x"
    assert check_request(VACE, ClipRequest("x", loop=True)).loop
    assert check_request(VACE, ClipRequest("x"), end_image=True).loop is False
    assert resolve_request(VACE, ClipRequest("x"), image=noise(1)).end_image is None


@pytest.mark.parametrize(
    ("model", "asked", "end_image", "words"),
    [
        ("tiny-vace", ClipRequest("x", loop=True), True, "give no end image with it"),
        ("tiny-i2v", ClipRequest("x", loop=True), False, f"use one that can: {ALL_VACE}."),
        ("tiny-flf2v", ClipRequest("x"), False, "give an end image, or ask for a loop"),
    ],
)
def test_the_door_refuses_as_for_first_last_frame_models(
    model: str, asked: ClipRequest, end_image: bool, words: str
) -> None:
    with pytest.raises(InvalidRequest, match=words):
        check_request(PRESETS[model], asked, end_image=end_image)


def test_vace_needs_a_start_image() -> None:
    with pytest.raises(InvalidRequest, match="animates a start image"):
        resolve_request(VACE, ClipRequest("x", loop=True))


def test_vace_serves_as_the_image_to_video_model_and_as_the_end_frame_model(
    models: ModelChoice,
) -> None:
    assert models.model_for("i2v") == "tiny-vace"
    assert models.model_for("i2v", end_frame=True) == "tiny-vace"
    assert end_frame_model("tiny-vace", "tiny-flf2v") == "tiny-vace"
    beside = ModelChoice(
        models_dir=Path("models"),
        t2v_model="tiny",
        i2v_model="tiny-i2v",
        end_frame_model="tiny-vace",
    )
    assert (beside.model_for("i2v"), beside.model_for("i2v", end_frame=True)) == (
        "tiny-i2v",
        "tiny-vace",
    )


def test_the_vace_weights_are_known_by_name_hub_id_and_folder(tmp_path: Path) -> None:
    real = resolve_preset("Wan-AI/Wan2.1-VACE-1.3B-diffusers")
    assert real is PRESETS["wan2.1-vace-1.3b"]
    assert (real.pipeline_class, real.task, real.takes_end_frame, real.needs_end_frame) == (
        "WanVACEPipeline",
        "i2v",
        True,
        False,
    )
    assert real.size_for("16:9") == real.size_for("16:9", hd=True) == (832, 480)
    assert not real.makes_drafts
    bigger = resolve_preset("Wan-AI/Wan2.1-VACE-14B-diffusers")
    folder = tmp_path / "my-vace"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "WanVACEPipeline"}))
    for other in (bigger, resolve_preset(str(folder))):
        assert (other.pipeline_class, other.task, other.takes_end_frame) == (
            "WanVACEPipeline",
            "i2v",
            True,
        )
        assert not other.needs_end_frame
    assert PRESETS["wan2.1-flf2v-14b-720p"].needs_end_frame


async def test_vace_makes_no_drafts_and_says_so(models: ModelChoice, tmp_path: Path) -> None:
    start = tmp_path / "start.png"
    noise(1).save(start)
    with pytest.raises(ClipFailed, match="The model tiny-vace renders clips straight away"):
        await ClipMaker(models).make_drafts(
            ClipRequest("x"),
            model="tiny-vace",
            output=lambda _request: tmp_path / "grid.mp4",
            max_bytes=10 * 2**20,
        )


@pytest.fixture
def cli_data_dir(vace_models_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """``reelbot generate``'s settings: tiny-vace as the image-to-video model, no end-frame
    model (VACE makes loops and end images itself)."""
    use_models(monkeypatch, tmp_path, vace_models_dir, i2v="tiny-vace", end_frame="")
    return vace_models_dir.parent


@pytest.mark.usefixtures("cli_data_dir")
@pytest.mark.parametrize("ending", [[], ["--loop"], ["--end-image", "end.png"]])
def test_generate_animates_loops_and_ends_on_an_image_with_vace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ending: list[str]
) -> None:
    assert "tiny-vace" in generate_from_pictures(tmp_path, capsys, ending)
