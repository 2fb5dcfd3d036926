"""``reelbot storyboard`` end to end: a planned film of tiny-model shots, each from the last,
and what the output safety check finds in its shots."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from bot.cli import main
from pipeline.encode import read_tags
from tests.conftest import ChatReply, FakeChatServer
from tests.mp4probe import probe_mp4

ROOT = Path(__file__).resolve().parent.parent
IDEA = "a fox explores a city at night"
TINY_CLIP_FRAMES = 9  # the tiny model's usual clip: 9 frames at 16 fps
TIMEOUT_S = 600


def _env(data_dir: Path, tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf"),
        "REELBOT_DATA_DIR": str(data_dir),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "queue")]),
        # Hard cuts unless a test asks: a film's length is then the sum of its shots.
        "REELBOT_STORYBOARD_CROSSFADE_S": "0",
        **settings,
    }
    env.pop("REELBOT_MODEL", None)
    env.pop("REELBOT_I2V_MODEL", None)
    return env


def _reelbot(cwd: Path, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    """``reelbot *argv`` in its own process, as a user runs it; it must succeed."""
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_storyboard_writes_one_h264_film_about_four_clips_long(
    tiny_models_dir: Path, tmp_path: Path
) -> None:
    # The rewriter is off here, as on a server without a language model: the simple plan.
    env = _env(tiny_models_dir.parent, tmp_path, REELBOT_REWRITER="off")
    result = _reelbot(
        tmp_path, env, "storyboard", "--model", "tiny", IDEA, "--shots", "4", "-o", "film.mp4"
    )
    film = tmp_path / "film.mp4"
    info = probe_mp4(film)
    assert (info.codec, info.pix_fmt, info.moov_before_mdat) == ("h264", "yuv420p", True)
    assert (info.width, info.height) == (112, 64)
    assert info.frames == pytest.approx(4 * TINY_CLIP_FRAMES, abs=2)
    shots = sorted((tmp_path / "film-shots").glob("shot-*.mp4"))
    assert [shot.name for shot in shots] == [f"shot-{n}.mp4" for n in range(1, 5)]
    assert f"film: {film}" in result.stdout
    assert "simple plan made from your idea" in result.stdout
    for number in range(1, 5):
        assert f"shot {number} (" in result.stdout
    assert IDEA in read_tags(film)["title"]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("option", "setting"), [(["--crossfade", "0.25"], "0"), ([], "0.25")], ids=["option", "setting"]
)
def test_crossfades_shorten_the_film_by_the_fades(
    option: list[str], setting: str, tiny_models_dir: Path, tmp_path: Path
) -> None:
    """``--crossfade``, or by default the server's REELBOT_STORYBOARD_CROSSFADE_S."""
    env = _env(tiny_models_dir.parent, tmp_path, REELBOT_STORYBOARD_CROSSFADE_S=setting)
    command = ["storyboard", "--model", "tiny", IDEA, "--shots", "3", "--no-plan-model"]
    _reelbot(tmp_path, env, *command, *option, "-o", "faded.mp4")
    info = probe_mp4(tmp_path / "faded.mp4")
    # Three 9-frame shots, two fades of a quarter second (4 frames at 16 fps) each.
    assert info.frames == pytest.approx(3 * TINY_CLIP_FRAMES - 2 * 4, abs=2)


