"""Every ``reelbot`` command logs at REELBOT_LOG_LEVEL; ``-v`` means debug messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import build_parser, log_level

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def no_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REELBOT_LOG_LEVEL", raising=False)


def level_for(*argv: str) -> str:
    return log_level(build_parser().parse_args(argv))


def test_each_command_has_a_default_level() -> None:
    assert level_for("run") == "INFO"
    assert level_for("worker") == "INFO"
    assert level_for("rewrite", "a cat") == "INFO"
    # Its terminal is for the progress bar and the result.
    assert level_for("generate", "a cat") == "WARNING"


def test_the_setting_applies_to_every_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELBOT_LOG_LEVEL", "ERROR")
    for argv in (["run"], ["worker"], ["generate", "a cat"], ["rewrite", "a cat"]):
        assert level_for(*argv) == "ERROR"


def test_the_setting_is_read_from_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("REELBOT_LOG_LEVEL=debug\n")
    assert level_for("run") == "debug"


def test_verbose_means_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELBOT_LOG_LEVEL", "ERROR")
    assert level_for("-v", "generate", "a cat") == "DEBUG"


def reelbot_stderr(tmp_path: Path, *argv: str, level: str | None) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "queue")]),
        "REELBOT_DATA_DIR": str(tmp_path / "data"),
    }
    env.pop("REELBOT_LOG_LEVEL", None)
    if level is not None:
        env["REELBOT_LOG_LEVEL"] = level
    finished = subprocess.run(
        [sys.executable, "-m", "bot.cli", *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return finished.stderr


def test_a_command_outside_the_workers_logs_at_the_set_level(tmp_path: Path) -> None:
    argv = ("rewrite", "a cat", "--backend", "off")
    assert "DEBUG" in reelbot_stderr(tmp_path, *argv, level="DEBUG")
    assert "DEBUG" not in reelbot_stderr(tmp_path, *argv, level=None)


def test_an_unknown_level_is_named_and_the_command_still_runs(tmp_path: Path) -> None:
    err = reelbot_stderr(tmp_path, "rewrite", "a cat", "--backend", "off", level="LOUD")
    # Said by the command that was run, not by the worker's module.
    assert "bot.cli.rewrite: REELBOT_LOG_LEVEL=LOUD is not a log level" in err
