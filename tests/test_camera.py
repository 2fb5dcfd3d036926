"""Camera moves and motion levels: the words the video model and the rewriter get for them,
and what motion does to the sampler; through ``ClipMaker`` on the tiny pipelines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.camera import (
    CAMERA_MOVES,
    CAMERA_PHRASES,
    MOTION_LEVELS,
    MOTION_PHRASES,
    directed_prompt,
    idea_with_direction,
    idea_without_direction,
    motion_flow_shift,
)
from pipeline.clip import ClipMaker, ClipStage, ModelChoice, StageChange
from pipeline.encode import read_tags
from pipeline.errors import InvalidRequest
from pipeline.generator import VideoGenerator
from pipeline.presets import PRESETS, TINY
from pipeline.request import ClipRequest, resolve_request
from pipeline.rewrite import PromptRewriter
from pipeline.rewrite.guardrails import review
from pipeline.rewrite.prompts import system_brief
from tests.conftest import ChatReply, FakeChatServer, default_scene


@pytest.mark.parametrize("move", CAMERA_MOVES)
def test_every_move_has_a_sentence_the_model_gets_after_the_prompt(move: str) -> None:
    directed = directed_prompt("a fox in the snow", move, None)
    assert directed == f"a fox in the snow. {CAMERA_PHRASES[move]}"


def test_the_sentences_say_what_the_user_chose() -> None:
    assert CAMERA_PHRASES["zoom in"] == "The camera slowly zooms in."
    assert CAMERA_PHRASES["handheld"] == "Handheld camera, slight natural shake."
    assert CAMERA_PHRASES["static"] == "Static camera, locked-off shot."
    assert "left" in CAMERA_PHRASES["pan left"]
    assert "right" in CAMERA_PHRASES["pan right"]
    assert set(MOTION_PHRASES) == set(MOTION_LEVELS)


def test_motion_follows_the_camera_and_nothing_is_added_when_nothing_was_chosen() -> None:
    assert directed_prompt("A fox runs!", "orbit", "high") == (
        "A fox runs! The camera orbits around the subject. Fast, dynamic, energetic motion."
    )
    assert directed_prompt("a fox", None, "low") == "a fox. Subtle, slow, gentle motion."
    assert directed_prompt("a fox runs", None, None) == "a fox runs"


def test_a_prompt_that_already_has_the_sentences_gets_them_once() -> None:
    once = directed_prompt("a fox", "zoom in", "low")
    assert directed_prompt(once, "zoom in", "low") == once


def test_a_forged_move_or_level_is_refused_with_the_choices() -> None:
    with pytest.raises(InvalidRequest, match="choose one of static, pan left"):
        directed_prompt("a fox", "barrel roll", None)
    with pytest.raises(InvalidRequest, match="choose low or high"):
        idea_with_direction("a fox", None, "ludicrous")


def test_the_rewriter_gets_the_move_as_a_note_that_comes_off_again() -> None:
    idea = idea_with_direction("a fox (red) ", "dolly in", "low")
    assert idea == "a fox (red) (camera: dolly in; motion: low)"
    assert idea_without_direction(idea) == "a fox (red)"
    assert idea_without_direction(idea_with_direction("a fox", None, "high")) == "a fox"
    assert idea_with_direction("a fox", None, None) == "a fox"
    # A user's own brackets stay.
    assert idea_without_direction("a fox (camera: a polaroid)") == "a fox (camera: a polaroid)"


@pytest.mark.parametrize("mode", ["t2v", "i2v"])
def test_the_rewriters_brief_says_to_keep_the_move(mode: str) -> None:
    brief = system_brief(mode)  # type: ignore[arg-type]
    assert "(camera: zoom in; motion: low)" in brief
    assert "exactly that" in brief


def test_a_rewrite_that_keeps_the_subject_but_not_the_notes_words_is_kept() -> None:
    idea = idea_with_direction("a tabby cat sleeping", "static", "low")
    scene = "A tabby cat is sleeping on a sunny windowsill while curtains sway. Soft light."
    assert review(idea, scene).rejected is None
    assert review(idea, "A red sports car speeds through a tunnel at night.").rejected == (
        "lost the subject"
    )


def test_motion_moves_the_flow_shift_modestly_where_the_sampler_allows() -> None:
    wan = PRESETS["wan2.1-t2v-1.3b"]
    base = wan.flow_shift_for(hd=False)
    assert base == 3.0
    assert motion_flow_shift(base, None, sampler=wan.sampler) == 3.0
    assert motion_flow_shift(base, "low", sampler=wan.sampler) == 2.25
    assert motion_flow_shift(base, "high", sampler=wan.sampler) == 4.5
    fast = PRESETS["wan2.1-t2v-1.3b-fast"]
    assert motion_flow_shift(fast.flow_shift, "high", sampler=fast.sampler) == fast.flow_shift
    ltx = PRESETS["ltx-video"]
    assert motion_flow_shift(ltx.flow_shift, "high", sampler=ltx.sampler) is None


def test_motion_reaches_the_sampler(tiny_models_dir: Path) -> None:
    """The same prompt and seed with motion high makes other frames: the shift changed."""
    generator = VideoGenerator(TINY, models_dir=tiny_models_dir, device="cpu")
    asked = ClipRequest("a kite over a beach", seed=5)
    usual = resolve_request(TINY, asked)
    lively = resolve_request(TINY, ClipRequest("a kite over a beach", seed=5, motion="high"))
    assert lively.prompt == usual.prompt
    again = generator.generate(usual).frames
    assert np.array_equal(generator.generate(usual).frames, again)
    assert not np.array_equal(generator.generate(lively).frames, again)


@pytest.fixture
def maker(tiny_models_dir: Path) -> ClipMaker:
    return ClipMaker(
        ModelChoice(
            models_dir=tiny_models_dir, t2v_model="tiny", i2v_model="tiny-i2v", device="cpu"
        )
    )


async def test_the_model_gets_the_move_after_a_rewrite_that_lost_it(
    maker: ClipMaker,
    tmp_path: Path,
    chat_server: FakeChatServer,
    scene_writer: PromptRewriter,
) -> None:
    # The scene keeps the subject but moves the camera its own way ("glides alongside").
    chat_server.script(ChatReply(content=default_scene("a paper boat")))
    changes: list[StageChange] = []

    async def on_stage(change: StageChange) -> None:
        changes.append(change)

    made = await maker.make_clip(
        ClipRequest("a paper boat", camera="zoom in", motion="high"),
        model="tiny",
        output=lambda _request: tmp_path / "clip.mp4",
        max_bytes=10 * 2**20,
        rewriter=scene_writer,
        on_stage=on_stage,
    )
    idea = chat_server.requests[0]["messages"][-1]["content"]
    assert idea == "a paper boat (camera: zoom in; motion: high)"
    expected = (
        f"{default_scene('a paper boat')} {CAMERA_PHRASES['zoom in']} {MOTION_PHRASES['high']}"
    )
    generating = next(change for change in changes if change.stage is ClipStage.GENERATING)
    assert generating.prompt is not None
    assert generating.prompt.text == expected
    assert made.prompt.rewritten == expected
    assert f"Rewritten prompt: {expected}" in read_tags(made.clip.path)["comment"]
    assert (made.request.camera, made.request.motion) == ("zoom in", "high")


async def test_without_a_rewriter_the_model_gets_the_users_words_and_the_move(
    maker: ClipMaker, tmp_path: Path
) -> None:
    made = await maker.make_clip(
        ClipRequest("a paper boat", camera="handheld"),
        model="tiny",
        output=lambda _request: tmp_path / "clip.mp4",
        max_bytes=10 * 2**20,
    )
    assert made.prompt.text == "a paper boat. Handheld camera, slight natural shake."
    assert made.prompt.rewritten is None
    assert made.request.prompt == "a paper boat"
