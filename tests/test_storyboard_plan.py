"""The storyboard's plan: its shots' prompts, its JSON form, and the simple plan."""

from __future__ import annotations

import pytest

from pipeline.camera import CAMERA_MOVES
from pipeline.errors import InvalidRequest
from pipeline.storyboard import Plan, Shot, fallback_plan

IDEA = "a fox explores a city at night"


def test_every_shot_prompt_repeats_the_sheet_and_names_its_camera_move() -> None:
    plan = Plan(
        idea=IDEA,
        sheet="A small red fox with a white-tipped tail; neon-lit rainy streets, film grain",
        shots=(
            Shot("The fox trots out of an alley", "pan right", 5.0),
            Shot("The fox sniffs a noodle stall", None, 4.0),
        ),
    )
    first, second = plan.shot_prompt(0), plan.shot_prompt(1)
    for prompt in (first, second):
        assert "A small red fox with a white-tipped tail" in prompt
    assert first.startswith("The fox trots out of an alley.")
    assert "pan right" in first
    assert not any(move in second for move in CAMERA_MOVES)
    assert plan.duration_s == 9.0


def test_a_plan_survives_its_json_form() -> None:
    plan = fallback_plan(IDEA, shots=3, seconds=4, style="watercolour", reason="a test")
    assert Plan.from_json(plan.to_json()) == plan


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        '{"idea": "x", "sheet": "y", "shots": []}',
        '{"idea": "x", "sheet": "y", "shots": [{"scene": "s", "camera": "spin", "duration_s": 2}]}',
        '{"idea": "x", "sheet": "y", "shots": [{"scene": "s", "camera": null, "duration_s": -1}]}',
        '{"idea": "x", "shots": [{"scene": "s", "camera": null, "duration_s": 2}]}',
    ],
)
def test_a_stored_plan_that_is_not_a_plan_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"plan|shot|camera"):
        Plan.from_json(text)


def test_the_simple_plan_opens_wide_closes_and_varies_the_camera() -> None:
    plan = fallback_plan(IDEA, shots=4, seconds=5, style=None, reason="it wrote no JSON")
    assert len(plan.shots) == 4
    assert plan.shots[0].scene.startswith("Establishing shot")
    assert plan.shots[-1].scene.startswith("Closing shot")
    assert all(IDEA in shot.scene for shot in plan.shots)
    assert len({shot.camera for shot in plan.shots}) == 4
    assert all(shot.duration_s == 5 for shot in plan.shots)
    assert plan.note is not None
    assert "could not be used (it wrote no JSON)" in plan.note
    assert "simple plan" in plan.note


@pytest.mark.parametrize("shots", [1, 9])
def test_a_storyboard_has_two_to_eight_shots(shots: int) -> None:
    with pytest.raises(InvalidRequest, match="2 to 8 shots"):
        fallback_plan(IDEA, shots=shots, seconds=5, style=None, reason="a test")
