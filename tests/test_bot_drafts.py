"""Drafts first, through the real bot against the fake Discord: /create posts a 2x2 grid of
four quick drafts with Render 1-4 and Vary 1-4; Render N posts the full clip made from draft N,
Vary N a new grid near it; the grid's buttons and reactions work after a restart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.settings import Settings
from jobqueue.clipfiles import draft_path
from jobqueue.models import Job, JobKind
from pipeline.drafts import draft_seeds
from pipeline.encode import read_frames
from tests.bot_harness import Reel, probe_mp4
from tests.broker_harness import BOTH_MODES
from tests.fakediscord import Message

DRAFT_WIDTH, DRAFT_HEIGHT = 64, 32
"""The tiny model's drafts at 16:9 (half its 112x64 clips, in multiples of 16)."""


@pytest.fixture
def reel_settings(reel_settings: Settings) -> Settings:
    """The bot as shipped: /create makes drafts first."""
    return reel_settings.model_copy(update={"drafts": True})


def grid_ids(job_id: int) -> set[str]:
    actions = [f"draft:{job_id}:{action}:{n}" for action in ("render", "vary") for n in range(1, 5)]
    return {*actions, f"job:{job_id}:retry", f"job:{job_id}:delete"}


async def grid_message(reel: Reel, job_id: int) -> Message:
    """The grid of the drafts job ``job_id`` once it is posted."""
    return await reel.fake.wait_for_message(
        reel.fake.general,
        lambda message: f"draft:{job_id}:render:1" in message.custom_ids(),
        timeout=120,
    )


async def click(reel: Reel, message: Message, custom_id: str) -> Job:
    """Bob clicks ``custom_id``; the job it queued."""
    handle = await reel.fake.click(message, custom_id, user=reel.fake.bob)
    job = await reel.job_of(handle)
    assert handle.ephemeral
    return job


def shrunk(frames: np.ndarray) -> np.ndarray:
    size = (DRAFT_WIDTH, DRAFT_HEIGHT)
    return np.stack(
        [np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BOX)) for frame in frames]
    ).astype(np.float64)


def nearest_draft(clip: bytes, grid: Job, clips_dir: Path, folder: Path) -> int:
    """The draft of ``grid`` the posted ``clip`` looks most like, downscaled to draft size."""
    path = folder / "rendered.mp4"
    path.write_bytes(clip)
    rendered = shrunk(read_frames(path)[0])
    distances = [
        float(np.mean((rendered - read_frames(draft_path(clips_dir, grid.id, n))[0]) ** 2))
        for n in range(1, 5)
    ]
    return distances.index(min(distances)) + 1


@pytest.mark.parametrize("reel_mode", BOTH_MODES, indirect=True)
async def test_create_posts_drafts_render_posts_a_clip_and_vary_a_new_grid(
    running_reel: Reel, tmp_path: Path
) -> None:
    reel = running_reel
    _, drafts = await reel.create("a lighthouse at dusk", seed=11)
    assert drafts.kind is JobKind.DRAFTS
    grid = await grid_message(reel, drafts.id)
    assert grid_ids(drafts.id) <= set(grid.custom_ids())
    assert grid.component(f"draft:{drafts.id}:render:2")["label"] == "Render 2"
    facts = probe_mp4(grid.attachments[0].data, tmp_path)
    assert (facts.width, facts.height) == (2 * DRAFT_WIDTH, 2 * DRAFT_HEIGHT)
    assert "Drafts #" in grid.embeds[0]["title"]

    render = await click(reel, grid, f"draft:{drafts.id}:render:2")
    assert (render.kind, render.parent_id, render.request.draft) == (JobKind.RENDER, drafts.id, 2)
    assert render.request.seed == draft_seeds(11)[1]
    clip = await reel.clip_message(render.id)
    assert {f"job:{render.id}:{action}" for action in ("retry", "remix", "extend", "hd")} <= set(
        clip.custom_ids()
    )
    assert probe_mp4(clip.attachments[0].data, tmp_path).width == 112
    done = await reel.delivered(drafts.id)
    assert nearest_draft(clip.attachments[0].data, done, reel.settings.clips_dir, tmp_path) == 2

    vary = await click(reel, grid, f"draft:{drafts.id}:vary:3")
    assert (vary.kind, vary.parent_id, vary.request.draft) == (JobKind.VARY, drafts.id, 3)
    varied = await grid_message(reel, vary.id)
    assert grid_ids(vary.id) <= set(varied.custom_ids())
    assert probe_mp4(varied.attachments[0].data, tmp_path).width == 2 * DRAFT_WIDTH
