"""Drafts and the output safety check, through the real bot on the fake Discord.

A grid of drafts the check withheld is posted as one line with no buttons; a forged Render N,
Vary N or New drafts on it is answered privately with one sentence and queues nothing, for
anyone, its owner included, and one queued around the bot is failed by the worker. New
drafts of a withheld Vary grid (button or reaction) are refused too, though they would vary
the grid it came from. Once a moderator releases the grid, Render works. A Render's scene is
written with it: nothing ever sees the job without its scene.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlite_utils

from bot import followups
from bot.output_safety import withheld_line
from bot.settings import Settings
from bot.submit import submit_for_user
from jobqueue.models import Job, JobKind, JobStatus
from jobqueue.safety import GRID_WITHHELD, HeldState
from tests.bot_harness import Reel
from tests.fakediscord import Message
from tests.test_bot_drafts import click, grid_message
from tests.test_safety_bot import ANSWER_TIMEOUT_S, admin, flag_everything


@pytest.fixture
def reel_settings(reel_settings: Settings) -> Settings:
    """The bot as shipped: /create makes drafts first."""
    return reel_settings.model_copy(update={"drafts": True})


async def withheld(reel: Reel, job_id: int) -> tuple[Job, Message]:
    """The grid ``job_id`` once withheld, and the one line the channel sees of it."""
    grid = await reel.delivered(job_id)
    assert grid.safety_state == HeldState.WITHHELD
    line = await reel.fake.wait_for_message(
        reel.fake.general,
        lambda message: message.content == withheld_line(grid),
        timeout=ANSWER_TIMEOUT_S,
    )
    return grid, line


async def test_a_withheld_grid_starts_nothing_until_a_moderator_releases_it(reel: Reel) -> None:
    fake = reel.fake
    async with reel.bot_running(), reel.worker_running(safety=True):
        await flag_everything(fake)
        _, drafts = await reel.create("a lighthouse at dusk", seed=11)
        grid, line = await withheld(reel, drafts.id)
        assert line.custom_ids() == []

        forged = [
            (fake.bob, f"draft:{grid.id}:render:1"),
            (fake.bob, f"draft:{grid.id}:vary:1"),
            (fake.bob, f"job:{grid.id}:retry"),
            (fake.alice, f"draft:{grid.id}:render:2"),  # its owner's too
        ]
        for user, custom_id in forged:
            handle = await fake.forge_click(line, custom_id, user=user)
            answer = await handle.response(timeout=ANSWER_TIMEOUT_S)
            assert (answer.content, answer.ephemeral) == (GRID_WITHHELD, True), custom_id
        assert await reel.queue.user_jobs(fake.bob.id, active_only=False) == []
        alices = await reel.queue.user_jobs(fake.alice.id, active_only=False)
        assert [job.id for job in alices] == [grid.id]

        # Queued around the bot, a Render, Vary or new drafts of the grid is failed by the worker.
        for sneak in (followups.render(grid, 1), followups.vary(grid, 2), followups.retry(grid)):
            sneaked = await reel.queue.submit(
                sneak.kind,
                sneak.request,
                user_id=fake.bob.id,
                guild_id=fake.guild.id,
                channel_id=fake.general.id,
                parent_id=grid.id,
            )
            failed = await reel.delivered(sneaked.id)
            assert (failed.status, failed.error) == (JobStatus.FAILED, GRID_WITHHELD), sneak.kind

        await admin(fake, "safety release", job=grid.id)
        posted = await grid_message(reel, grid.id)
        rendered = await click(reel, posted, f"draft:{grid.id}:render:1")
        assert (rendered.kind, rendered.parent_id) == (JobKind.RENDER, grid.id)
        made = await reel.delivered(rendered.id)
    assert made.status is JobStatus.DONE


async def test_new_drafts_of_a_withheld_vary_grid_start_nothing(reel: Reel) -> None:
    fake = reel.fake
    async with reel.bot_running() as bot, reel.worker_running(safety=True):
        _, drafts = await reel.create("a lighthouse at dusk", seed=11)
        posted = await grid_message(reel, drafts.id)
        assert (await reel.delivered(drafts.id)).safety_state is None
        await flag_everything(fake)
        vary = await click(reel, posted, f"draft:{drafts.id}:vary:1")
        _, line = await withheld(reel, vary.id)

        # New drafts of it would vary the grid it came from again: the door looks at both.
        for user in (fake.bob, fake.alice):  # its owner, then someone else
            handle = await fake.forge_click(line, f"job:{vary.id}:retry", user=user)
            answer = await handle.response(timeout=ANSWER_TIMEOUT_S)
            assert (answer.content, answer.ephemeral) == (GRID_WITHHELD, True), user.name

        # Defence in depth, a path no user can reach today: reactions find a job through
        # posted clips only, and the bot never maps a withheld line to its grid (nor is a
        # posted grid withheld later). The mapping is injected so that, were it ever made,
        # the 🔁 reaction meets the same door (its sentence comes by DM).
        await bot.store.remember_clip(line.id, vary.id)
        await fake.react(line, "🔁", user=fake.bob)
        told = await fake.wait_for(
            lambda: [dm for dm in fake.dms(fake.bob) if dm.content == GRID_WITHHELD] or None,
            timeout=ANSWER_TIMEOUT_S,
        )
        assert len(told) == 1
        jobs = await reel.queue.user_jobs(fake.bob.id, active_only=False)
        jobs += await reel.queue.user_jobs(fake.alice.id, active_only=False)
    assert sorted(job.id for job in jobs) == [drafts.id, vary.id]


def renders_without_scene(db: sqlite_utils.Database) -> list[int]:
    found = db.query(
        "SELECT id FROM jobs WHERE kind = 'render' AND id NOT IN (SELECT job_id FROM scenes)"
    )
    return [row["id"] for row in found]


async def test_a_renders_scene_is_written_with_it(reel: Reel) -> None:
    fake, db = reel.fake, reel.queue.db
    async with reel.bot_running() as bot, reel.worker_running():
        _, drafts = await reel.create("a paper boat on a pond", enhance=True)
        grid = await reel.delivered(drafts.id)

        unscened: list[int] = []
        write = db.write

        async def write_then_look(change: Callable[[sqlite_utils.Database], Any]) -> Any:
            # What a worker or a scene writer could read after each committed write.
            result = await write(change)
            unscened.extend(await db.read(renders_without_scene))
            return result

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(db, "write", write_then_look)
            render = await submit_for_user(
                bot,
                followups.render(grid, 2),
                user_id=fake.bob.id,
                guild_id=fake.guild.id,
                channel_id=fake.general.id,
                idempotency_key="render",
            )
        await reel.delivered(render.id)
    assert unscened == []
    assert render.kind is JobKind.RENDER
