"""A drafts job's life, through the real bot against the fake Discord: its status message
shows the drafts' steps before the grid; its owner can cancel it while it runs; a restart of
the bot and its worker while it waits or runs still posts the grid, once.

To look at a job mid-drafts on any machine, :func:`held_drafts` holds the generating thread
after its first step (the pipeline, the tracker and the bot stay real) until the test lets it
go on, or until the worker asks the job to stop (a cancel, a shutdown).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from bot.settings import Settings
from jobqueue.clipfiles import clip_path, draft_path
from jobqueue.models import Job, JobKind, JobStatus
from jobqueue.progress import JobTracker
from pipeline.presets import PRESETS
from tests.bot_harness import CLIP_TIMEOUT_S, Reel
from tests.fakediscord import Message

LEASE_S = 3.0
"""Short, so a worker held mid-step hears of a cancel at its next heartbeat (a second)."""
DRAFT_STEPS = PRESETS["tiny"].draft_steps


@pytest.fixture
def reel_settings(reel_settings: Settings) -> Settings:
    """The bot as shipped: /create makes drafts first."""
    return reel_settings.model_copy(update={"drafts": True})


@dataclass
class StepHold:
    """Where the first job to reach a denoising step is held: ``reached`` once it is, at
    ``step``; :meth:`release` lets every job run freely from then on."""

    reached: asyncio.Event = field(default_factory=asyncio.Event)
    step: int = 0
    _released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self._released.set()

    @property
    def released(self) -> bool:
        return self._released.is_set()

    def wait_in(self, tracker: JobTracker) -> None:
        """Block the generating thread until released or the worker stops the job."""
        while not self._released.wait(0.05) and not tracker.should_stop():
            pass


@pytest.fixture
async def held_drafts(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[StepHold]:
    hold = StepHold()
    loop = asyncio.get_running_loop()
    report_step = JobTracker.step

    def step(tracker: JobTracker, step: int, total_steps: int) -> None:
        report_step(tracker, step, total_steps)
        if hold.reached.is_set() or hold.released:
            return
        hold.step = step
        loop.call_soon_threadsafe(hold.reached.set)
        hold.wait_in(tracker)

    monkeypatch.setattr(JobTracker, "step", step)
    try:
        yield hold
    finally:
        hold.release()


async def create_drafts(reel: Reel, prompt: str) -> Job:
    _, job = await reel.create(prompt)
    assert job.kind is JobKind.DRAFTS
    return job


async def status_saying(reel: Reel, job: Job, words: str) -> Message:
    """The job's status message in #general once it says ``words``."""
    return await reel.fake.wait_for_message(
        reel.fake.general,
        lambda message: f"drafts #{job.id} for" in message.content and words in message.content,
        timeout=CLIP_TIMEOUT_S,
    )


def grids_posted(reel: Reel, job: Job) -> list[Message]:
    """Every grid message of ``job`` ever posted in #general, deleted ones included."""
    marker = f"draft:{job.id}:render:1"
    return [
        message
        for message in reel.fake.world.messages.values()
        if message.channel_id == reel.fake.general.id and marker in message.custom_ids()
    ]


def statuses_posted(reel: Reel, job: Job) -> list[Message]:
    """Every message in #general that was ever ``job``'s status (it may have become the grid
    since, or been deleted)."""
    head = f"drafts #{job.id} for"
    return [
        message
        for message in reel.fake.world.messages.values()
        if message.channel_id == reel.fake.general.id
        and any(head in text for text in contents(message))
    ]


def contents(message: Message) -> list[str]:
    """What the message said, every version, oldest first."""
    return [*(version.get("content") or "" for version in message.revisions), message.content]


async def grid_of(reel: Reel, job: Job) -> Message:
    marker = f"draft:{job.id}:render:1"
    return await reel.fake.wait_for_message(
        reel.fake.general, lambda message: marker in message.custom_ids(), timeout=CLIP_TIMEOUT_S
    )


