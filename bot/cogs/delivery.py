"""Delivery: what each job shows while it waits and runs, and its clip posted exactly once.

Everything written to a channel goes through the channel's write budget
(:mod:`bot.channel_writes`), most important first: a finished clip, then final statuses, then
new status messages, then updates, which merge (the latest wins) while the budget is short.

While a job waits and runs:
- its requester's private reply shows their place in line, the ETA and the progress
  (:mod:`bot.private_replies`; the interaction token's budget, not the channel's);
- in a quiet channel the job has a public status message, edited at most every
  ``progress_edit_seconds``; from ``queue_board_from_jobs`` jobs in a channel on, new jobs are
  listed on the channel's one queue board instead (:mod:`bot.queue_board`);
- once a scene writer has written the scene of a waiting job, its status message and the
  private reply show it, with the owner's Edit scene button (:mod:`bot.scene`);
- while it renders, the newest live preview rides the next progress edit as the status
  message's attachment (in a busy channel, the private reply's: :mod:`bot.previews`).

When it ends, the clip is posted (the status message becomes the clip when it is the newest
message the bot posted there, else the clip is a new message and the status message is
deleted), or the status message turns into a sentence saying why not; then the job is marked
delivered, so a restart never posts it again. Each finished job is delivered by its own task,
so one waiting for the channel's budget never holds up another.

On startup the cog catches up: finished jobs that were never delivered are delivered (after
checking the channel for a clip posted just before a crash), and the status messages and
boards of waiting and running jobs are resumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot import output_safety, render
from bot.channel_writes import NOT_SENT, Priority, Route
from bot.output_safety import Disposition
from bot.posting import ClipWontFit, channel_of, find_posted_clip, offer_reactions, post_clip
from bot.previews import Preview, attachments_for, latest_previews, version
from bot.queue_board import QueueBoards
from bot.render import NO_PINGS
from bot.scene import can_edit, scene_view
from bot.storyboard_views import SHOT_EVENT, film_delivery, film_stopped_view
from jobqueue.jobs import QueuePosition
from jobqueue.models import NO_MESSAGE, Job, JobKind, JobStatus
from jobqueue.scenes import Scenes

if TYPE_CHECKING:
    from bot.client import ReelBot

log = logging.getLogger(__name__)

RETRY_AFTER_S = 30.0
FOLLOW_AGAIN_AFTER_S = 5.0
SHUTDOWN_GRACE_S = 10.0
REFRESH_GAP_S = 0.5
"""At least this long between two looks at every active job (changes come in bursts)."""
TICK_MIN_S = 1.0
"""At most this long without a look (ETAs move without the jobs changing)."""
EDIT_INTO_CLIP_MAX_AGE_S = 50 * 60.0
"""Discord caps edits of messages older than an hour (30046): older statuses stay statuses."""

StatusWrite = Callable[[], Awaitable[object]]


@dataclass
class StatusMessage:
    """A job's own public status message: what it shows and what it should show."""

    message_id: int | None
    wanted: str = ""
    shown: str = ""
    button_wanted: bool = False
    """With the Edit scene button."""
    button_shown: bool = False
    preview_wanted: Preview | None = None
    preview_shown: int | None = None
    """The version of the live preview attached (None: no preview)."""
    edited_at: float = -math.inf
    posted_at: float | None = None
    gone: bool = False
    final: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def changed(self) -> bool:
        """Whether what it should show differs from what it shows."""
        wanted = (self.wanted, self.button_wanted, version(self.preview_wanted))
        return wanted != (self.shown, self.button_shown, self.preview_shown)


