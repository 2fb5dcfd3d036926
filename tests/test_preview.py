"""Live previews on the tiny pipeline: small animated WebPs of the clip forming, every few
steps, none after the clip is done."""

from __future__ import annotations

import io
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.generator import VideoGenerator
from pipeline.presets import PRESETS, ModelPreset
from pipeline.preview import (
    WAN21_LATENT_RGB_BIAS,
    PreviewOptions,
    encode_webp,
    project_to_rgb,
    tile,
)
from pipeline.request import ClipRequest, resolve_request

TINY = PRESETS["tiny"]
EVERY_STEP = PreviewOptions(every_steps=1, min_seconds=0.0, width=224)


class Previews:
    """Collects previews, and notes any that arrive after the run returned."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.late = 0
        self.finished = threading.Event()

    def __call__(self, data: bytes) -> None:
        if self.finished.is_set():
            self.late += 1
        self.received.append(data)


def run(
    models_dir: Path,
    previews: Previews,
    *,
    preset: ModelPreset = TINY,
    steps: int = 8,
    options: PreviewOptions = EVERY_STEP,
    seeds: tuple[int, ...] = (1,),
) -> dict[str, float]:
    generator = VideoGenerator(preset, models_dir=models_dir, device="cpu")
    request = resolve_request(preset, ClipRequest("waves on rocks", seed=seeds[0], steps=steps))
    results = generator.generate_batch(request, seeds, on_preview=previews, preview=options)
    previews.finished.set()
    return results[0].timings


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_previews_show_the_clip_forming_every_few_steps(tiny_models_dir: Path) -> None:
    previews = Previews()
    timings = run(tiny_models_dir, previews)
    # After each step but the last (the clip itself comes next); one may be skipped when the
    # one before it is still encoding.
    assert 3 <= len(previews.received) <= 7
    first = opened(previews.received[0])
    assert first.format == "WEBP"
    assert first.size == (224, 128)  # 112x64 at 224 wide
    assert getattr(first, "n_frames", 1) == 3  # 9 frames: 3 latent frames
    assert len(set(previews.received)) == len(previews.received)  # each step's differs
    assert timings["preview"] < timings["denoise"]


def test_no_preview_arrives_after_the_clip_is_done(tiny_models_dir: Path) -> None:
    previews = Previews()
    run(tiny_models_dir, previews)
    assert previews.late == 0
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("preview")]


def test_previews_are_throttled(tiny_models_dir: Path) -> None:
    previews = Previews()
    run(tiny_models_dir, previews, options=PreviewOptions(every_steps=3, min_seconds=0.0))
    assert 1 <= len(previews.received) <= 2  # after steps 3 and 6 of 8
    hourly = Previews()
    run(tiny_models_dir, hourly, options=PreviewOptions(every_steps=1, min_seconds=3600.0))
    assert len(hourly.received) == 1


def test_four_drafts_preview_side_by_side(tiny_models_dir: Path) -> None:
    previews = Previews()
    run(tiny_models_dir, previews, seeds=(1, 2, 3, 4), steps=4)
    assert opened(previews.received[0]).size == (224, 128)  # 2x2 cells of 112x64


def test_the_fast_presets_sampler_previews_too(tiny_models_dir: Path) -> None:
    preset = replace(TINY, sampler="lcm", guidance=1.0, flow_shift=8.0)
    previews = Previews()
    run(tiny_models_dir, previews, preset=preset, steps=4)
    assert previews.received


def test_a_failing_preview_does_not_stop_the_clip(tiny_models_dir: Path) -> None:
    def broken(data: bytes) -> None:
        raise OSError("disk full")

    generator = VideoGenerator(TINY, models_dir=tiny_models_dir, device="cpu")
    request = resolve_request(TINY, ClipRequest("waves", seed=1, steps=4))
    result = generator.generate(request, on_preview=broken, preview=EVERY_STEP)
    assert result.frames.shape == (9, 64, 112, 3)


def test_wans_latent_to_rgb_map() -> None:
    zero = torch.zeros(1, 16, 2, 3, 4)
    rgb = project_to_rgb(zero)
    assert rgb.shape == (1, 2, 3, 4, 3)
    expected = [round((bias + 1) * 127.5) for bias in WAN21_LATENT_RGB_BIAS]
    assert np.abs(rgb[0, 0, 0, 0].numpy().astype(int) - expected).max() <= 1
    # Channel 2 leans red, channel 6 darkens everything.
    reddish = torch.zeros(1, 16, 1, 1, 1)
    reddish[0, 2] = 2.0
    darker = torch.zeros(1, 16, 1, 1, 1)
    darker[0, 6] = 2.0
    red, dark = project_to_rgb(reddish)[0, 0, 0, 0], project_to_rgb(darker)[0, 0, 0, 0]
    assert red[0] > red[2]
    assert int(dark.sum()) < int(rgb[0, 0, 0, 0].sum())


def test_tiles_and_webp() -> None:
    clips = np.zeros((3, 2, 10, 20, 3), dtype=np.uint8)
    clips[1] = 255
    clips[2, 1] = 100  # the third clip changes from one frame to the next
    grid = tile(clips)
    assert grid.shape == (2, 20, 40, 3)
    assert grid[:, :10, 20:].min() == 255  # the second clip, top right
    assert grid[1, 10:, :20].min() == 100  # the third, bottom left
    assert grid[:, 10:, 20:].max() == 0  # no fourth clip: left dark
    image = opened(encode_webp(grid, width=80, frame_ms=250))
    assert (image.size, getattr(image, "n_frames", 1)) == ((80, 40), 2)


@pytest.mark.parametrize("channels", [4, 128])
def test_latents_of_another_layout_have_no_preview(channels: int) -> None:
    from pipeline.preview import LivePreview

    received: list[bytes] = []
    live = LivePreview(received.append, EVERY_STEP, total_steps=4, frame_ms=250)
    live.send(torch.zeros(1, channels, 2, 3, 4))
    live.close()
    assert received == []


async def test_the_previews_setting_turns_them_off(
    tiny_models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobqueue.settings import CoreSettings
    from pipeline.clip import ClipMaker, ModelChoice

    monkeypatch.setenv("REELBOT_PREVIEWS", "false")
    models = ModelChoice(models_dir=tiny_models_dir, t2v_model="tiny", i2v_model="tiny-i2v")
    maker = ClipMaker(models, preview=CoreSettings().preview_options())
    previews = Previews()
    await maker.make_clip(
        ClipRequest("waves", seed=1, steps=8),
        model="tiny",
        output=lambda _request: tmp_path / "clip.mp4",
        max_bytes=2**24,
        on_preview=previews,
    )
    assert previews.received == []
