"""``reelbot generate`` prints what the output safety check finds in the clip it made (the
worker's own classifiers and thresholds); ``--no-safety`` skips the check."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main

ARGV = ["generate", "a red balloon over a city", "--model", "tiny", "--seed", "7", "-o", "c.mp4"]


@pytest.fixture(autouse=True)
def data_dir(tiny_models_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REELBOT_DATA_DIR", str(tiny_models_dir.parent))
    return tiny_models_dir.parent


def safety_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str | None:
    assert main(argv) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("safety:")]
    assert len(lines) <= 1
    return lines[0] if lines else None


def test_the_verdict_and_scores_are_printed(capsys: pytest.CaptureFixture[str]) -> None:
    line = safety_line(capsys, ARGV)
    assert line is not None
    assert line.startswith("safety: safe (nudity 0.")
    assert ", nsfw 0." in line


def test_a_flagged_clip_says_so_and_is_still_written(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REELBOT_SAFETY_THRESHOLDS", "nudity=0,nsfw=0.0")
    line = safety_line(capsys, ARGV)
    assert line is not None
    assert line.startswith("safety: UNSAFE, the bot would withhold it: ")
    assert "(threshold 0.00)" in line
    assert (tmp_path / "c.mp4").is_file()


def test_no_safety_skips_the_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert safety_line(capsys, [*ARGV, "--no-safety"]) is None


def test_a_classifier_that_cannot_load_is_reported_not_fatal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REELBOT_SAFETY_CLASSIFIERS", "nudenet,no_such_module:make")
    line = safety_line(capsys, ARGV)
    assert line == (
        "safety: not checked: cannot import 'no_such_module' for 'no_such_module:make':"
        " No module named 'no_such_module'"
    )
