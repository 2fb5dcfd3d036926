"""The mod-log channel: one short line per audit row, posted as moderation happens.

:class:`ModLog` listens to :class:`~jobqueue.moderation.Moderation`, so every audit row the
bot writes (admin commands, refusals and strike bans from the gate, denied admin attempts)
reaches the server's mod-log channel, set with ``/admin modlog set`` or, for every server,
with ``REELBOT_MOD_LOG_CHANNEL_ID``. Lines never ping: they pass ``AllowedMentions.none()``.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import discord

from bot.render import NO_PINGS, mention, shown
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


class ModLog:
    """Posts each audit row to its server's mod-log channel, if it has one."""

    def __init__(self, bot: ReelBot) -> None:
        self.bot = bot

    async def __call__(self, entry: AuditEntry) -> None:
        channel_id = await self.channel_for(entry.guild_id)
        if channel_id is None:
            return
        channel = self.bot.get_partial_messageable(channel_id, guild_id=entry.guild_id)
        try:
            await channel.send(mod_log_line(entry), allowed_mentions=NO_PINGS)
        except discord.HTTPException:
            log.warning("could not post audit row %s to channel %s", entry.id, channel_id)

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
