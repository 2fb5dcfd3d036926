"""A bad setting in the environment or ``.env`` is one sentence naming the variable the user
set, for every ``reelbot`` command and the ``python -m`` entry points, never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.cli import EXIT_BAD_REQUEST, main
from jobqueue import cli as worker_cli
from jobqueue import scene_cli


@pytest.mark.parametrize(
    "argv",
    [["run"], ["worker"], ["rewriter"], ["rewrite", "a cat"], ["generate", "a cat"], ["web"]],
    ids=lambda argv: argv[0],
)
def test_a_bad_setting_is_one_sentence(
    argv: list[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REELBOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("REELBOT_SAFETY_FRAMES", "0")

    assert main(argv) == EXIT_BAD_REQUEST

    err = capsys.readouterr().err
    assert err == (
        "The setting REELBOT_SAFETY_FRAMES is not valid: "
        "Input should be greater than or equal to 1.\n"
    )


@pytest.mark.parametrize(
    "entry", [worker_cli.main, scene_cli.main], ids=["python -m jobqueue", "scene_cli"]
)
def test_a_bad_setting_is_one_sentence_for_the_module_entry_points(
    entry: Callable[[list[str]], int],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REELBOT_MAX_QUEUE", "many")

    assert entry([]) == EXIT_BAD_REQUEST

    assert capsys.readouterr().err == (
        "The setting REELBOT_MAX_QUEUE is not valid: "
        "Input should be a valid integer, unable to parse string as an integer.\n"
    )


@pytest.fixture
def in_empty_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REELBOT_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def said_for_bad_setting(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == EXIT_BAD_REQUEST
    return capsys.readouterr().err


@pytest.mark.usefixtures("in_empty_folder")
def test_a_bad_web_port_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REELBOT_WEB_PORT", "abc")

    assert said_for_bad_setting(["web"], capsys).startswith(
        "The setting REELBOT_WEB_PORT is not valid: Input should be a valid integer"
    )


def test_a_bad_line_in_dotenv_names_its_variable(
    in_empty_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (in_empty_folder / ".env").write_text("REELBOT_WEB_PORT=abc\n")

    assert said_for_bad_setting(["web"], capsys).startswith("The setting REELBOT_WEB_PORT ")


@pytest.mark.usefixtures("in_empty_folder")
@pytest.mark.parametrize("name", ["DISCORD_SHARD_COUNT", "REELBOT_DISCORD_SHARD_COUNT"])
def test_a_setting_with_two_names_is_named_as_it_was_set(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(name, "many")

    assert said_for_bad_setting(["run"], capsys).startswith(f"The setting {name} is not valid: ")


def test_a_setting_with_two_names_in_dotenv_is_named_as_written(
    in_empty_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (in_empty_folder / ".env").write_text("REELBOT_DISCORD_SHARD_COUNT=many\n")

    assert said_for_bad_setting(["run"], capsys).startswith(
        "The setting REELBOT_DISCORD_SHARD_COUNT is not valid: "
    )


@pytest.mark.usefixtures("in_empty_folder")
def test_a_rule_over_two_settings_is_one_sentence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REELBOT_PROVENANCE_KEY", "key.pem")

    assert said_for_bad_setting(["web"], capsys) == (
        "The settings are not valid: set both REELBOT_PROVENANCE_KEY and "
        "REELBOT_PROVENANCE_CERT, or neither.\n"
    )