class Delivery(commands.Cog):
    def __init__(self, bot: ReelBot) -> None:
        self.bot = bot
        self.writes = bot.writes
        self.interval = bot.settings.progress_edit_seconds
        self.clips_dir = bot.settings.clips_dir
        self.board_from = bot.settings.queue_board_from_jobs
        self.boards = QueueBoards(
            bot.store,
            bot.writes,
            lambda channel_id: bot.get_partial_messageable(channel_id),
            interval_s=bot.settings.queue_board_seconds,
        )
        self.scenes = Scenes(bot.queue.db)
        self.statuses: dict[int, StatusMessage] = {}
        self.on_board: set[int] = set()
        self.deliveries: dict[int, asyncio.Task[None]] = {}
        self.retries: dict[int, asyncio.TimerHandle] = {}
        self.retrying: set[asyncio.Task[None]] = set()
        self.check_history: set[int] = set()
        self.changed = asyncio.Event()
        self.main: asyncio.Task[None] | None = None

    async def cog_load(self) -> None:
        self.main = asyncio.create_task(self.run(), name="delivery")

    async def cog_unload(self) -> None:
        # Stop taking work, then let deliveries in flight finish: a clip posted but not yet
        # recorded would otherwise be checked for again after a restart.
        if self.main is not None:
            self.main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.main
        for handle in self.retries.values():
            handle.cancel()
        for retrying in set(self.retrying):
            retrying.cancel()
        # Deliveries still waiting for the channel's budget have written nothing: stop them.
        await self.writes.close()
        if self.deliveries:
            await asyncio.wait(set(self.deliveries.values()), timeout=SHUTDOWN_GRACE_S)
        for task in set(self.deliveries.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        await self.bot.wait_until_ready()
        started = time.time()
        await self.boards.load()
        for job in await self.bot.queue.undelivered_finished():
            self.check_history.add(job.id)
            self.deliver_soon(job)
        await asyncio.gather(self.follow_changes(started), self.keep_showing())

    async def follow_changes(self, since: float) -> None:
        while True:
            try:
                async for job in self.bot.queue.changes(since=since):
                    since = max(since, job.updated_at - 1.0)
                    self.seen(job)
            except Exception:
                log.exception("following job changes failed; starting again")
                await asyncio.sleep(FOLLOW_AGAIN_AFTER_S)

    def seen(self, job: Job) -> None:
        if job.kind is JobKind.SHOT:
            # A storyboard's shots are never posted: its cog shows them on the plan.
            self.bot.dispatch(SHOT_EVENT, job)
            return
        if job.status.is_terminal:
            if job.delivered_at is None:
                self.deliver_soon(job)
            elif job.id not in self.deliveries:
                self.forget(job.id)  # delivered elsewhere (a moderator's /admin delete)
        self.changed.set()

    def forget(self, job_id: int) -> None:
        status = self.statuses.pop(job_id, None)
        if status is not None:
            status.final = True
        self.writes.drop(("status", job_id))
        self.on_board.discard(job_id)

    # --- while jobs wait and run ---

    async def keep_showing(self) -> None:
        tick = max(self.interval, TICK_MIN_S)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(tick):
                    await self.changed.wait()
            self.changed.clear()
            try:
                await self.show_active_jobs()
            except Exception:
                log.exception("showing the queue failed; trying again")
            await asyncio.sleep(min(REFRESH_GAP_S, self.interval))

    async def show_active_jobs(self) -> None:
        jobs = [
            job
            for job in await self.bot.queue.active_jobs()
            if job.channel_id is not None and job.kind is not JobKind.SHOT
        ]
        waiting = [job.id for job in jobs if job.status is JobStatus.QUEUED]
        positions = await self.bot.queue.positions(waiting)
        scenes = await self.scenes.of_jobs(waiting)
        running = [job.id for job in jobs if job.status is JobStatus.RUNNING]
        previews = {}
        if running:
            previews = await asyncio.to_thread(latest_previews, self.clips_dir, running)
        by_channel: dict[int, list[Job]] = defaultdict(list)
        for job in jobs:
            by_channel[job.channel_id or 0].append(job)
        for channel_id, its_jobs in by_channel.items():
            for job in its_jobs:
                position, scene = positions.get(job.id), scenes.get(job.id)
                button, preview = can_edit(job, scene), previews.get(job.id)
                if self.has_own_status(job, len(its_jobs)):
                    line = render.status_line(job, position, scene)
                    self.show_status(job, line, button=button, preview=preview)
                    preview = None  # everyone sees it there; the private reply need not
                self.bot.private_replies.update(
                    job.id,
                    render.private_line(job, position, scene),
                    edit_scene=button,
                    preview=preview,
                )
            listed = any(job.id in self.on_board for job in its_jobs)
            self.boards.show(channel_id, board_text(its_jobs, positions) if listed else None)
        for channel_id in self.boards.channels() - by_channel.keys():
            self.boards.show(channel_id, None)

    def has_own_status(self, job: Job, jobs_in_channel: int) -> bool:
        """Whether ``job`` shows in a message of its own, decided once, when first seen."""
        if job.id in self.statuses:
            return True
        if job.id in self.on_board:
            return False
        if job.status_message_id is not None or jobs_in_channel < self.board_from:
            self.statuses[job.id] = StatusMessage(job.status_message_id)
            return True
        self.on_board.add(job.id)
        return False

    def show_status(
        self, job: Job, text: str, *, button: bool = False, preview: Preview | None = None
    ) -> None:
        """Show ``text`` (with the Edit scene ``button``, the live ``preview``) in the job's
        status message."""
        status = self.statuses[job.id]
        if status.gone or status.final:
            return
        status.wanted, status.button_wanted, status.preview_wanted = text, button, preview
        channel_id, key = job.channel_id or 0, ("status", job.id)
        changed = status.changed()
        if status.message_id is None:
            action = self.status_poster(job, status)
            self.writes.offer(channel_id, Route.SEND, Priority.NEW_STATUS, key, action)
        elif changed and time.monotonic() - status.edited_at >= self.interval:
            action = self.status_editor(job, status)
            self.writes.offer(channel_id, Route.EDIT, Priority.UPDATE, key, action)

    def status_poster(self, job: Job, status: StatusMessage) -> StatusWrite:
        async def post() -> object:
            async with status.lock:
                if status.final or status.message_id is not None:
                    return NOT_SENT
                text, button = status.wanted, status.button_wanted
                channel = channel_of(self.bot, job)
                view = scene_view(job.id) if button else discord.utils.MISSING
                try:
                    message = await channel.send(text, view=view, allowed_mentions=NO_PINGS)
                except (discord.NotFound, discord.Forbidden) as exc:
                    # The channel is gone or closed to the bot; the clip will find out too.
                    log.info("cannot post the status of job %s: %s", job.id, exc)
                    status.gone = True
                    return None
                self.writes.sent(channel.id, message.id)
                status.message_id, status.shown, status.button_shown = message.id, text, button
                status.edited_at = status.posted_at = time.monotonic()
                await self.bot.queue.set_status_message(job.id, message.id)
                return message

        return post

    def status_editor(self, job: Job, status: StatusMessage) -> StatusWrite:
        async def edit() -> object:
            async with status.lock:
                if status.final or status.gone or not status.changed():
                    return NOT_SENT
                await self.edit_status(job, status)
                return None

        return edit

    async def edit_status(self, job: Job, status: StatusMessage) -> None:
        if status.message_id is None:
            return
        text, button, preview = status.wanted, status.button_wanted, status.preview_wanted
        message = channel_of(self.bot, job).get_partial_message(status.message_id)
        view = scene_view(job.id) if button else None
        attached, shown_preview = await attachments_for(preview, status.preview_shown)
        try:
            await message.edit(content=text, view=view, allowed_mentions=NO_PINGS, **attached)
        except (discord.NotFound, discord.Forbidden):
            # Someone deleted the status message (10008): stop updating it, never re-post it.
            log.info("status message of job %s is gone", job.id)
            status.gone = True
            return
        status.shown, status.button_shown, status.edited_at = text, button, time.monotonic()
        status.preview_shown = shown_preview

    # --- when jobs end ---

    def deliver_soon(self, job: Job) -> None:
        if job.kind is JobKind.SHOT:
            self.bot.dispatch(SHOT_EVENT, job)
            return
        if job.id in self.deliveries or job.channel_id is None:
            return
        self.retries.pop(job.id, None)
        task = asyncio.create_task(self.deliver(job), name=f"deliver-{job.id}")
        self.deliveries[job.id] = task

    async def deliver(self, job: Job) -> None:
        try:
            status = self.statuses.get(job.id) or StatusMessage(job.status_message_id)
            status.final = True
            self.writes.drop(("status", job.id))
            async with status.lock:
                pass  # a status write already under way finishes first
            await self.finish(job, status)
            self.forget(job.id)
        except discord.HTTPException:
            log.warning("Discord refused delivering job %s; retrying later", job.id, exc_info=True)
            self.retry_later(job.id)
        except Exception:
            log.exception("delivering job %s failed; retrying later", job.id)
            self.retry_later(job.id)
        finally:
            self.deliveries.pop(job.id, None)
            self.changed.set()

    def retry_later(self, job_id: int) -> None:
        self.retries[job_id] = asyncio.get_running_loop().call_later(
            RETRY_AFTER_S, self.start_retry, job_id
        )

    def start_retry(self, job_id: int) -> None:
        self.retries.pop(job_id, None)
        task = asyncio.create_task(self.retry(job_id), name=f"retry-{job_id}")
        self.retrying.add(task)
        task.add_done_callback(self.retrying.discard)

    async def retry(self, job_id: int) -> None:
        try:
            job = await self.bot.queue.get(job_id)
        except Exception:
            # A finished job must not wait for a restart because one read failed.
            log.exception("could not read job %s to deliver it; retrying later", job_id)
            self.retry_later(job_id)
            return
        if job is not None and job.status.is_terminal and job.delivered_at is None:
            self.deliver_soon(job)

    async def finish(self, job: Job, status: StatusMessage) -> None:
        if job.status is JobStatus.DONE:
            # The output safety check may have held the clip back (bot/output_safety.py).
            held = await output_safety.disposition(self.bot, job)
            if held is Disposition.WITHHOLD:
                await output_safety.withhold(self, job, status)
                return
            if held is Disposition.SPOILER:
                job = await output_safety.mark_spoilered(self.bot, job)
            await self.deliver_clip(job, status)
        elif job.status is JobStatus.CANCELLED and status.message_id is None:
            # Only a queue board listed it, and whoever cancelled it was told privately.
            await self.bot.queue.mark_delivered(job.id, NO_MESSAGE)
            self.bot.private_replies.finish(job.id, render.finished_line(job))
        elif job.kind is JobKind.FILM:
            # A film that could not be made: its storyboard can be reshot from any shot.
            view = await film_stopped_view(self.bot, job)
            await self.say_finished(job, status, render.finished_line(job), view=view)
        else:
            await self.say_finished(job, status, render.finished_line(job))

    async def deliver_clip(self, job: Job, status: StatusMessage) -> None:
        # Clips ahead of it in a busy channel can take a while: say it is done meanwhile.
        self.bot.private_replies.update(job.id, render.private_posting(job), news=True)
        posted, dressing = None, None
        if job.kind is JobKind.FILM:
            # A storyboard's film goes into its thread, with Reshoot N instead of the clip's.
            job, dressing = await film_delivery(self.bot, job)
        if job.id in self.check_history:
            posted = await find_posted_clip(self.bot, job)
        try:
            posted = posted or await post_clip(
                self.bot, job, replacing=self.replaceable(job, status), dressing=dressing
            )
        except ClipWontFit as too_large:
            sentence = render.too_large_line(job, too_large.size_bytes, too_large.limit_bytes)
            await self.say_finished(job, status, sentence)
            return
        except (discord.NotFound, discord.Forbidden):
            log.warning("cannot post job %s in channel %s", job.id, job.channel_id, exc_info=True)
            await self.bot.queue.mark_delivered(job.id, NO_MESSAGE)
            return
        # Reactions find their job through this index: record it before anyone can see the
        # clip as delivered. A film takes no reactions (Reshoot N is its only action).
        if job.kind is not JobKind.FILM:
            await self.bot.store.remember_clip(posted.id, job.id)
        if status.message_id not in (None, posted.id) and not status.gone:
            await self.remove_status(job, status.message_id)
        if not await self.bot.queue.mark_delivered(job.id, posted.id):
            log.warning("job %s was already delivered; removing the duplicate", job.id)
            await posted.delete()
            return
        self.check_history.discard(job.id)
        if job.kind is not JobKind.FILM:
            offer_reactions(self.bot, posted)
        self.bot.private_replies.finish(job.id, render.private_done(job, posted.jump_url))

    def replaceable(self, job: Job, status: StatusMessage) -> int | None:
        """The status message to turn into the clip: only the channel's newest bot message
        (else the clip would appear up in the history), young enough to be edited freely."""
        if status.message_id is None or status.gone or status.posted_at is None:
            return None
        if self.writes.newest_message(job.channel_id or 0) != status.message_id:
            return None
        if time.monotonic() - status.posted_at > EDIT_INTO_CLIP_MAX_AGE_S:
            return None
        return status.message_id

    async def remove_status(self, job: Job, message_id: int) -> None:
        message = channel_of(self.bot, job).get_partial_message(message_id)
        try:
            await self.writes.run(message.channel.id, Route.DELETE, Priority.FINAL, message.delete)
        except (discord.NotFound, discord.Forbidden):
            log.info("status message of job %s was already gone", job.id)

    async def say_finished(
        self,
        job: Job,
        status: StatusMessage,
        sentence: str,
        *,
        private: str | None = None,
        view: discord.ui.View | None = None,
    ) -> None:
        """Turn the status message into ``sentence`` (or post it) with ``view``'s buttons,
        then mark it delivered; the requester's private reply says ``private`` (else the
        same sentence)."""
        channel = channel_of(self.bot, job)
        if status.message_id is not None and not status.gone:
            message = channel.get_partial_message(status.message_id)
            try:
                await self.writes.run(
                    channel.id,
                    Route.EDIT,
                    Priority.FINAL,
                    # No Edit scene button, nor a preview of what was not posted, stays.
                    lambda: message.edit(
                        content=sentence, view=view, attachments=[], allowed_mentions=NO_PINGS
                    ),
                )
            except (discord.NotFound, discord.Forbidden):
                log.info("status message of job %s is gone; posting its outcome", job.id)
            else:
                await self.bot.queue.mark_delivered(job.id, status.message_id)
                self.bot.private_replies.finish(job.id, private or sentence)
                return
        try:
            posted = await self.writes.run(
                channel.id,
                Route.SEND,
                Priority.FINAL,
                lambda: channel.send(
                    sentence, view=view or discord.utils.MISSING, allowed_mentions=NO_PINGS
                ),
            )
        except (discord.NotFound, discord.Forbidden):
            log.warning("cannot post in channel %s for job %s", channel.id, job.id, exc_info=True)
            await self.bot.queue.mark_delivered(job.id, NO_MESSAGE)
            return
        self.writes.sent(channel.id, posted.id)
        await self.bot.queue.mark_delivered(job.id, posted.id)
        self.bot.private_replies.finish(job.id, private or sentence)


def board_text(jobs: list[Job], positions: dict[int, QueuePosition]) -> str:
    """The queue board of a channel whose active jobs are ``jobs``."""
    running = sorted(
        (job for job in jobs if job.status is JobStatus.RUNNING),
        key=lambda job: job.started_at or 0.0,
    )
    waiting = sorted(
        ((job, positions.get(job.id)) for job in jobs if job.status is JobStatus.QUEUED),
        key=lambda pair: (pair[1].position if pair[1] else math.inf, pair[0].id),
    )
    return render.queue_board(running, waiting)


async def setup(bot: ReelBot) -> None:
    await bot.add_cog(Delivery(bot))
