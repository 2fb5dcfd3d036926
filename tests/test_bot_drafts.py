"""Drafts first, through the real bot against the fake Discord: /create posts a 2x2 grid of
four quick drafts with Render 1-4 and Vary 1-4; Render N posts the full clip made from draft N,
Vary N a new grid near it; the grid's buttons and reactions work after a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bot.settings import Settings
from jobqueue.broker.wire import Outcome
from jobqueue.clipfiles import draft_path
from jobqueue.models import Job, JobKind
from jobqueue.safety import Verdict
from pipeline.clip import ModelChoice
from pipeline.drafts import draft_seeds
from pipeline.encode import read_frames
from pipeline.presets import PRESETS
from pipeline.request import ClipRequest, resolve_request
from tests.bot_harness import Reel, probe_mp4
from tests.broker_harness import BOTH_MODES
from tests.fakediscord import Message, User
from tests.scene_writing import SlowRewriter, scene_writer_running

SCENE = "A lighthouse on a black cliff at dusk, its beam sweeping over a violet sea."
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


async def test_a_grids_buttons_work_after_a_restart(reel: Reel) -> None:
    async with reel.bot_running(), reel.worker_running(safety=True):
        _, drafts = await reel.create("a paper boat on a pond", seed=5)
        grid = await grid_message(reel, drafts.id)
        done = await reel.delivered(drafts.id)
    assert done.safety_verdict == Verdict.SAFE  # the output safety check looked at the grid

    async with reel.bot_running(), reel.worker_running():
        render = await click(reel, grid, f"draft:{drafts.id}:render:1")
        vary = await click(reel, grid, f"draft:{drafts.id}:vary:4")
        clip = await reel.clip_message(render.id)
        await grid_message(reel, vary.id)
        # A rendered clip's Retry renders the same draft again, with a new seed.
        again = await click(reel, clip, f"job:{render.id}:retry")
    assert (again.kind, again.parent_id, again.request.draft) == (JobKind.RENDER, drafts.id, 1)
    assert again.request.seed is None


async def test_reactions_on_a_grid_make_new_drafts_and_delete_it(running_reel: Reel) -> None:
    reel, fake = running_reel, running_reel.fake
    _, drafts = await reel.create("a red kite over hills")
    grid = await grid_message(reel, drafts.id)
    await reel.delivered(drafts.id)  # reactions find the grid's job once it is recorded

    await fake.react(grid, "🔁", user=fake.bob)
    again = await made_from(reel, drafts.id)
    assert (again.kind, again.user_id, again.request.seed) == (JobKind.DRAFTS, fake.bob.id, None)

    await fake.react(grid, "❌", user=fake.alice)
    await fake.wait_for(lambda: fake.message(grid.id).deleted or None, timeout=30)


async def made_from(reel: Reel, parent_id: int) -> Job:
    """The first job made from ``parent_id``, once there is one."""
    async with asyncio.timeout(30):
        async for job in reel.queue.changes(since=0, poll_interval=0.05):
            if job.parent_id == parent_id:
                return job
    raise AssertionError(f"no job was made from {parent_id}")


async def test_the_option_then_the_user_then_the_server_decide_on_drafts(reel: Reel) -> None:
    fake = reel.fake

    async def kind_of(user: User, **options: Any) -> JobKind:
        _, job = await reel.create("a quiet harbour", user=user, **options)
        return job.kind

    async with reel.bot_running():
        assert await kind_of(fake.alice) is JobKind.DRAFTS
        assert await kind_of(fake.alice, drafts=False) is JobKind.CREATE
        saved = await fake.invoke("settings", {"drafts": False}, user=fake.alice)
        assert "renders your clip straight away" in (await saved.response()).content
        assert await kind_of(fake.alice) is JobKind.CREATE
        assert await kind_of(fake.alice, drafts=True) is JobKind.DRAFTS

        off = await fake.invoke("admin drafts", {"first": "off"}, user=fake.carol)
        assert "renders clips straight away" in (await off.response()).content
        assert await kind_of(fake.bob) is JobKind.CREATE
        await (await fake.invoke("settings", {"drafts": True}, user=fake.bob)).response()
        assert await kind_of(fake.bob) is JobKind.DRAFTS
        # A model that cannot make drafts renders at once, whatever anyone chose.
        assert await kind_of(fake.bob, model="ltx-video") is JobKind.CREATE

        back = await fake.invoke("admin drafts", {"first": "default"}, user=fake.carol)
        assert "(the bot's default)" in (await back.response()).content
        assert await kind_of(fake.dave) is JobKind.DRAFTS


async def test_drafts_count_against_the_users_limits(reel: Reel) -> None:
    fake = reel.fake
    await reel.queue.set_limits(user_id=fake.alice.id, waiting=1, running=None, daily=None)
    async with reel.bot_running():
        _, drafts = await reel.create("a snowy owl")
        assert drafts.kind is JobKind.DRAFTS
        refused = await fake.invoke("create", {"prompt": "a snowy fox"}, user=fake.alice)
        answer = (await refused.response()).content
    assert answer.startswith("You already have 1 clip waiting")
    assert [job.id for job in await reel.queue.user_jobs(fake.alice.id)] == [drafts.id]


async def test_a_render_is_made_from_its_drafts_scene(reel: Reel) -> None:
    prompt = "a lighthouse at dusk"
    rewriter = SlowRewriter(0.0, scripted={prompt: SCENE})
    settings = reel.settings
    models = ModelChoice(models_dir=settings.models_dir, t2v_model="tiny", i2v_model="tiny-i2v")
    writing = scene_writer_running(
        settings.database_path, clips_dir=settings.clips_dir, models=models, rewriter=rewriter
    )
    async with reel.bot_running(), writing, reel.worker_running():
        _, drafts = await reel.create(prompt, enhance=True)
        grid = await grid_message(reel, drafts.id)
        render = await click(reel, grid, f"draft:{drafts.id}:render:3")
        await reel.clip_message(render.id)
        rendered = await reel.delivered(render.id)
    assert rendered.rewritten_prompt == SCENE
    assert rewriter.asked == [prompt]  # the scene writer was not asked again for the render


def test_a_remote_workers_drafts_land_only_beside_their_grid(tmp_path: Path) -> None:
    request = resolve_request(PRESETS["tiny"], ClipRequest("a cat", seed=1))
    sent = Outcome(
        "done",
        clip=b"grid",
        poster=b"poster",
        encoded={
            "size_bytes": 4,
            "width": 128,
            "height": 64,
            "frames": 9,
            "fps": 16,
            "quality": 20,
            "seconds": 0.1,
        },
        request={name: value for name, value in vars(request).items() if name != "start_image"},
        prompt={"text": "a cat"},
        beside={
            "-1.mp4": b"draft 1",
            "-2.latents.npz": b"latents 2",
            "/../../elsewhere.mp4": b"x",
            "-5.mp4": b"y",
        },
    )
    received = Outcome.from_result(sent.to_result(limit=2**20))
    received.made_at(tmp_path / "partial" / "7-w.mp4")
    written = {
        path.relative_to(tmp_path).as_posix(): path.read_bytes() for path in tmp_path.rglob("*.*")
    }
    assert written == {
        "partial/7-w.mp4": b"grid",
        "partial/7-w.jpg": b"poster",
        "partial/7-w-1.mp4": b"draft 1",
        "partial/7-w-2.latents.npz": b"latents 2",
    }
