"""The generator on the tiny Wan pipeline: frames, seeds, sizes, progress, cancellation."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.generator import GenerationCancelled, ModelUnavailable, VideoGenerator
from pipeline.presets import PRESETS, resolve_preset
from pipeline.request import ClipRequest, ResolvedRequest, resolve_request


@pytest.fixture(scope="module")
def generator(tiny_models_dir: Path) -> VideoGenerator:
    generator = VideoGenerator(PRESETS["tiny"], models_dir=tiny_models_dir, device="cpu")
    generator.load()
    return generator


def tiny(prompt: str, **asked: Any) -> ResolvedRequest:
    """``prompt`` and options resolved for the tiny preset."""
    return resolve_request(PRESETS["tiny"], ClipRequest(prompt, **asked))


def test_frames_are_uint8_rgb_at_the_presets_size(generator: VideoGenerator) -> None:
    result = generator.generate(tiny("a red balloon over a city", seed=1))
    assert result.frames.dtype == np.uint8
    assert result.frames.shape == (9, 64, 112, 3)
    assert (result.width, result.height, result.fps) == (112, 64, 16)
    assert (result.seed, result.steps, result.guidance, result.model) == (1, 2, 5.0, "tiny")
    assert set(result.timings) == {"denoise", "decode"}


def test_the_same_seed_gives_identical_frames(generator: VideoGenerator) -> None:
    first = generator.generate(tiny("a cat surfing at sunset", seed=42))
    again = generator.generate(tiny("a cat surfing at sunset", seed=42))
    other = generator.generate(tiny("a cat surfing at sunset", seed=43))
    assert np.array_equal(first.frames, again.frames)
    assert not np.array_equal(first.frames, other.frames)


def test_a_seed_is_chosen_when_absent_and_reproduces_the_clip(generator: VideoGenerator) -> None:
    first = generator.generate(tiny("a dog running in the rain"))
    second = generator.generate(tiny("a dog running in the rain"))
    assert first.seed != second.seed
    again = generator.generate(tiny("a dog running in the rain", seed=first.seed))
    assert np.array_equal(first.frames, again.frames)


@pytest.mark.parametrize(
    ("aspect", "shape"), [("16:9", (64, 112)), ("9:16", (112, 64)), ("1:1", (80, 80))]
)
def test_each_aspect_ratio_has_its_size(
    generator: VideoGenerator, aspect: str, shape: tuple[int, int]
) -> None:
    result = generator.generate(tiny("waves on rocks", aspect=aspect, seed=0))
    assert result.frames.shape[1:3] == shape


def test_frames_and_duration_set_the_length(generator: VideoGenerator) -> None:
    assert len(generator.generate(tiny("x", frames=13, seed=0)).frames) == 13
    # 0.5 s at 16 fps is 8 frames; the nearest count the model accepts is 9.
    assert len(generator.generate(tiny("x", duration_s=0.5, seed=0)).frames) == 9


def test_hd_renders_larger_with_more_steps(generator: VideoGenerator) -> None:
    steps: list[int] = []
    result = generator.generate(
        tiny("fireworks over a river", hd=True, seed=0),
        on_step=lambda step, total: steps.append(total),
    )
    assert result.frames.shape[1:3] == (128, 224)
    assert result.steps == steps[0] == PRESETS["tiny"].hd_steps


def test_progress_reports_each_step_of_the_total(generator: VideoGenerator) -> None:
    seen: list[tuple[int, int]] = []
    generator.generate(
        tiny("a robot walking", steps=4, seed=0),
        on_step=lambda step, total: seen.append((step, total)),
    )
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_cancelling_stops_at_the_next_step(generator: VideoGenerator) -> None:
    seen: list[int] = []
    with pytest.raises(GenerationCancelled):
        generator.generate(
            tiny("a robot walking", steps=6, seed=0),
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
            tiny("a robot walking", steps=6, seed=0),
            on_step=on_step,
            should_cancel=stop.is_set,
        )
    assert seen == [1]


def test_the_generator_still_works_after_a_cancel(generator: VideoGenerator) -> None:
    with pytest.raises(GenerationCancelled):
        generator.generate(tiny("x", seed=5), should_cancel=lambda: True)
    before = generator.generate(tiny("x", seed=5))
    assert len(before.frames) == 9


def test_a_missing_model_folder_fails_in_one_sentence(tmp_path: Path) -> None:
    preset = resolve_preset(str(tmp_path / "no-such-model"))
    generator = VideoGenerator(preset, models_dir=tmp_path, device="cpu")
    with pytest.raises(ModelUnavailable, match=r"^There is no model folder at .*--model tiny"):
        generator.load()


def test_a_folder_without_a_pipeline_fails_in_one_sentence(tmp_path: Path) -> None:
    generator = VideoGenerator(resolve_preset(str(tmp_path)), models_dir=tmp_path, device="cpu")
    with pytest.raises(ModelUnavailable, match=r"does not hold a loadable diffusers pipeline"):
        generator.load()


def test_a_request_resolved_for_another_model_is_refused(generator: VideoGenerator) -> None:
    for_wan = resolve_request(PRESETS["wan2.1-t2v-1.3b"], ClipRequest("x"))
    with pytest.raises(ValueError, match=r"wan2\.1-t2v-1\.3b given to tiny"):
        generator.generate(for_wan)
