"""The storyboard's plan: its shots' prompts, its JSON form, and the simple plan."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pipeline.camera import CAMERA_MOVES
from pipeline.errors import InvalidRequest
from pipeline.presets import resolve_preset
from pipeline.rewrite import BackendError, Completion, RewriteMode
from pipeline.rewrite.guardrails import kept_share
from pipeline.rewrite.local import LocalBackend, LocalModel
from pipeline.rewrite.openai_compat import OpenAICompatBackend
from pipeline.storyboard import (
    PLAN_PRIMER,
    PLAN_STOP,
    Plan,
    Shot,
    fallback_plan,
    planning_prompt,
    shot_length_range,
    write_plan,
)
from pipeline.text import checked_prompt
from tests.conftest import ChatReply, FakeChatServer

IDEA = "a fox explores a city at night"
MODELS_DIR = Path(__file__).resolve().parent.parent / ".cache" / "models"
# Two shots of a 270M model on two busy CPU cores: a few minutes at worst.
GEMMA_TIMEOUT_S = 300


def test_every_shot_prompt_repeats_the_sheet_and_leaves_the_camera_to_the_request() -> None:
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
    # The move goes with the shot's request; the pipeline words it once (pipeline.camera).
    assert not any(move in prompt for move in CAMERA_MOVES for prompt in (first, second))
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


# --- the planner ---


class ScriptedLLM:
    """A test double for a language model: a TextBackend that answers every prompt with
    ``answer`` (or raises ``error``, or never answers) and keeps what it was asked."""

    def __init__(
        self, answer: str = "", *, error: BackendError | None = None, hang: bool = False
    ) -> None:
        self.answer = answer
        self.error = error
        self.hang = hang
        self.prompts: list[str] = []
        self.stops: list[tuple[str, ...]] = []

    @property
    def name(self) -> str:
        return "scripted"

    @property
    def model(self) -> str:
        return "scripted-llm"

    @property
    def sees_images(self) -> bool:
        return False

    async def warm_up(self) -> float:
        return 0.0

    async def complete(
        self, prompt: str, *, mode: RewriteMode, seed: int, image: Image.Image | None = None
    ) -> Completion:
        raise AssertionError("the planner asks with its own prompt")

    async def complete_text(
        self, prompt: str, *, stop: tuple[str, ...], max_tokens: int, seed: int
    ) -> Completion:
        self.prompts.append(prompt)
        self.stops.append(stop)
        if self.hang:
            await asyncio.Event().wait()
        if self.error is not None:
            raise self.error
        return Completion(self.answer, tokens=len(self.answer.split()))

    async def aclose(self) -> None:
        return None


GOOD_PLAN = {
    "sheet": "A small red fox with a white-tipped tail; neon-lit rainy streets, film grain",
    "shots": [
        {"scene": "The fox trots out of an alley in the city at night", "camera": "pan right",
         "duration": 4},
        {"scene": "The fox explores a noodle stall", "camera": "slow dolly-in", "duration": 9},
        {"scene": "The fox sits on a rooftop over the city", "camera": "spinning wildly",
         "duration": "3s"},
        {"scene": "The fox curls up under a bridge at dawn", "camera": None, "duration": 0.1},
    ],
}  # fmt: skip


async def _plan(answer: str, **asked: Any) -> Plan:
    options: dict[str, Any] = {"shots": 4, "seconds": 5.0, "style": None, **asked}
    return await write_plan(ScriptedLLM(answer), IDEA, **options)


async def test_a_good_json_plan_becomes_the_shots() -> None:
    plan = await _plan("Sure! Here is the plan:\n```json\n" + json.dumps(GOOD_PLAN) + "\n```")
    assert plan.note is None
    assert plan.idea == IDEA
    assert plan.sheet == GOOD_PLAN["sheet"]
    assert [shot.scene for shot in plan.shots] == [s["scene"] for s in GOOD_PLAN["shots"]]
    # Camera words are read as the move they name, or dropped.
    assert [shot.camera for shot in plan.shots] == ["pan right", "dolly in", None, None]
    # Lengths stay within what was asked: at most 5 s, at least 1 s.
    assert [shot.duration_s for shot in plan.shots] == [4.0, 5.0, 3.0, 1.0]
    assert "neon-lit rainy streets" in plan.shot_prompt(3)


async def test_malformed_json_gets_the_simple_plan_with_its_sentence() -> None:
    broken = '{"sheet": "a red fox", "shots": [{"scene": "The fox in the city", camera: pan left}]}'
    plan = await _plan(broken)
    assert plan.note == (
        "The model's shot plan could not be used (its JSON was malformed); "
        "this is a simple plan made from your idea."
    )
    assert len(plan.shots) == 4
    assert plan.shots[0].scene.startswith("Establishing shot: a fox explores a city at night")


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("The fox goes out, then the fox comes back.", "it wrote no plan in JSON"),
        ('["a list", "of scenes"]', "it wrote no plan in JSON"),
        ('{"sheet": "a fox", "scenes": ["out", "in"]}', "its answer had no list of shots"),
        (json.dumps({**GOOD_PLAN, "shots": GOOD_PLAN["shots"][:3]}), "it planned 3 shots, not 4"),
        (
            json.dumps({**GOOD_PLAN, "shots": [{"scene": "  ", "camera": "static"}] * 4}),
            "a shot in its plan had no scene",
        ),
        (
            json.dumps({"sheet": "An old keeper", "shots": [{"scene": "A lighthouse"}] * 4}),
            "its shots were not about the idea",
        ),
        ('{"shots": ' + "[" * 500 + "]" * 500 + "}", "its JSON was nested too deeply"),
    ],
)
async def test_an_unusable_answer_gets_the_simple_plan_saying_why(answer: str, reason: str) -> None:
    plan = await _plan(answer)
    assert plan.note is not None
    assert f"could not be used ({reason})" in plan.note


async def test_a_base_model_goes_on_from_the_start_of_the_plan() -> None:
    """A base model continues the prompt, which ends with the plan's first characters."""
    whole = json.dumps(GOOD_PLAN)
    assert whole.startswith(PLAN_PRIMER)
    plan = await _plan(whole.removeprefix(PLAN_PRIMER) + "\nIdea: the next one")
    assert plan.note is None
    assert plan.sheet == GOOD_PLAN["sheet"]


