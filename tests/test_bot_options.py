"""Command options become requests: user defaults fill gaps, durations are checked early."""

from __future__ import annotations

import pytest

from bot.options import CommandOptions, build_request, duration_problem, model_choices
from bot.settings import Settings
from bot.store import UserPrefs


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> Settings:
    monkeypatch.chdir(str(tmp_path))
    return Settings(model="tiny", i2v_model="tiny-i2v", enhance_default=True)


def test_user_defaults_fill_what_the_command_left_out(settings: Settings) -> None:
    prefs = UserPrefs(aspect="9:16", enhance=False)
    request = build_request(CommandOptions(prompt="  a cat  "), prefs, settings)
    assert (request.prompt, request.aspect, request.enhance) == ("a cat", "9:16", False)


def test_command_options_beat_user_defaults(settings: Settings) -> None:
    prefs = UserPrefs(aspect="9:16", enhance=False)
    options = CommandOptions(prompt="a cat", aspect="1:1", enhance=True, negative="blur")
    request = build_request(options, prefs, settings)
    assert (request.aspect, request.enhance, request.negative_prompt) == ("1:1", True, "blur")


def test_server_defaults_apply_last(settings: Settings) -> None:
    request = build_request(CommandOptions(prompt="a cat"), UserPrefs(), settings)
    assert (request.aspect, request.enhance) == ("16:9", True)


def test_a_duration_the_model_cannot_make_is_a_sentence(settings: Settings) -> None:
    request = build_request(CommandOptions(prompt="a", duration=60), UserPrefs(), settings)
    problem = duration_problem(request, settings, "t2v")
    assert problem is not None
    assert "tiny" in problem
    assert "seconds" in problem
    fine = build_request(CommandOptions(prompt="a", duration=1), UserPrefs(), settings)
    assert duration_problem(fine, settings, "t2v") is None


def test_model_choices_match_the_task() -> None:
    assert "tiny" in {choice.value for choice in model_choices("t2v")}
    assert "tiny" not in {choice.value for choice in model_choices("i2v")}