async def test_the_language_models_plan_is_the_one_shot(
    tiny_models_dir: Path, tmp_path: Path, chat_server: FakeChatServer
) -> None:
    """The planner is the configured rewriter's endpoint; ``chat_server`` is a test double for
    an LLM answering with this plan."""
    plan = {
        "sheet": "A small red fox with a white-tipped tail; neon-lit rainy streets",
        "shots": [
            {"scene": "The fox explores an alley in the city at night", "camera": "pan left",
             "duration": 4},
            {"scene": "The fox sniffs a noodle stall in the city", "camera": "slow zoom in",
             "duration": 30},
        ],
    }  # fmt: skip
    chat_server.script(ChatReply(content="Here is the plan:\n" + json.dumps(plan)))
    env = _env(
        tiny_models_dir.parent,
        tmp_path,
        REELBOT_REWRITER="openai",
        REELBOT_OPENAI_BASE_URL=chat_server.base_url,
        REELBOT_OPENAI_MODEL="planner",
    )
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "bot.cli", "storyboard", "--model", "tiny", IDEA],
        *["--shots", "2", "--style", "film noir", "-o", "planned.mp4"],
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT_S)
    assert process.returncode == 0, stderr.decode()
    out = stdout.decode()
    assert "note:" not in out
    # Longer shots than the tiny model's usual 0.56 s clip were asked for: cut to it.
    assert "shot 1 (0.6 s, pan left): The fox explores an alley in the city at night" in out
    assert "shot 2 (0.6 s, zoom in): The fox sniffs a noodle stall in the city" in out
    assert (
        "sheet: A small red fox with a white-tipped tail; neon-lit rainy streets; film noir" in out
    )
    [asked] = [body for body in chat_server.requests if "messages" in body]
    assert IDEA in asked["messages"][-1]["content"]
    assert probe_mp4(tmp_path / "planned.mp4").frames == pytest.approx(2 * 9, abs=2)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--shots", "9"], "A storyboard has 2 to 8 shots; 9 was asked for."),
        (
            ["--seconds", "30"],
            "A shot of 30 s is out of range for tiny and tiny-i2v; choose 0.4 to 5.0 seconds.",
        ),
        (
            # LTX alone makes 10 s clips; every shot after the first is Wan's, 5 s at most.
            ["--model", "ltx-video", "--i2v-model", "wan2.1-i2v-14b-480p", "--seconds", "8"],
            "A shot of 8 s is out of range for ltx-video and wan2.1-i2v-14b-480p;"
            " choose 0.4 to 5.0 seconds.",
        ),
        (["--crossfade", "-1"], "--crossfade is -1 s; give 0 or more seconds."),
        (["--style", "s" * 201], "The style is 201 characters long; the limit is 200."),
    ],
)
def test_a_bad_option_is_one_sentence_and_exit_2(
    tiny_models_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REELBOT_DATA_DIR", str(tiny_models_dir.parent))
    argv = ["storyboard", "--model", "tiny", IDEA, "--no-plan-model", *options]
    assert main(argv) == 2
    assert capsys.readouterr().err == f"{message}\n"
    assert list(tmp_path.glob("**/*.mp4")) == []


class FlagsFromTheSecondClip:
    """A plugged-in classifier (``module:factory``) that finds nothing in the first clip it is
    shown and everything in the rest: a film whose shot 1 is safe and shot 2 is not."""

    name = "second"

    def __init__(self) -> None:
        self.default_thresholds = {"second": 0.5}
        self.clips_seen = 0

    def score(self, frames: Sequence[np.ndarray]) -> list[dict[str, float]]:
        self.clips_seen += 1
        return [{"second": 0.0 if self.clips_seen == 1 else 1.0} for _ in frames]


@pytest.fixture
def film_here(tiny_models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny two-shot film made in ``tmp_path`` by :func:`safety_line`."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REELBOT_DATA_DIR", str(tiny_models_dir.parent))
    for name in ("REELBOT_MODEL", "REELBOT_I2V_MODEL", "REELBOT_SAFETY_THRESHOLDS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "checked.mp4"


def safety_line(capsys: pytest.CaptureFixture[str], *options: str) -> str | None:
    """The ``safety:`` line of a two-shot tiny film (the command must succeed), if any."""
    argv = ["storyboard", "--model", "tiny", IDEA, "--shots", "2", "--no-plan-model"]
    assert main([*argv, *options, "-o", "checked.mp4"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("safety:")]
    assert len(lines) <= 1
    return lines[0] if lines else None


def test_the_films_safety_verdict_and_scores_are_printed(
    film_here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = safety_line(capsys)
    assert line is not None
    assert line.startswith("safety: safe (nudity 0.")
    assert ", nsfw 0." in line


def test_a_flagged_film_names_its_shots_and_is_still_written(
    film_here: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A threshold of 0 judges every frame unsafe.
    monkeypatch.setenv("REELBOT_SAFETY_THRESHOLDS", "nudity=0,nsfw=0.0")
    line = safety_line(capsys)
    assert line is not None
    assert line.startswith("safety: UNSAFE, the bot would withhold it: shot 1: ")
    assert "(threshold 0.00); shot 2: " in line
    assert film_here.is_file()


def test_only_the_flagged_shot_is_named(
    film_here: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "REELBOT_SAFETY_CLASSIFIERS", "tests.test_cli_storyboard:FlagsFromTheSecondClip"
    )
    line = safety_line(capsys)
    assert line == (
        "safety: UNSAFE, the bot would withhold it: shot 2: second 1.00 (threshold 0.50);"
        " all: second 1.00"
    )


def test_no_safety_skips_the_check(film_here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert safety_line(capsys, "--no-safety") is None
    assert film_here.is_file()


def test_a_classifier_that_cannot_load_is_one_line_not_a_failure(
    film_here: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REELBOT_SAFETY_CLASSIFIERS", "nudenet,no_such_module:make")
    line = safety_line(capsys)
    assert line == (
        "safety: not checked: cannot import 'no_such_module' for 'no_such_module:make':"
        " No module named 'no_such_module'"
    )
    assert film_here.is_file()
