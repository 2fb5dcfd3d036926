"""Delivery: status messages that follow each job, and the finished clip posted exactly once.

Every job the queue reports (``JobQueue.changes()``) gets a public status message in its
channel, edited as it waits and runs, at most once every ``progress_edit_seconds``. When the
job ends, the clip is posted as an ordinary channel message (or the status message turns into
a sentence saying why not) and the job is marked delivered, so a restart never posts it again.

On startup the cog catches up: finished jobs that were never delivered are delivered (after
checking the channel for a clip posted just before a crash), and the status messages of
waiting and running jobs are resumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot import render
from bot.posting import ClipWontFit, add_reactions, channel_of, find_posted_clip, post_clip
from bot.render import NO_PINGS
from jobqueue.models import NO_MESSAGE, Job, JobStatus

if TYPE_CHECKING:
    from bot.client import ReelBot

log = logging.getLogger(__name__)

CONCURRENT_DELIVERIES = 4
RETRY_AFTER_S = 30.0
FOLLOW_AGAIN_AFTER_S = 5.0
SHUTDOWN_GRACE_S = 10.0


@dataclass
class StatusMessage:
    """What the bot last showed in a job's status message, and when."""

    message_id: int | None
    text: str = ""
    edited_at: float = 0.0
    gone: bool = False


