"""The options /create and /animate share: declared once, synced to Discord unchanged, and
turned into requests where the user's defaults fill gaps; the model a job will use."""

from __future__ import annotations

from typing import Any

import pytest

from bot.options import CommandOptions, build_request, job_preset, model_choices
from bot.settings import Settings
from bot.store import UserPrefs
from jobqueue.models import JobKind
from pipeline.camera import CAMERA_MOVES
from pipeline.errors import InvalidRequest
from tests.bot_harness import Reel

STRING, INTEGER, BOOLEAN, NUMBER = 3, 4, 5, 10

SHARED_OPTIONS: list[dict[str, Any]] = [
    {"name": "prompt", "type": STRING, "required": True, "min_length": 1, "max_length": 1500},
    {"name": "negative", "type": STRING, "required": False, "min_length": 1, "max_length": 1000},
    {"name": "aspect", "type": STRING, "required": False, "choices": ["16:9", "9:16", "1:1"]},
    {"name": "duration", "type": NUMBER, "required": False, "min_value": 0.1, "max_value": 60},
    {"name": "seed", "type": INTEGER, "required": False, "min_value": 0, "max_value": 2**32 - 1},
    {"name": "enhance", "type": BOOLEAN, "required": False},
    {"name": "model", "type": STRING, "required": False},
    {"name": "camera", "type": STRING, "required": False, "choices": list(CAMERA_MOVES)},
    {"name": "motion", "type": STRING, "required": False, "choices": ["low", "high"]},
]


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> Settings:
    monkeypatch.chdir(str(tmp_path))
    return Settings(model="tiny", i2v_model="tiny-i2v", enhance_default=True)


def shape(option: dict[str, Any]) -> dict[str, Any]:
    """What Discord's client enforces of an option (its type, bounds and choices)."""
    kept = {key: value for key, value in option.items() if key not in ("description", "choices")}
    if option["name"] != "model" and "choices" in option:
        kept["choices"] = [choice["value"] for choice in option["choices"]]
    return kept


async def test_create_and_animate_sync_the_same_options(reel: Reel) -> None:
    fake = reel.fake
    async with reel.bot_running():
        create = fake.server.commands.find(fake.guild, "create")["options"]
        animate = fake.server.commands.find(fake.guild, "animate")["options"]

    assert [shape(option) for option in create] == [
        *SHARED_OPTIONS,
        {"name": "drafts", "type": BOOLEAN, "required": False},
    ]
    assert [shape(option) for option in animate] == [
        {"name": "image", "type": 11, "required": True},
        *SHARED_OPTIONS,
        {"name": "end_image", "type": 11, "required": False},
        {"name": "loop", "type": BOOLEAN, "required": False},
    ]
    described = {
        name: {option["name"]: option for option in options}
        for name, options in (("create", create), ("animate", animate))
    }
    models = {
        name: [choice["value"] for choice in options["model"]["choices"]]
        for name, options in described.items()
    }
    assert models == {
        "create": ["wan2.1-t2v-1.3b", "wan2.1-t2v-1.3b-fast", "ltx-video", "tiny"],
        "animate": [
            "wan2.1-i2v-14b-480p",
            "wan2.1-flf2v-14b-720p",
            "wan2.1-vace-1.3b",
            "tiny-i2v",
            "tiny-flf2v",
            "tiny-vace",
        ],
    }
    worded_apart = {"prompt", "model"}
    for option in (shared["name"] for shared in SHARED_OPTIONS):
        description = described["create"][option]["description"]
        same = described["animate"][option]["description"] == description
        assert same is (option not in worded_apart), option


def test_user_defaults_fill_what_the_command_left_out(settings: Settings) -> None:
    prefs = UserPrefs(aspect="9:16", enhance=False)
    request = build_request(CommandOptions(prompt="a cat"), prefs, settings)
    assert (request.prompt, request.aspect, request.enhance) == ("a cat", "9:16", False)


def test_command_options_beat_user_defaults(settings: Settings) -> None:
    prefs = UserPrefs(aspect="9:16", enhance=False)
    options = CommandOptions(prompt="a cat", aspect="1:1", enhance=True, negative="blur")
    request = build_request(options, prefs, settings)
    assert (request.aspect, request.enhance, request.negative_prompt) == ("1:1", True, "blur")


def test_server_defaults_apply_last(settings: Settings) -> None:
    request = build_request(CommandOptions(prompt="a cat"), UserPrefs(), settings)
    assert (request.aspect, request.enhance) == ("16:9", True)


def test_a_job_runs_on_the_model_asked_for_else_the_default_for_its_task(
    settings: Settings,
) -> None:
    assert job_preset(settings, JobKind.CREATE, None).name == "tiny"
    assert job_preset(settings, JobKind.EXTEND, None).name == "tiny-i2v"
    assert job_preset(settings, JobKind.REMIX, "ltx-video").name == "ltx-video"


@pytest.mark.parametrize(
    ("kind", "model"),
    [(JobKind.CREATE, "/etc"), (JobKind.CREATE, "tiny-i2v"), (JobKind.ANIMATE, "tiny")],
)
def test_a_model_the_commands_do_not_offer_is_refused(
    settings: Settings, kind: JobKind, model: str
) -> None:
    with pytest.raises(InvalidRequest, match=f"The model '{model}' cannot make this clip"):
        job_preset(settings, kind, model)


def test_model_choices_match_the_task() -> None:
    assert "tiny" in {choice.value for choice in model_choices("t2v")}
    assert "tiny" not in {choice.value for choice in model_choices("i2v")}
