"""Restarts: buttons keep working, finished jobs are delivered once, nothing is replayed."""

from __future__ import annotations

import pytest
import sqlite_utils

from jobqueue.models import JobKind, JobStatus
from tests.bot_harness import Reel
from tests.broker_harness import BOTH_MODES


def clips_of(reel: Reel, job_id: int) -> list[int]:
    return [m.id for m in reel.clip_messages() if f"job:{job_id}:retry" in m.custom_ids()]


@pytest.mark.parametrize("reel_mode", BOTH_MODES, indirect=True)
async def test_buttons_work_after_a_restart_and_nothing_is_replayed(reel: Reel) -> None:
    fake = reel.fake
    async with reel.worker_running():
        async with reel.bot_running():
            _, job = await reel.create("a red kite")
            clip = await reel.clip_message(job.id)
            await reel.delivered(job.id)
        async with reel.bot_running():
            handle = await fake.click(clip, f"job:{job.id}:retry", user=fake.alice)
            retry = await reel.job_of(handle)
            await reel.clip_message(retry.id)
            await reel.delivered(retry.id)
    jobs = await reel.queue.user_jobs(fake.alice.id, active_only=False)
    assert [(j.kind, j.parent_id) for j in jobs] == [
        (JobKind.CREATE, None),
        (JobKind.RETRY, job.id),
    ]
    assert len(clips_of(reel, job.id)) == 1
    assert len(clips_of(reel, retry.id)) == 1


async def test_a_clip_finished_while_the_bot_was_down_is_posted_once(reel: Reel) -> None:
    fake = reel.fake
    async with reel.bot_running():
        _, job = await reel.create("a snowy owl")
        status = await fake.wait_for_message(fake.general, lambda m: f"#{job.id}" in m.content)
    async with reel.worker_running():
        await finished_in_queue(reel, job.id)
    async with reel.bot_running():
        await reel.clip_message(job.id)
        await reel.delivered(job.id)
        # The status message is removed once the clip is up.
        await fake.wait_for(lambda: fake.message(status.id).deleted)
    async with reel.bot_running():
        await fake.wait_connected()
    assert len(clips_of(reel, job.id)) == 1


async def test_a_clip_posted_just_before_a_crash_is_not_posted_again(reel: Reel) -> None:
    async with reel.worker_running(), reel.bot_running():
        _, job = await reel.create("a paper crane")
        clip = await reel.clip_message(job.id)
        await reel.delivered(job.id)
    # The crash window: the clip is in the channel but the queue never heard it was posted.
    await reel.queue.db.write(lambda db: forget_delivery(db, job.id))
    async with reel.bot_running():
        delivered = await reel.delivered(job.id)
    assert delivered.result_message_id == clip.id
    assert clips_of(reel, job.id) == [clip.id]


def forget_delivery(db: sqlite_utils.Database, job_id: int) -> None:
    db.execute("UPDATE jobs SET delivered_at = NULL WHERE id = ?", [job_id])


@pytest.mark.parametrize("reel_mode", BOTH_MODES, indirect=True)
async def test_a_running_jobs_status_message_is_resumed(reel: Reel) -> None:
    fake = reel.fake
    async with reel.bot_running():
        _, job = await reel.create("a sailing ship")
        status = await fake.wait_for_message(fake.general, lambda m: f"#{job.id}" in m.content)
    async with reel.bot_running(), reel.worker_running():
        await reel.delivered(job.id)
        await fake.wait_for(lambda: fake.message(status.id).deleted)
    # No second status message: the first one was followed until the clip replaced it.
    ever_posted = [
        m
        for m in fake.world.messages.values()
        if m.channel_id == fake.general.id and f"clip #{job.id} for" in m.content
    ]
    assert [m.id for m in ever_posted] == [status.id]


async def finished_in_queue(reel: Reel, job_id: int) -> None:
    async for job in reel.queue.changes(since=0, poll_interval=0.05):
        if job.id == job_id and job.status is JobStatus.DONE:
            return
