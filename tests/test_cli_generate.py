"""``reelbot generate`` end to end: a real MP4 from the tiny model, clear one-line failures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.cli import main
from pipeline.encode import read_frames, read_tags
from tests.mp4probe import probe_mp4

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def data_dir(tiny_models_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Settings pointing at the prebuilt tiny models, from a folder with no .env."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REELBOT_DATA_DIR", str(tiny_models_dir.parent))
    return tiny_models_dir.parent


def test_generate_writes_a_playable_clip_and_reports_it(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out" / "clip.mp4"
    argv = ["generate", "a red balloon over a city", "--model", "tiny", "--seed", "7"]
    code = main([*argv, "--frames", "13", "--aspect", "9:16", "-o", str(output)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    info = probe_mp4(output)
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
    assert (info.width, info.height, info.frames, info.fps) == (64, 112, 13, 16.0)
    assert f"clip: {output}" in captured.out
    assert "seed: 7" in captured.out
    for stage in ("load", "denoise", "decode", "encode"):
        assert f"{stage} " in captured.out
    assert (tmp_path / "out" / "clip.jpg").exists()
    assert "Seed: 7" in read_tags(output)["comment"]
    assert "denoising" in captured.err  # the progress bar


def test_the_same_seed_makes_the_same_clip(data_dir: Path, tmp_path: Path) -> None:
    for name in ("a.mp4", "b.mp4"):
        assert main(["generate", "waves", "--model", "tiny", "--seed", "3", "-o", name]) == 0
    # Same frames; the files differ only in their signed content credentials (each manifest
    # has its own id and signature).
    first, second = (read_frames(tmp_path / name)[0] for name in ("a.mp4", "b.mp4"))
    assert np.array_equal(first, second)


def test_without_a_seed_one_is_chosen_and_printed(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate", "waves", "--model", "tiny", "--duration", "0.5"]) == 0
    out = capsys.readouterr().out
    seed = int(out.split("seed: ")[1].split()[0])
    assert probe_mp4(tmp_path / f"reelbot-{seed}.mp4").frames == 9


def test_an_image_animates_with_the_image_to_video_model(data_dir: Path, tmp_path: Path) -> None:
    start = tmp_path / "start.png"
    Image.fromarray(np.full((90, 160, 3), (200, 40, 40), dtype=np.uint8)).save(start)
    argv = ["generate", "the ball bounces", "--model", "tiny-i2v", "--image", str(start)]
    assert main([*argv, "-o", "animated.mp4"]) == 0
    info = probe_mp4(tmp_path / "animated.mp4")
    assert (info.width, info.height, info.frames) == (112, 64, 9)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--frames", "10"], "10 frames is not possible with tiny"),
        (["--aspect", "4:3"], "Aspect ratio '4:3' is not supported"),
        (["--steps", "0"], "0 steps is out of range"),
        (["--image", "missing.png"], "Cannot read the start image missing.png"),
    ],
)
def test_a_bad_request_is_one_sentence_and_exit_2(
    data_dir: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    assert main(["generate", "waves", "--model", "tiny", *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message)
    assert err.count("\n") == 1


def test_the_default_model_offline_fails_in_one_sentence(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "REELBOT_DATA_DIR": str(tmp_path / "data"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "queue")]),
    }
    env.pop("REELBOT_MODEL", None)
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "generate", "a cat surfing at sunset", "--seed", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Wan-AI/Wan2.1-T2V-1.3B-Diffusers" in lines[0]
    assert "REELBOT_MODEL" in lines[0]
    assert "--model tiny" in lines[0]
    assert result.stdout == ""
    assert list(tmp_path.glob("*.mp4")) == []


def test_drafts_write_a_grid_and_four_draft_files(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["generate", "a red balloon over a city", "--model", "tiny", "--seed", "5"]
    code = main([*argv, "--drafts", "4", "--no-safety", "-o", "grid.mp4"])
    out = capsys.readouterr().out
    assert code == 0
    grid = probe_mp4(tmp_path / "grid.mp4")
    assert (grid.width, grid.height, grid.frames) == (128, 64, 9)  # 2x2 drafts of 64x32
    for number, seed in zip((1, 2, 3, 4), (5, 6, 7, 8), strict=True):
        draft = tmp_path / f"grid-{number}.mp4"
        info = probe_mp4(draft)
        assert (info.width, info.height, info.frames) == (64, 32, 9)
        assert (tmp_path / f"grid-{number}.latents.npz").exists()
        assert f"draft {number}: {draft} (seed {seed})" in out
    assert f"grid: {tmp_path / 'grid.mp4'}" in out
    assert f"--from-draft {tmp_path / 'grid-1.mp4'} 'a red balloon over a city'" in out


def test_a_draft_renders_at_full_size_and_vary_makes_new_drafts(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompt = ["generate", "a red balloon over a city", "--model", "tiny", "--no-safety"]
    assert main([*prompt, "--seed", "5", "--frames", "13", "--drafts", "4", "-o", "g.mp4"]) == 0
    assert main([*prompt, "--from-draft", "g-3.mp4", "--steps", "4", "-o", "clip.mp4"]) == 0
    info = probe_mp4(tmp_path / "clip.mp4")
    assert (info.width, info.height, info.frames) == (112, 64, 13)
    assert main([*prompt, "--vary", "g-3.mp4", "--seed", "9", "-o", "v.mp4"]) == 0
    assert probe_mp4(tmp_path / "v-4.mp4").frames == 13
    assert "(seed 12)" in capsys.readouterr().out


def test_preview_keeps_the_latest_preview_while_it_renders(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The tiny model's own two steps, what a newcomer tries first: the step between them
    # is previewed.
    argv = ["generate", "waves", "--model", "tiny", "--seed", "1", "--no-safety"]
    assert main([*argv, "--preview", "live/preview.webp", "-o", "clip.mp4"]) == 0
    with Image.open(tmp_path / "live" / "preview.webp") as preview:
        assert (preview.format, preview.width) == ("WEBP", 320)
    assert [path.name for path in (tmp_path / "live").iterdir()] == ["preview.webp"]
    assert "no preview" not in capsys.readouterr().err


def test_a_run_too_short_to_preview_says_so(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompt = ["generate", "waves", "--model", "tiny", "--seed", "2", "--no-safety"]
    assert main([*prompt, "--drafts", "1", "-o", "g.mp4"]) == 0
    capsys.readouterr()
    # Rendering a draft re-runs the last half of the tiny model's two steps: one step.
    argv = [*prompt, "--from-draft", "g-1.mp4", "--preview", "preview.webp", "-o", "clip.mp4"]
    assert main(argv) == 0
    assert probe_mp4(tmp_path / "clip.mp4").frames > 0
    assert not (tmp_path / "preview.webp").exists()
    assert capsys.readouterr().err.endswith(
        "no preview was written: the run took one step, and previews are made between steps "
        "(more --steps give some)\n"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--from-draft", "d.mp4", "--frames", "13"], "--from-draft keeps the draft's length"),
        (["--from-draft", "d.mp4", "--aspect", "1:1"], "--from-draft keeps the draft's length"),
        (["--from-draft", "d.mp4", "--drafts", "4"], "Give one of --drafts/--vary and"),
        (["--drafts", "5"], "usage:"),
    ],
)
def test_draft_options_that_do_not_go_together(
    data_dir: Path,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    message: str,
) -> None:
    try:
        code = main(["generate", "waves", "--model", "tiny", *options])
    except SystemExit as exit_:  # argparse's own refusal
        code = int(str(exit_.code))
    assert code == 2
    assert message in capsys.readouterr().err


def test_a_draft_without_its_latents_fails_in_one_sentence(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Image.fromarray(np.zeros((32, 64, 3), dtype=np.uint8)).save(tmp_path / "not-a-draft.png")
    code = main(["generate", "waves", "--model", "tiny", "--from-draft", "not-a-draft.png"])
    assert code == 1
    assert capsys.readouterr().err == "This draft is no longer available; make the drafts again.\n"


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("REELBOT_COMPILE", "true", "Compiling the model (REELBOT_COMPILE) needs a CUDA GPU"),
        ("REELBOT_ATTENTION", "sage", "The sage attention backend (REELBOT_ATTENTION)"),
    ],
)
def test_a_speed_lever_this_machine_lacks_is_one_sentence_and_exit_1(
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    setting: str,
    value: str,
    words: str,
) -> None:
    monkeypatch.setenv(setting, value)
    assert main(["generate", "waves", "--model", "tiny", "-o", "clip.mp4"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(words)
    assert err.count("\n") == 1
