"""The mod-log channel: one short line per audit row, whichever process wrote it.

:class:`ModLog` follows the audit table (:class:`~jobqueue.audit_feed.AuditFeed`), so the rows
written by the bot (admin commands, refusals and strike bans from the gate, denied admin
attempts, withheld clips) and by other processes (a rewritten prompt blocked in a GPU worker or
a scene writer) reach the server's mod-log channel by the same path, each once, also after a
restart. The channel is set with ``/admin modlog set`` or, for every server, with
``REELBOT_MOD_LOG_CHANNEL_ID``. Lines never ping: they pass ``AllowedMentions.none()``.
Each line goes through the channel's write budget at the lowest priority, leaving the slots
kept for clips free.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import TYPE_CHECKING

import discord

from bot.channel_writes import Priority, Route
from bot.render import NO_PINGS, mention, shown
from jobqueue.audit_feed import AuditFeed, Cut
from jobqueue.moderation import AUTOMATIC_ACTOR_ID, AuditAction, AuditEntry

if TYPE_CHECKING:
    from bot.client import ReelBot

log = logging.getLogger(__name__)

REASON_IN_LINE = 300
_CHANNEL = re.compile(r"\bchannel (\d+)")
_ROLE = re.compile(r"\brole (\d+)")
DETAIL_IN_LINE = 400

VERBS: dict[str, str] = {
    AuditAction.BAN: "🔨 {actor} banned {target}",
    AuditAction.UNBAN: "🕊️ {actor} unbanned {target}",
    AuditAction.STRIKE_BAN: "🔨 {target} was banned automatically",
    AuditAction.REFUSAL: "🚫 A prompt by {target} was refused",
    AuditAction.REWRITE_BLOCKED: "🚫 The rewritten prompt of {job} by {target} was blocked",
    AuditAction.BLOCKLIST_ADD: "📝 {actor} added a blocklist rule",
    AuditAction.BLOCKLIST_REMOVE: "📝 {actor} removed a blocklist rule",
    AuditAction.LIMITS_SET: "📏 {actor} set queue limits",
    AuditAction.QUEUE_PAUSE: "⏸️ {actor} paused the queue",
    AuditAction.QUEUE_RESUME: "▶️ {actor} resumed the queue",
    AuditAction.QUEUE_CLEAR: "🧹 {actor} cleared the queue",
    AuditAction.JOB_CANCEL: "🛑 {actor} cancelled {job} of {target}",
    AuditAction.JOB_DELETE: "🗑️ {actor} deleted {job} of {target}",
    AuditAction.CHANNEL_ALLOW: "✅ {actor} allowed clips in a channel",
    AuditAction.CHANNEL_DENY: "⛔ {actor} denied clips in a channel",
    AuditAction.MOD_ROLE_SET: "🛡️ {actor} set the moderator role",
    AuditAction.MOD_LOG_SET: "📜 {actor} set the mod-log channel",
    AuditAction.DENIED: "⚠️ {actor} tried an admin command without the rights to",
    AuditAction.GALLERY_ALLOW: "🖼️ {actor} showed a channel's clips in the web gallery",
    AuditAction.GALLERY_DENY: "🙈 {actor} hid a channel's clips from the web gallery",
    AuditAction.SAFETY_SET: "🛡️ {actor} changed the output safety check",
    AuditAction.DRAFTS_SET: "🎞️ {actor} changed whether /create makes drafts first",
    AuditAction.OUTPUT_WITHHELD: "🛡️ The safety check withheld {job} by {target}",
    AuditAction.OUTPUT_SPOILERED: (
        "🛡️ The safety check posted {job} by {target} as a spoiler (age-restricted channel)"
    ),
    AuditAction.OUTPUT_RELEASED: "🛡️ {actor} released the withheld {job} of {target}",
    AuditAction.OUTPUT_DELETED: "🗑️ {actor} deleted the withheld {job} of {target}",
}


def mod_log_line(entry: AuditEntry) -> str:
    """``entry`` as one line: who did what to whom, the detail, and why."""
    actor = "reelbot" if entry.actor_id == AUTOMATIC_ACTOR_ID else mention(entry.actor_id)
    target = mention(entry.target_user_id) if entry.target_user_id is not None else "everyone"
    job = f"job #{entry.target_job_id}" if entry.target_job_id is not None else "a job"
    template = VERBS.get(entry.action, "{actor}: " + entry.action.replace("_", " "))
    line = template.format(actor=actor, target=target, job=job)
    if entry.detail:
        line += f" ({linked(shown(entry.detail, DETAIL_IN_LINE))})"
    if entry.reason:
        line += f": {shown(entry.reason, REASON_IN_LINE)}"
    return line if line.endswith((".", "!", "?")) else line + "."


def linked(detail: str) -> str:
    """Channels and roles named in a detail ("channel 12", "role 34") as mentions.

    A role mention in a mod-log line notifies nobody: every line passes ``NO_PINGS``.
    """
    detail = _CHANNEL.sub(r"<#\1>", detail)
    return _ROLE.sub(r"<@&\1>", detail)


CATCH_UP_LINES = 20
"""After a restart, the most lines of each server's backlog posted; the older ones are one line.

