"""Helpers for the tests of clips that end on a chosen frame (first-last-frame and VACE):
noise pictures to start and end on, a record of what the generator hands its diffusers
pipeline, and ``reelbot generate`` run from such pictures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bot.cli import main
from pipeline.generator import VideoGenerator
from tests.mp4probe import probe_mp4


def noise(seed: int, size: tuple[int, int] = (160, 90)) -> Image.Image:
    """A random RGB picture of ``size`` (width, height), the same for the same seed."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def record_calls(
    generator: VideoGenerator, monkeypatch: pytest.MonkeyPatch
) -> list[dict[str, Any]]:
    """The keyword arguments of every call to ``generator``'s pipeline from now on (it is
    loaded first; the calls still run)."""
    generator.load()
    pipeline_class = type(generator.pipe)
    real_call = pipeline_class.__call__
    seen: list[dict[str, Any]] = []

    def recording(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(pipeline_class, "__call__", recording)
    return seen


def use_models(
    monkeypatch: pytest.MonkeyPatch, folder: Path, models_dir: Path, *, i2v: str, end_frame: str
) -> None:
    """``reelbot generate`` run in ``folder`` finds ``models_dir`` and these models."""
    monkeypatch.chdir(folder)
    monkeypatch.setenv("REELBOT_DATA_DIR", str(models_dir.parent))
    monkeypatch.setenv("REELBOT_I2V_MODEL", i2v)
    monkeypatch.setenv("REELBOT_END_FRAME_MODEL", end_frame)


def generate_from_pictures(
    folder: Path, capsys: pytest.CaptureFixture[str], ending: list[str]
) -> str:
    """``reelbot generate`` from a start picture with ``ending`` (``--loop``, ``--end-image
    end.png`` or nothing) into ``clip.mp4`` in ``folder`` (the current one); what it printed,
    once the clip is known to be a 9-frame MP4."""
    noise(1).save(folder / "start.png")
    noise(2).save(folder / "end.png")
    argv = ["generate", "the light turns", "--image", "start.png", *ending, "-o", "clip.mp4"]
    code = main([*argv, "--no-safety"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert probe_mp4(folder / "clip.mp4").frames == 9
    return out