class Delivery(commands.Cog):
    def __init__(self, bot: ReelBot) -> None:
        self.bot = bot
        self.interval = bot.settings.progress_edit_seconds
        self.statuses: dict[int, StatusMessage] = {}
        self.dirty: set[int] = set()
        self.busy: set[int] = set()
        self.check_history: set[int] = set()
        self.wake = asyncio.Event()
        self.slots = asyncio.Semaphore(CONCURRENT_DELIVERIES)
        self.tasks: set[asyncio.Task[None]] = set()
        self.main: asyncio.Task[None] | None = None

    async def cog_load(self) -> None:
        self.main = asyncio.create_task(self.run(), name="delivery")

    async def cog_unload(self) -> None:
        # Stop taking work, then let deliveries in flight finish: a status message posted
        # but not yet recorded would otherwise be orphaned by a restart.
        if self.main is not None:
            self.main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.main
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=SHUTDOWN_GRACE_S)
        for task in set(self.tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        await self.bot.wait_until_ready()
        started = time.time()
        await self.catch_up()
        loops = (self.follow_changes(started), self.tick(), self.dispatch())
        await asyncio.gather(*loops)

    async def catch_up(self) -> None:
        for job in await self.bot.queue.undelivered_finished():
            self.check_history.add(job.id)
            self.mark(job.id)
        for job in await self.bot.queue.active_jobs():
            self.mark(job.id)

    async def follow_changes(self, since: float) -> None:
        while True:
            try:
                async for job in self.bot.queue.changes(since=since):
                    since = max(since, job.updated_at - 1.0)
                    self.mark(job.id)
            except Exception:
                log.exception("following job changes failed; starting again")
                await asyncio.sleep(FOLLOW_AGAIN_AFTER_S)

    async def tick(self) -> None:
        # Places in line move without the waiting job changing: look at every job again.
        while True:
            await asyncio.sleep(self.interval)
            for job_id in list(self.statuses):
                self.mark(job_id)

    def mark(self, job_id: int) -> None:
        self.dirty.add(job_id)
        self.wake.set()

    async def dispatch(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            for job_id in sorted(self.dirty - self.busy):
                await self.slots.acquire()
                self.dirty.discard(job_id)
                self.busy.add(job_id)
                task = asyncio.create_task(self.handle(job_id), name=f"deliver-{job_id}")
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    async def handle(self, job_id: int) -> None:
        try:
            job = await self.bot.queue.get(job_id)
            if job is None or job.channel_id is None:
                self.statuses.pop(job_id, None)
            elif job.status.is_terminal:
                if job.delivered_at is None:
                    await self.finish(job)
                self.statuses.pop(job_id, None)
            else:
                await self.show_progress(job)
        except discord.HTTPException:
            log.warning(
                "Discord refused an update for job %s; retrying later", job_id, exc_info=True
            )
            self.retry_later(job_id)
        except Exception:
            log.exception("delivering job %s failed; retrying later", job_id)
            self.retry_later(job_id)
        finally:
            self.busy.discard(job_id)
            self.slots.release()
            if job_id in self.dirty:
                self.wake.set()

    def retry_later(self, job_id: int) -> None:
        asyncio.get_running_loop().call_later(RETRY_AFTER_S, self.mark, job_id)

    async def show_progress(self, job: Job) -> None:
        status = self.statuses.setdefault(job.id, StatusMessage(job.status_message_id))
        position = await self.bot.queue.position(job.id) if job.status is JobStatus.QUEUED else None
        text = render.status_line(job, position)
        if status.message_id is None:
            message = await channel_of(self.bot, job).send(text, allowed_mentions=NO_PINGS)
            await self.bot.queue.set_status_message(job.id, message.id)
            status.message_id, status.text, status.edited_at = message.id, text, time.monotonic()
            return
        if text == status.text or status.gone:
            return
        if time.monotonic() - status.edited_at < self.interval:
            return  # the next tick comes back to it
        await self.edit_status(job, status, text)

    async def edit_status(self, job: Job, status: StatusMessage, text: str) -> None:
        if status.message_id is None or status.gone:
            return
        message = channel_of(self.bot, job).get_partial_message(status.message_id)
        try:
            await message.edit(content=text, allowed_mentions=NO_PINGS)
        except (discord.NotFound, discord.Forbidden):
            # Someone deleted the status message (10008): stop updating it, never re-post it.
            log.info("status message of job %s is gone", job.id)
            status.gone = True
            return
        status.text, status.edited_at = text, time.monotonic()

    async def finish(self, job: Job) -> None:
        status = self.statuses.get(job.id) or StatusMessage(job.status_message_id)
        if job.status is JobStatus.DONE:
            await self.deliver_clip(job, status)
        else:
            await self.say_finished(job, status, render.finished_line(job))

    async def deliver_clip(self, job: Job, status: StatusMessage) -> None:
        message = None
        if job.id in self.check_history:
            message = await find_posted_clip(self.bot, job)
        try:
            posted = message or await post_clip(self.bot, job)
        except ClipWontFit as too_large:
            sentence = render.too_large_line(job, too_large.size_bytes, too_large.limit_bytes)
            await self.say_finished(job, status, sentence)
            return
        except (discord.NotFound, discord.Forbidden):
            log.warning("cannot post job %s in channel %s", job.id, job.channel_id, exc_info=True)
            await self.bot.queue.mark_delivered(job.id, NO_MESSAGE)
            return
        # Reactions find their job through this index: record it before anyone can see the
        # clip as delivered.
        await self.bot.store.remember_clip(posted.id, job.id)
        if not await self.bot.queue.mark_delivered(job.id, posted.id):
            log.warning("job %s was already delivered; removing the duplicate", job.id)
            await posted.delete()
            return
        self.check_history.discard(job.id)
        if message is None:
            await add_reactions(posted)
        await self.wait_for_edit_slot(status)
        await self.edit_status(job, status, render.finished_line(job, clip_url=posted.jump_url))

    async def say_finished(self, job: Job, status: StatusMessage, sentence: str) -> None:
        """Turn the status message into ``sentence`` (or post it), then mark it delivered."""
        if status.message_id is None or status.gone:
            message = await channel_of(self.bot, job).send(sentence, allowed_mentions=NO_PINGS)
            await self.bot.queue.mark_delivered(job.id, message.id)
            return
        await self.wait_for_edit_slot(status)
        await self.edit_status(job, status, sentence)
        if status.gone:
            await self.say_finished(job, status, sentence)
            return
        await self.bot.queue.mark_delivered(job.id, status.message_id)

    async def wait_for_edit_slot(self, status: StatusMessage) -> None:
        wait = status.edited_at + self.interval - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)


async def setup(bot: ReelBot) -> None:
    await bot.add_cog(Delivery(bot))
