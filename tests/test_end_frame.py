"""Loops and end frames on the tiny first-last-frame pipeline: the end image reaches the model,
a loop ends on its start image, models that cannot end on a frame are refused or passed over,
and the pictures never travel back through the broker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bot.cli import main
from jobqueue.broker.wire import Inputs, Outcome
from pipeline.clip import ClipMaker, MadeClip, ModelChoice
from pipeline.errors import InvalidRequest, StartImageUnreadable
from pipeline.generator import VideoGenerator, fit_image
from pipeline.presets import PRESETS, end_frame_model, resolve_preset
from pipeline.request import ClipRequest, check_request, resolve_request
from tests.broker_harness import tiny_models
from tests.end_frames import generate_from_pictures, noise, record_calls, use_models
from tests.mp4probe import probe_mp4

FLF = PRESETS["tiny-flf2v"]


@pytest.fixture(scope="module")
def flf(tiny_models_dir: Path) -> VideoGenerator:
    return VideoGenerator(FLF, models_dir=tiny_models_dir, device="cpu")


@pytest.fixture
def models(tiny_models_dir: Path) -> ModelChoice:
    """The tiny models, with tiny-flf2v for loops and end images."""
    return tiny_models(tiny_models_dir)


@pytest.fixture
def calls(flf: VideoGenerator, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    return record_calls(flf, monkeypatch)


def test_the_end_image_reaches_the_model_fitted_to_the_clip(
    flf: VideoGenerator, calls: list[dict[str, Any]]
) -> None:
    start, end = noise(1), noise(2, (90, 160))
    request = resolve_request(FLF, ClipRequest("x", seed=3), image=start, end_image=end)
    result = flf.generate(request)
    (call,) = calls
    assert result.frames.shape == (9, 64, 112, 3)
    assert np.array_equal(np.asarray(call["image"]), np.asarray(fit_image(start, 112, 64)))
    assert np.array_equal(np.asarray(call["last_image"]), np.asarray(fit_image(end, 112, 64)))


def test_a_loop_ends_on_its_start_image(flf: VideoGenerator, calls: list[dict[str, Any]]) -> None:
    start = noise(1)
    request = resolve_request(FLF, ClipRequest("x", seed=3, loop=True), image=start)
    assert request.end_image is start
    flf.generate(request)
    (call,) = calls
    assert np.array_equal(np.asarray(call["last_image"]), np.asarray(call["image"]))


def test_the_end_image_shapes_the_clip(flf: VideoGenerator) -> None:
    start = noise(1)

    def clip(end: Image.Image) -> np.ndarray:
        request = resolve_request(FLF, ClipRequest("x", seed=3), image=start, end_image=end)
        return flf.generate(request).frames

    assert np.array_equal(clip(noise(2)), clip(noise(2)))
    assert not np.array_equal(clip(noise(2)), clip(Image.new("RGB", (160, 90), "green")))


async def test_a_clip_from_a_start_and_an_end_image_is_a_playable_mp4(
    models: ModelChoice, tmp_path: Path
) -> None:
    start, end = tmp_path / "start.png", tmp_path / "end.png"
    noise(1).save(start)
    noise(2).save(end)
    made = await ClipMaker(models).make_clip(
        ClipRequest("the scene turns", seed=5),
        model="tiny-flf2v",
        output=lambda _request: tmp_path / "clip.mp4",
        max_bytes=10 * 2**20,
        start_image=start,
        end_image=end,
    )
    info = probe_mp4(made.clip.path)
    assert (info.codec, info.width, info.height, info.frames) == ("h264", 112, 64, 9)
    assert made.request.model == "tiny-flf2v"
    assert made.request.end_image is not None


async def test_an_unreadable_end_image_fails_with_a_sentence(
    models: ModelChoice, tmp_path: Path
) -> None:
    start, end = tmp_path / "start.png", tmp_path / "end.png"
    noise(1).save(start)
    end.write_bytes(b"not a picture")
    with pytest.raises(StartImageUnreadable, match="The end image for this clip could not be read"):
        await ClipMaker(models).make_clip(
            ClipRequest("x"),
            model="tiny-flf2v",
            output=lambda _request: tmp_path / "clip.mp4",
            max_bytes=10 * 2**20,
            start_image=start,
            end_image=end,
        )


@pytest.mark.parametrize(
    ("model", "asked", "end_image", "words"),
    [
        ("tiny-i2v", ClipRequest("x", loop=True), False, "cannot end a clip on a chosen frame"),
        (
            "tiny-i2v",
            ClipRequest("x"),
            True,
            "use one that can: wan2.1-flf2v-14b-720p, wan2.1-vace-1.3b, tiny-flf2v",
        ),
        ("tiny-flf2v", ClipRequest("x"), False, "give an end image, or ask for a loop"),
        ("tiny-flf2v", ClipRequest("x", loop=True), True, "give no end image with it"),
    ],
)
def test_the_door_refuses_what_the_model_cannot_end_on(
    model: str, asked: ClipRequest, end_image: bool, words: str
) -> None:
    with pytest.raises(InvalidRequest, match=words):
        check_request(PRESETS[model], asked, end_image=end_image)


def test_a_loop_or_an_end_image_passes_the_door_on_a_first_last_frame_model() -> None:
    assert check_request(FLF, ClipRequest(" x ", loop=True)).prompt == "x"
    assert check_request(FLF, ClipRequest("x"), end_image=True).loop is False


def test_the_end_frame_model_is_chosen_only_when_the_image_to_video_model_cannot(
    models: ModelChoice,
) -> None:
    assert models.model_for("i2v") == "tiny-i2v"
    assert models.model_for("i2v", end_frame=True) == "tiny-flf2v"
    assert models.model_for("t2v", end_frame=True) == "tiny"
    assert end_frame_model("tiny-flf2v", "") == "tiny-flf2v"
    assert end_frame_model("tiny-i2v", "") is None


def test_the_first_last_frame_weights_are_known_by_name_and_by_hub_id() -> None:
    real = resolve_preset("Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers")
    assert real.name == "wan2.1-flf2v-14b-720p"
    assert (real.pipeline_class, real.task, real.takes_end_frame) == (
        "WanImageToVideoPipeline",
        "i2v",
        True,
    )
    assert real.size_for("16:9") == (1280, 720)
    other = resolve_preset("someone/Wan2.1-FLF2V-14B-720P-finetune")
    assert (other.task, other.takes_end_frame) == ("i2v", True)
    assert not resolve_preset("wan2.1-i2v-14b-480p").takes_end_frame


def test_the_end_image_travels_to_a_remote_worker_beside_the_start_image(tmp_path: Path) -> None:
    sent = Inputs(start_image=b"start-png", end_image=b"end-png")
    wire = json.loads(json.dumps(sent.to_result(limit=2**20)))
    inputs = Inputs.from_result(wire).write(tmp_path)
    assert inputs.start_image is not None
    assert inputs.end_image is not None
    assert (inputs.start_image.read_bytes(), inputs.end_image.read_bytes()) == (
        b"start-png",
        b"end-png",
    )


async def test_a_finished_loop_goes_back_as_json_without_its_pictures(
    models: ModelChoice, tmp_path: Path
) -> None:
    start = tmp_path / "start.png"
    noise(1).save(start)
    made = await ClipMaker(models).make_clip(
        ClipRequest("x", seed=5, loop=True),
        model="tiny-flf2v",
        output=lambda _request: tmp_path / "clip.mp4",
        max_bytes=10 * 2**20,
        start_image=start,
    )
    result = json.loads(json.dumps(Outcome.done(made, None, ()).to_result(limit=2**24)))
    back: MadeClip = Outcome.from_result(result).made_at(tmp_path / "back" / "clip.mp4")
    assert (back.request.loop, back.request.start_image, back.request.end_image) == (
        True,
        None,
        None,
    )
    assert back.clip.path.read_bytes() == made.clip.path.read_bytes()


@pytest.fixture
def cli_data_dir(tiny_models_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """``reelbot generate``'s settings: the tiny models, tiny-flf2v for end frames."""
    use_models(monkeypatch, tmp_path, tiny_models_dir, i2v="tiny-i2v", end_frame="tiny-flf2v")
    return tiny_models_dir.parent


@pytest.mark.usefixtures("cli_data_dir")
@pytest.mark.parametrize("ending", [["--loop"], ["--end-image", "end.png"]])
def test_generate_makes_a_loop_or_ends_on_an_image_with_the_end_frame_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ending: list[str]
) -> None:
    assert "tiny-flf2v" in generate_from_pictures(tmp_path, capsys, ending)


@pytest.mark.usefixtures("cli_data_dir")
def test_generate_names_an_unreadable_end_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    noise(1).save(tmp_path / "start.png")
    argv = ["generate", "x", "--image", "start.png", "--end-image", "missing.png"]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("Cannot read the end image missing.png")
