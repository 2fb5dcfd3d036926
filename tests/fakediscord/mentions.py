"""Who a message would actually ping, given its content, allowed_mentions and its author."""

from __future__ import annotations

import re
from typing import Any

from tests.fakediscord.state import Channel, Message, Pings, User, World

_USER = re.compile(r"<@!?(\d+)>")
_ROLE = re.compile(r"<@&(\d+)>")
_EVERYONE = re.compile(r"@(everyone|here)")
MENTION_EVERYONE = 1 << 17
DEFAULT_ALLOWED = {"parse": ["users", "roles", "everyone"], "replied_user": True}


def compute_pings(
    world: World,
    channel: Channel,
    author: User,
    content: str,
    allowed_mentions: dict[str, Any] | None,
    *,
    replied_to: Message | None = None,
) -> Pings:
    """Apply Discord's rules: no allowed_mentions means everything in the content pings."""
    allowed: dict[str, Any] = DEFAULT_ALLOWED if allowed_mentions is None else allowed_mentions
    parse = set(allowed.get("parse") or [])
    listed_users = {int(u) for u in allowed.get("users") or []}
    listed_roles = {int(r) for r in allowed.get("roles") or []}

    users = {int(u) for u in _USER.findall(content) if "users" in parse or int(u) in listed_users}
    if replied_to is not None and allowed.get("replied_user", False):
        users.add(replied_to.author.id)
    users.discard(author.id)

    guild = world.guild_of(channel)
    may_mention_all = guild is not None and bool(
        world.permissions(guild, author.id) & MENTION_EVERYONE
    )
    roles: set[int] = set()
    if guild is not None:
        for raw in _ROLE.findall(content):
            role = guild.roles.get(int(raw))
            allowed_role = "roles" in parse or int(raw) in listed_roles
            if role is not None and allowed_role and (role.mentionable or may_mention_all):
                roles.add(role.id)
    everyone = bool(_EVERYONE.search(content)) and "everyone" in parse and may_mention_all
    return Pings(frozenset(users), frozenset(roles), everyone)


def notified_users(world: World, channel: Channel, pings: Pings) -> set[int]:
    """Every user id the pings reach (role members and everyone expanded)."""
    guild = world.guild_of(channel)
    reached = set(pings.users)
    if guild is None:
        return reached
    for member in guild.members.values():
        if pings.everyone or pings.roles.intersection(member.role_ids):
            reached.add(member.user.id)
    return reached
