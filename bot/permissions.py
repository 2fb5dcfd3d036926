"""Who counts as a moderator: Manage Server, Administrator, or the guild's moderator role."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

if TYPE_CHECKING:
    from bot.client import ReelBot


async def is_moderator(bot: ReelBot, member: discord.Member | discord.User) -> bool:
    """Whether ``member`` may act on other users' jobs and clips in their guild."""
    if not isinstance(member, discord.Member):
        return False
    # An interaction's member carries its resolved permissions; a cached member has roles.
    permissions = member.resolved_permissions or member.guild_permissions
    if permissions.administrator or permissions.manage_guild:
        return True
    role_id = await bot.moderation.mod_role(member.guild.id)
    return role_id is not None and member.get_role(role_id) is not None