A long outage (or a crash during a flood of refusals) can leave hundreds of rows unposted.
At a channel's pace beside clips (by default three lines every five seconds) they would take
minutes, keep today's lines waiting behind yesterday's and push them out of sight; every row
stays in ``/admin log``, so the channel gets the newest rows and a count of the rest.
"""
FOLLOW_AGAIN_AFTER_S = 5.0
STOP_GRACE_S = 10.0
"""How long stopping waits for a line being posted, so its row is remembered as posted."""


def left_out_line(count: int) -> str:
    entries = "entry" if count == 1 else "entries"
    return f"📚 {count} older {entries} from while reelbot was offline: see /admin log."


def posted_text(entry: AuditEntry, cuts: dict[int, Cut]) -> str | None:
    """What the mod-log shows for ``entry``: its line, after the count of the rows left out
    before it where its server's backlog was cut there; None for a row left out."""
    cut = cuts.get(entry.guild_id)
    if cut is None or entry.id > cut.first_kept:
        return mod_log_line(entry)
    if entry.id < cut.first_kept:
        return None
    # One message: a stop between two would post the count again after the restart.
    return f"{left_out_line(cut.left_out)}\n{mod_log_line(entry)}"


class ModLog:
    """Follows the audit log and posts each row to its server's mod-log channel, if it has one.

    Rows are handled one at a time in the order they were written, and each posted row is
    remembered in the database before the next is posted, so how far the log got is one id
    and a restart starts right after it. (A crash between Discord taking a line and that
    write posts the line again.) The price: a server whose channel is out of budget during a
    flood of refusals holds up the lines of other servers, never anyone's clips.
    """

    def __init__(self, bot: ReelBot) -> None:
        self.bot = bot
        # Moderation shares the queue's database, where queue_state keeps how far the log got.
        self.feed = AuditFeed(bot.queue.db, reader="mod_log")
        self.handled_through = -1
        self.handled = asyncio.Condition()
        self.posting = asyncio.Lock()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name="mod-log")

    async def stop(self) -> None:
        """Stop following, after the line being posted (if any) is posted and remembered."""
        if self.task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_GRACE_S), self.posting:
                self.task.cancel()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def caught_up(self) -> None:
        """Wait until every row written so far is handled: posted, or with nowhere to go."""
        newest = await self.feed.newest()
        async with self.handled:
            await self.handled.wait_for(lambda: self.handled_through >= newest)

    async def run(self) -> None:
        await self.bot.wait_until_ready()
        cuts: dict[int, Cut] | None = None
        while True:
            try:
                if cuts is None:
                    cuts = await self.resume()
                await self.follow(self.handled_through, cuts)
            except Exception:
                log.exception("following the audit log failed; starting again")
                await asyncio.sleep(FOLLOW_AGAIN_AFTER_S)

    async def resume(self) -> dict[int, Cut]:
        """Start after the last row handled before; where each server's backlog is cut."""
        after = await self.feed.handled_through()
        await self.advance(after)
        return await self.feed.backlog_cuts(after, keep=CATCH_UP_LINES)

    async def follow(self, after: int, cuts: dict[int, Cut]) -> None:
        async for batch in self.feed.follow(after):
            channels: dict[int, int | None] = {}
            for entry in batch:
                if entry.guild_id not in channels:
                    channels[entry.guild_id] = await self.channel_for(entry.guild_id)
                channel_id = channels[entry.guild_id]
                text = posted_text(entry, cuts)
                if channel_id is not None and text is not None:
                    async with self.posting:
                        await self.post(channel_id, entry, text)
                        await self.feed.mark_handled(entry.id)
                await self.advance(entry.id)
            # Rows with nowhere to go are remembered once a batch.
            await self.feed.mark_handled(batch[-1].id)

    async def post(self, channel_id: int, entry: AuditEntry, text: str) -> None:
        channel = self.bot.get_partial_messageable(channel_id, guild_id=entry.guild_id)
        try:
            # The lowest priority: a line never takes the slots kept for clips and final
            # statuses, and waits behind every clip in the same channel.
            message = await self.bot.writes.run(
                channel_id,
                Route.SEND,
                Priority.UPDATE,
                lambda: channel.send(text, allowed_mentions=NO_PINGS),
            )
        except discord.HTTPException as exc:
            if exc.status >= 500:
                raise  # Discord is down: this row is tried again when following starts again
            log.warning("could not post audit row %s to channel %s", entry.id, channel_id)
            return
        self.bot.writes.sent(channel_id, message.id)

    async def advance(self, through: int) -> None:
        async with self.handled:
            self.handled_through = through
            self.handled.notify_all()

    async def channel_for(self, guild_id: int) -> int | None:
        chosen = await self.bot.moderation.mod_log_channel(guild_id)
        if chosen is not None:
            return chosen
        default = self.bot.settings.mod_log_channel_id
        if default is None:
            return None
        # The configured channel belongs to one server; never post another server's log there.
        channel = self.bot.get_channel(default)
        guild = getattr(channel, "guild", None)
        return default if guild is not None and guild.id == guild_id else None
