"""Requests as asked and as resolved: the door check, one definition of each limit, defaults."""

from __future__ import annotations

import dataclasses
import types
import typing

import pytest
from PIL import Image

from pipeline.errors import InvalidRequest
from pipeline.presets import PRESETS
from pipeline.request import ClipRequest, ResolvedRequest, check_request, resolve_request
from pipeline.text import MAX_NEGATIVE_CHARS, MAX_PROMPT_CHARS

TINY = PRESETS["tiny"]
TINY_I2V = PRESETS["tiny-i2v"]

BAD_REQUESTS = [
    pytest.param(ClipRequest(""), "prompt is empty", id="empty prompt"),
    pytest.param(ClipRequest("   \n"), "prompt is empty", id="blank prompt"),
    pytest.param(ClipRequest("\x00\x1b\u202e"), "prompt is empty", id="only controls"),
    pytest.param(
        ClipRequest("x" * (MAX_PROMPT_CHARS + 1)), "1,501 characters.*limit is 1,500", id="long"
    ),
    pytest.param(
        ClipRequest("x", negative_prompt="y" * (MAX_NEGATIVE_CHARS + 1)),
        "negative prompt is 1,001 characters",
        id="long neg",
    ),
    pytest.param(ClipRequest("x", aspect="4:3"), "'4:3'.*16:9, 9:16, 1:1", id="aspect"),
    pytest.param(
        ClipRequest("x", frames=10), "10 frames.*4 from 5 to 81 .such as 9 or 13", id="4k+1"
    ),
    pytest.param(ClipRequest("x", frames=1), "1 frames.*from 5 to 81", id="too few frames"),
    pytest.param(ClipRequest("x", frames=85), "85 frames.*from 5 to 81", id="too many"),
    pytest.param(ClipRequest("x", duration_s=30), "30 s.*0.3 to 5.1 seconds", id="long s"),
    pytest.param(ClipRequest("x", duration_s=0), "0 s.*0.3 to 5.1 seconds", id="zero s"),
    pytest.param(ClipRequest("x", duration_s=float("nan")), "nan s.*0.3 to 5.1", id="nan s"),
    pytest.param(ClipRequest("x", frames=9, duration_s=3), "9 frames and 3 s disagree", id="both"),
    pytest.param(ClipRequest("x", fps=0), "0 fps.*4 to 60", id="fps"),
    pytest.param(ClipRequest("x", steps=0), "0 steps.*1 to 50", id="no steps"),
    pytest.param(ClipRequest("x", steps=51), "51 steps.*1 to 50", id="many steps"),
    pytest.param(ClipRequest("x", guidance=0.5), "0.5.*1 to 20", id="low guidance"),
    pytest.param(ClipRequest("x", guidance=21), "21.*1 to 20", id="high guidance"),
    pytest.param(ClipRequest("x", seed=-1), "-1.*0 to 4294967295", id="negative seed"),
    pytest.param(ClipRequest("x", seed=2**32), "4294967296.*0 to 4294967295", id="big seed"),
]


@pytest.mark.parametrize(("asked", "message"), BAD_REQUESTS)
def test_the_door_check_names_each_bad_value_and_its_range(
    asked: ClipRequest, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        check_request(TINY, asked)


@pytest.mark.parametrize(("asked", "message"), BAD_REQUESTS)
def test_resolving_refuses_what_the_door_refuses(asked: ClipRequest, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        resolve_request(TINY, asked)


def test_the_door_check_cleans_the_text_and_leaves_defaults_to_the_model() -> None:
    asked = ClipRequest("  a cat\x00 with\x1b text\u202e \r\n", negative_prompt="blur\x07 ")
    checked = check_request(TINY, asked)
    assert (checked.prompt, checked.negative_prompt) == ("a cat with text", "blur")
    assert checked == dataclasses.replace(asked, prompt=checked.prompt, negative_prompt="blur")


def test_a_prompt_at_the_limit_passes() -> None:
    assert check_request(TINY, ClipRequest("x" * MAX_PROMPT_CHARS)).prompt == "x" * 1500


def test_a_model_with_longer_clips_accepts_a_length_the_tiny_one_refuses() -> None:
    asked = ClipRequest("x", duration_s=8)
    assert check_request(PRESETS["ltx-video"], asked) == asked
    with pytest.raises(InvalidRequest, match="8 s is out of range for tiny"):
        check_request(TINY, asked)


def test_a_resolved_request_has_every_setting_decided() -> None:
    resolved = resolve_request(TINY, ClipRequest("  a cat  ", duration_s=0.5, hd=True))
    assert resolved.prompt == "a cat"
    assert (resolved.width, resolved.height) == (224, 128)
    assert (resolved.frames, resolved.fps, resolved.steps, resolved.guidance) == (9, 16, 3, 5.0)
    assert resolved.duration_s == 9 / 16
    assert resolved.model == "tiny"
    assert 0 <= resolved.seed <= 2**32 - 1
    assert resolved.start_image is None


def test_only_pictures_and_unasked_camera_words_may_be_absent_from_a_resolved_request() -> None:
    hints = typing.get_type_hints(ResolvedRequest)
    optional = {
        name
        for name, hint in hints.items()
        if isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)
    }
    # A camera move or motion level nobody asked for is decided: the prompt says nothing.
    assert optional == {"start_image", "end_image", "camera", "motion"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolve_request(TINY, ClipRequest("x")).seed = 1  # type: ignore[misc]


def test_a_chosen_seed_differs_between_requests_and_a_given_one_stays() -> None:
    seeds = {resolve_request(TINY, ClipRequest("x")).seed for _ in range(5)}
    assert len(seeds) > 1
    assert resolve_request(TINY, ClipRequest("x", seed=7)).seed == 7


def test_wan_durations_map_to_its_frame_counts() -> None:
    wan = PRESETS["wan2.1-t2v-1.3b"]
    assert resolve_request(wan, ClipRequest("x", duration_s=5)).frames == 81
    assert resolve_request(wan, ClipRequest("x", duration_s=3)).frames == 49
    assert resolve_request(wan, ClipRequest("x")).frames == 81


def test_the_start_image_must_match_the_model() -> None:
    image = Image.new("RGB", (64, 64))
    with pytest.raises(InvalidRequest, match="makes clips from text only"):
        resolve_request(TINY, ClipRequest("x"), image=image)
    with pytest.raises(InvalidRequest, match="animates a start image"):
        resolve_request(TINY_I2V, ClipRequest("x"))
    assert resolve_request(TINY_I2V, ClipRequest("x"), image=image).start_image is image
