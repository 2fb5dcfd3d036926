"""Who counts as a moderator: Manage Server, Administrator, or the guild's moderator role."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord

if TYPE_CHECKING:
    from bot.client import ReelBot

log = logging.getLogger(__name__)


async def is_moderator(bot: ReelBot, user: discord.abc.User, guild_id: int | None) -> bool:
    """Whether ``user`` may act on other users' jobs and clips in the guild ``guild_id``.

    Judged on the member as Discord's API reports it: the permissions and roles an
    interaction carries could be forged by whoever sent it; the fetched member cannot.
    """
    if guild_id is None:
        return False
    member = await fetch_member(bot, guild_id, user.id)
    if member is None:
        return False
    permissions = member.guild_permissions
    if permissions.administrator or permissions.manage_guild:
        return True
    role_id = await bot.moderation.mod_role(guild_id)
    return role_id is not None and member.get_role(role_id) is not None


async def fetch_member(bot: ReelBot, guild_id: int, user_id: int) -> discord.Member | None:
    try:
        guild = bot.get_guild(guild_id) or await bot.fetch_guild(guild_id)
        return await guild.fetch_member(user_id)
    except discord.HTTPException:
        log.warning("could not look up member %s of guild %s", user_id, guild_id, exc_info=True)
        return None