async def test_an_answer_cut_short_by_the_token_cap_keeps_its_whole_shots() -> None:
    five = {**GOOD_PLAN, "shots": [*GOOD_PLAN["shots"], {"scene": "The fox", "camera": "st"}]}
    cut = json.dumps(five)[: -len('st"}]}')]
    plan = await _plan(cut)
    assert plan.note is None
    assert [shot.scene for shot in plan.shots] == [s["scene"] for s in GOOD_PLAN["shots"]]
    # What the packaged Gemma wrote once: shot 3 is broken, shots 1 and 2 are whole.
    gemma = (
        'A fox with a red scarf; sky, bright cinematic light", "shots": [{"shot": 1, "scene": '
        '"The fox jumps over the fence", "camera": "pan right", "duration": 5}, {"shot": 2, '
        '"scene": "The fox climbs through a door in the city at night", "camera": "tilt up", '
        '"duration": 4}, {"shot": 3, "scene": "Her friend opens the door," camera: "zoom in", '
        '"duration": 6}\n"shot": 4, "scene": "foxes on the moon"}, {"shot": 5, "scene": "a man'
    )
    two = await _plan(gemma, shots=2)
    assert two.note is None
    assert [shot.camera for shot in two.shots] == ["pan right", "tilt up"]
    assert two.sheet == "A fox with a red scarf; sky, bright cinematic light"
    fewer = await _plan(json.dumps(GOOD_PLAN)[:-40])
    assert fewer.note is not None
    assert "(it planned 3 shots, not 4)" in fewer.note


async def test_extra_shots_are_left_out_and_the_style_reaches_every_prompt() -> None:
    plan = await _plan(json.dumps(GOOD_PLAN), shots=2, style="watercolour")
    assert len(plan.shots) == 2
    assert plan.sheet.endswith("; watercolour")
    assert all("watercolour" in plan.shot_prompt(index) for index in range(2))


async def test_model_trouble_gets_the_simple_plan() -> None:
    failing = ScriptedLLM(error=BackendError("the rewriting endpoint is unreachable"))
    plan = await write_plan(failing, IDEA, shots=3, seconds=5, style=None)
    assert plan.note is not None
    assert "(the rewriting endpoint is unreachable)" in plan.note
    slow = ScriptedLLM(hang=True)
    plan = await write_plan(slow, IDEA, shots=3, seconds=5, style=None, timeout_s=0.05)
    assert plan.note is not None
    assert "(it took too long)" in plan.note
    plan = await write_plan(None, IDEA, shots=3, seconds=5, style=None)
    assert plan.note is not None
    assert "no language model" in plan.note


