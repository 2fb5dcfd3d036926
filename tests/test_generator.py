"""The generator on the tiny Wan pipeline: frames, seeds, progress, cancellation, validation."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.generator import (
    GenerationCancelled,
    GenerationRequest,
    InvalidRequest,
    ModelUnavailable,
    VideoGenerator,
)
from pipeline.presets import PRESETS, resolve_preset


@pytest.fixture(scope="module")
def generator(tiny_models_dir: Path) -> VideoGenerator:
    generator = VideoGenerator(PRESETS["tiny"], models_dir=tiny_models_dir, device="cpu")
    generator.load()
    return generator


def test_frames_are_uint8_rgb_at_the_presets_size(generator: VideoGenerator) -> None:
    result = generator.generate(GenerationRequest("a red balloon over a city", seed=1))
    assert result.frames.dtype == np.uint8
    assert result.frames.shape == (9, 64, 112, 3)
    assert (result.width, result.height, result.fps) == (112, 64, 16)
    assert (result.seed, result.steps, result.guidance, result.model) == (1, 2, 5.0, "tiny")
    assert set(result.timings) == {"denoise", "decode"}


def test_the_same_seed_gives_identical_frames(generator: VideoGenerator) -> None:
    first = generator.generate(GenerationRequest("a cat surfing at sunset", seed=42))
    again = generator.generate(GenerationRequest("a cat surfing at sunset", seed=42))
    other = generator.generate(GenerationRequest("a cat surfing at sunset", seed=43))
    assert np.array_equal(first.frames, again.frames)
    assert not np.array_equal(first.frames, other.frames)


def test_a_seed_is_chosen_when_absent_and_reproduces_the_clip(generator: VideoGenerator) -> None:
    first = generator.generate(GenerationRequest("a dog running in the rain"))
    second = generator.generate(GenerationRequest("a dog running in the rain"))
    assert first.seed != second.seed
    again = generator.generate(GenerationRequest("a dog running in the rain", seed=first.seed))
    assert np.array_equal(first.frames, again.frames)


@pytest.mark.parametrize(
    ("aspect", "shape"), [("16:9", (64, 112)), ("9:16", (112, 64)), ("1:1", (80, 80))]
)
def test_each_aspect_ratio_has_its_size(
    generator: VideoGenerator, aspect: str, shape: tuple[int, int]
) -> None:
    result = generator.generate(GenerationRequest("waves on rocks", aspect=aspect, seed=0))
    assert result.frames.shape[1:3] == shape


def test_frames_and_duration_set_the_length(generator: VideoGenerator) -> None:
    assert len(generator.generate(GenerationRequest("x", frames=13, seed=0)).frames) == 13
    # 0.5 s at 16 fps is 8 frames; the nearest count the model accepts is 9.
    assert len(generator.generate(GenerationRequest("x", duration_s=0.5, seed=0)).frames) == 9


def test_hd_renders_larger_with_more_steps(generator: VideoGenerator) -> None:
    steps: list[int] = []
    result = generator.generate(
        GenerationRequest("fireworks over a river", hd=True, seed=0),
        on_step=lambda step, total: steps.append(total),
    )
    assert result.frames.shape[1:3] == (128, 224)
    assert result.steps == steps[0] == PRESETS["tiny"].hd_steps


def test_progress_reports_each_step_of_the_total(generator: VideoGenerator) -> None:
    seen: list[tuple[int, int]] = []
    generator.generate(
        GenerationRequest("a robot walking", steps=4, seed=0),
        on_step=lambda step, total: seen.append((step, total)),
    )
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_cancelling_stops_at_the_next_step(generator: VideoGenerator) -> None:
    seen: list[int] = []
    with pytest.raises(GenerationCancelled):
        generator.generate(
            GenerationRequest("a robot walking", steps=6, seed=0),
            on_step=lambda step, total: seen.append(step),
            should_cancel=lambda: len(seen) >= 2,
        )
    assert seen == [1, 2]


def test_cancelling_from_another_thread(generator: VideoGenerator) -> None:
    stop = threading.Event()
    seen: list[int] = []

    def on_step(step: int, total: int) -> None:
        seen.append(step)
        if step == 1:
            threading.Thread(target=stop.set).start()
            stop.wait(timeout=10)

    with pytest.raises(GenerationCancelled):
        generator.generate(
            GenerationRequest("a robot walking", steps=6, seed=0),
            on_step=on_step,
            should_cancel=stop.is_set,
        )
    assert seen == [1]


def test_the_generator_still_works_after_a_cancel(generator: VideoGenerator) -> None:
    with pytest.raises(GenerationCancelled):
        generator.generate(GenerationRequest("x", seed=5), should_cancel=lambda: True)
    before = generator.generate(GenerationRequest("x", seed=5))
    assert len(before.frames) == 9


BAD_REQUESTS = [
    pytest.param(GenerationRequest(""), "prompt is empty", id="empty prompt"),
    pytest.param(GenerationRequest("   \n"), "prompt is empty", id="blank prompt"),
    pytest.param(GenerationRequest("x" * 2001), "2001 characters", id="long prompt"),
    pytest.param(
        GenerationRequest("x", negative_prompt="y" * 2001), "negative prompt is 2001", id="long neg"
    ),
    pytest.param(GenerationRequest("x", aspect="4:3"), "'4:3'.*16:9, 9:16, 1:1", id="aspect"),
    pytest.param(
        GenerationRequest("x", frames=10), "10 frames.*4 from 5 to 81 .such as 9 or 13", id="4k+1"
    ),
    pytest.param(GenerationRequest("x", frames=1), "1 frames.*from 5 to 81", id="too few frames"),
    pytest.param(GenerationRequest("x", frames=85), "85 frames.*from 5 to 81", id="too many"),
    pytest.param(GenerationRequest("x", duration_s=30), "30 s.*0.3 to 5.1 seconds", id="long"),
    pytest.param(GenerationRequest("x", duration_s=0), "0 s.*0.3 to 5.1 seconds", id="zero s"),
    pytest.param(
        GenerationRequest("x", frames=9, duration_s=3), "9 frames and 3 s disagree", id="both"
    ),
    pytest.param(GenerationRequest("x", fps=0), "0 fps.*4 to 60", id="fps"),
    pytest.param(GenerationRequest("x", steps=0), "0 steps.*1 to 50", id="no steps"),
    pytest.param(GenerationRequest("x", steps=51), "51 steps.*1 to 50", id="many steps"),
    pytest.param(GenerationRequest("x", guidance=0.5), "0.5.*1 to 20", id="low guidance"),
    pytest.param(GenerationRequest("x", guidance=21), "21.*1 to 20", id="high guidance"),
    pytest.param(GenerationRequest("x", seed=-1), "-1.*0 to 4294967295", id="negative seed"),
    pytest.param(GenerationRequest("x", seed=2**32), "4294967296.*0 to 4294967295", id="big seed"),
    pytest.param(
        GenerationRequest("x", image=Image.new("RGB", (64, 64))), "text only", id="image to t2v"
    ),
]


@pytest.mark.parametrize(("request_", "message"), BAD_REQUESTS)
def test_each_bad_value_is_named_with_its_allowed_range(
    generator: VideoGenerator, request_: GenerationRequest, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        generator.validate(request_)


def test_validation_happens_before_any_model_work(tmp_path: Path) -> None:
    # The default model cannot load here; a bad request must fail on its own terms first.
    generator = VideoGenerator(PRESETS["wan2.1-t2v-1.3b"], models_dir=tmp_path, device="cpu")
    with pytest.raises(InvalidRequest):
        generator.generate(GenerationRequest("x", frames=80))
    assert not generator.loaded


def test_a_resolved_request_is_complete_and_stable(generator: VideoGenerator) -> None:
    resolved = generator.validate(GenerationRequest("  a cat  ", duration_s=0.5))
    assert resolved.prompt == "a cat"
    assert (resolved.frames, resolved.fps, resolved.steps, resolved.guidance) == (9, 16, 2, 5.0)
    assert resolved.seed is not None
    assert generator.validate(resolved) == resolved


def test_wan_durations_map_to_its_frame_counts() -> None:
    generator = VideoGenerator(PRESETS["wan2.1-t2v-1.3b"], models_dir=Path("unused"))
    assert generator.validate(GenerationRequest("x", duration_s=5)).frames == 81
    assert generator.validate(GenerationRequest("x", duration_s=3)).frames == 49
    assert generator.validate(GenerationRequest("x")).frames == 81


def test_a_missing_model_folder_fails_in_one_sentence(tmp_path: Path) -> None:
    preset = resolve_preset(str(tmp_path / "no-such-model"))
    generator = VideoGenerator(preset, models_dir=tmp_path, device="cpu")
    with pytest.raises(ModelUnavailable, match=r"^There is no model folder at .*--model tiny"):
        generator.load()


def test_a_folder_without_a_pipeline_fails_in_one_sentence(tmp_path: Path) -> None:
    generator = VideoGenerator(resolve_preset(str(tmp_path)), models_dir=tmp_path, device="cpu")
    with pytest.raises(ModelUnavailable, match=r"does not hold a loadable diffusers pipeline"):
        generator.load()
