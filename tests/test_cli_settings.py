"""A bad setting in the environment or ``.env`` is one sentence naming it, for every
``reelbot`` command and the ``python -m`` entry points, never a traceback."""

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
        "The setting safety_frames is not valid: Input should be greater than or equal to 1.\n"
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
        "The setting max_queue is not valid: "
        "Input should be a valid integer, unable to parse string as an integer.\n"
    )
