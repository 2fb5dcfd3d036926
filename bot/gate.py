"""The checks before any job is submitted: the channel, bans, and blocked prompt content.

Each returns ``None`` when the request may go ahead, or the one sentence to show the user.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import discord

from jobqueue.models import JobRequest

if TYPE_CHECKING:
    from bot.client import ReelBot
    from jobqueue.moderation import Ban


async def admit_user(
    bot: ReelBot,
    *,
    guild_id: int | None,
    channel_id: int | None,
    user_id: int,
    request: JobRequest,
    what: str | None = None,
) -> str | None:
    """The same checks from plain ids, for actions that are not interactions (reactions);
    ``what`` names the request's prompt in a refusal (a "scene" someone wrote)."""
    if guild_id is None or channel_id is None:
        return "Clips can only be made in a server channel."
    moderation = bot.moderation
    allowed = await moderation.channel_allowed(
        guild_id, channel_id, default_ids=bot.settings.discord_allowed_channel_ids
    )
    if not allowed:
        return "Clips can't be made in this channel; ask a moderator which channel to use."
    ban = await moderation.active_ban(guild_id, user_id)
    if ban is not None:
        return ban_sentence(ban)
    hit = await moderation.check_prompts(
        guild_id, prompt=request.prompt, negative_prompt=request.negative_prompt
    )
    if hit is None:
        return None
    refusal = f"Your {what or hit.field} was refused: it matches blocked content ({hit.category})."
    new_ban = await moderation.record_refusal(guild_id, user_id, hit)
    return refusal if new_ban is None else f"{refusal} {ban_sentence(new_ban)}"


def ban_sentence(ban: Ban) -> str:
    if ban.until is None:
        return "You are banned from making clips on this server."
    until = discord.utils.format_dt(datetime.fromtimestamp(ban.until, tz=UTC), "f")
    return f"You are banned from making clips on this server until {until}."