async def test_the_model_is_shown_the_json_shape_the_idea_and_the_shot_count() -> None:
    llm = ScriptedLLM(json.dumps(GOOD_PLAN))
    await write_plan(llm, IDEA, shots=4, seconds=5, style="film noir")
    [prompt] = llm.prompts
    assert prompt.endswith(f"Idea: {IDEA}\nShots: 4\nStyle: film noir\nPlan: {PLAN_PRIMER}")
    assert '"shots": [{"shot": 1, "scene": ' in prompt
    # It stops at the next example, or where it would start a fifth shot.
    assert llm.stops[0] == ("\nIdea:", "\n\n", '{"shot": 5,')


async def test_the_openai_backend_sends_the_planning_prompt_as_it_is(
    chat_server: FakeChatServer,
) -> None:
    """Through the real OpenAI-compatible backend; ``chat_server`` is a test double for an LLM
    endpoint answering with a plan."""
    chat_server.script(ChatReply(content=json.dumps(GOOD_PLAN)))
    backend = OpenAICompatBackend(base_url=chat_server.base_url, model="planner")
    try:
        plan = await write_plan(backend, IDEA, shots=4, seconds=5, style=None, seed=7)
    finally:
        await backend.aclose()
    assert plan.note is None
    [body] = chat_server.requests
    assert body["messages"] == [
        {"role": "user", "content": planning_prompt(IDEA, shots=4, style=None)}
    ]
    assert body["stop"] == [*PLAN_STOP, '{"shot": 5,']
    assert body["seed"] == 7
    assert body["max_tokens"] >= 4 * 30


@pytest.fixture(scope="module")
def gemma() -> LocalModel:
    return LocalModel.load("gemma3-270m", models_dir=MODELS_DIR)


async def test_the_packaged_gemma_gives_a_plan_or_the_simple_one(gemma: LocalModel) -> None:
    """The real base model (slow: one test). Whatever a 270M model writes, the result is a plan
    reelbot can shoot."""
    backend = LocalBackend("gemma3-270m", models_dir=MODELS_DIR, loaded=gemma)
    try:
        plan = await write_plan(
            backend, IDEA, shots=2, seconds=5, style=None, seed=0, timeout_s=GEMMA_TIMEOUT_S
        )
    finally:
        await backend.aclose()
    assert len(plan.shots) == 2
    assert all(shot.scene and 1 <= shot.duration_s <= 5 for shot in plan.shots)
    assert all(shot.camera is None or shot.camera in CAMERA_MOVES for shot in plan.shots)
    assert plan.note is None or "simple plan made from your idea" in plan.note
    prompts = [checked_prompt(plan.shot_prompt(index)) for index in range(2)]
    assert kept_share(IDEA, " ".join(prompts)) >= 0.5


@pytest.mark.parametrize(
    ("idea", "style", "message"),
    [
        ("  \n", None, "The idea is empty"),
        ("x" * 1001, None, "The idea is 1,001 characters long"),
        (IDEA, "y" * 201, "The style is 201 characters long"),
    ],
)
async def test_an_empty_idea_or_an_overlong_style_is_refused(
    idea: str, style: str | None, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        await write_plan(None, idea, shots=4, seconds=5, style=style)


async def test_every_shot_prompt_fits_the_video_models_prompt_limit() -> None:
    longest = {
        "sheet": "word " * 400,
        "shots": [{"scene": f"{IDEA} " + "more " * 200, "camera": "dolly out"}] * 8,
    }
    idea, style = f"{IDEA} " * 32, "s" * 200
    model_plan = await write_plan(
        ScriptedLLM(json.dumps(longest)), idea, shots=8, seconds=5, style=style
    )
    assert model_plan.note is None
    simple_plan = await write_plan(None, idea, shots=8, seconds=5, style=style)
    for plan in (model_plan, simple_plan):
        for index in range(8):
            assert checked_prompt(plan.shot_prompt(index))


@pytest.mark.parametrize(
    ("first", "rest", "lengths"),
    [
        ("wan2.1-t2v-1.3b", "wan2.1-i2v-14b-480p", (0.4, 5.0)),
        # LTX makes 10.7 s clips on its own, but every later shot is Wan's.
        ("ltx-video", "wan2.1-i2v-14b-480p", (0.4, 5.0)),
        ("wan2.1-t2v-1.3b", "ltx-video", (0.4, 5.0)),
        ("ltx-video", "ltx-video", (0.4, 10.7)),
    ],
)
def test_a_shot_is_as_long_as_both_models_can_make(
    first: str, rest: str, lengths: tuple[float, float]
) -> None:
    assert shot_length_range(resolve_preset(first), resolve_preset(rest)) == lengths