async def test_the_status_message_shows_the_drafts_steps_before_the_grid(
    reel: Reel, held_drafts: StepHold
) -> None:
    fake = reel.fake
    async with reel.bot_running(), reel.worker_running():
        job = await create_drafts(reel, "a lighthouse at dusk")
        await asyncio.wait_for(held_drafts.reached.wait(), CLIP_TIMEOUT_S)
        progress = f"(step {held_drafts.step} of {DRAFT_STEPS})"
        status = await status_saying(reel, job, progress)
        assert status.content.startswith(f"🎨 drafts #{job.id} for {fake.alice.mention}: gener")
        assert grids_posted(reel, job) == []

        held_drafts.release()
        grid = await grid_of(reel, job)
        await reel.delivered(job.id)
    # The grid takes the status message's place: the message becomes the grid, or goes.
    assert grid.id == status.id or fake.message(status.id).deleted
    assert [message.id for message in statuses_posted(reel, job)] == [status.id]


async def test_cancelling_running_drafts_ends_them_and_tells_their_owner(
    reel: Reel, held_drafts: StepHold
) -> None:
    fake = reel.fake
    async with reel.bot_running(), reel.worker_running(lease_seconds=LEASE_S):
        job = await create_drafts(reel, "a paper boat on a pond")
        await asyncio.wait_for(held_drafts.reached.wait(), CLIP_TIMEOUT_S)
        status = await status_saying(reel, job, "generating")

        handle = await fake.invoke("cancel", {"job": job.id}, user=fake.alice)
        answer = await handle.response()
        assert handle.ephemeral
        assert f"#{job.id}" in answer.content
        await fake.wait_for(
            lambda: "was cancelled" in fake.message(status.id).content, timeout=CLIP_TIMEOUT_S
        )
        cancelled = await reel.delivered(job.id)
    assert fake.message(status.id).content.startswith(f"🚫 drafts #{job.id} for")
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.step < DRAFT_STEPS, "stopped mid-drafts, not after them"
    assert grids_posted(reel, job) == []
    clips_dir = reel.settings.clips_dir
    assert not clip_path(clips_dir, job.id).exists()
    assert not any(draft_path(clips_dir, job.id, n).exists() for n in range(1, 5))


async def test_drafts_queued_across_a_restart_are_posted_once(reel: Reel) -> None:
    async with reel.bot_running():
        job = await create_drafts(reel, "a snowy owl on a branch")
        status = await status_saying(reel, job, "queued")
    await assert_posted_once_after_restarts(reel, job, status)


async def test_drafts_running_across_a_restart_are_made_again_and_posted_once(
    reel: Reel, held_drafts: StepHold
) -> None:
    async with reel.bot_running(), reel.worker_running():
        job = await create_drafts(reel, "a red kite over the hills")
        await asyncio.wait_for(held_drafts.reached.wait(), CLIP_TIMEOUT_S)
        status = await status_saying(reel, job, "generating")
    # The worker stopped the job at its next step and put it back in the queue.
    waiting = await reel.queue.get(job.id)
    assert waiting is not None
    assert waiting.status is JobStatus.QUEUED

    held_drafts.release()
    await assert_posted_once_after_restarts(reel, job, status)


async def assert_posted_once_after_restarts(reel: Reel, job: Job, status: Message) -> None:
    """The bot and a worker start again and post ``job``'s grid; one more restart of the bot
    posts nothing more. The status message was followed across the restarts, not posted
    again."""
    async with reel.bot_running(), reel.worker_running():
        await grid_of(reel, job)
        done = await reel.delivered(job.id)
    async with reel.bot_running():
        await reel.fake.wait_connected()
    assert done.status is JobStatus.DONE
    assert len(grids_posted(reel, job)) == 1
    assert [message.id for message in statuses_posted(reel, job)] == [status.id]
