"""A server's moderation settings: its mod role, its mod-log channel, where bots may generate."""

from __future__ import annotations

from collections.abc import Sequence

import sqlite_utils

from jobqueue.moderation.blocklist_store import ensure_guild

_SETTINGS = ("mod_role_id", "mod_log_channel_id")


def set_guild_setting(
    db: sqlite_utils.Database, guild_id: int, name: str, value: int | None
) -> None:
    if name not in _SETTINGS:
        raise ValueError(f"unknown moderation setting {name!r}")
    ensure_guild(db, guild_id)
    db.execute(f"UPDATE mod_guilds SET {name} = ? WHERE guild_id = ?", [value, guild_id])


def guild_setting(db: sqlite_utils.Database, guild_id: int, name: str) -> int | None:
    if name not in _SETTINGS:
        raise ValueError(f"unknown moderation setting {name!r}")
    row = db.execute(f"SELECT {name} FROM mod_guilds WHERE guild_id = ?", [guild_id]).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def set_channel_rule(
    db: sqlite_utils.Database, guild_id: int, channel_id: int, *, allowed: bool
) -> None:
    db.execute(
        "INSERT INTO channel_rules (guild_id, channel_id, allowed) VALUES (?, ?, ?)"
        " ON CONFLICT (guild_id, channel_id) DO UPDATE SET allowed = excluded.allowed",
        [guild_id, channel_id, int(allowed)],
    )


def channel_rules(db: sqlite_utils.Database, guild_id: int) -> dict[int, bool]:
    rows = db.execute(
        "SELECT channel_id, allowed FROM channel_rules WHERE guild_id = ? ORDER BY channel_id",
        [guild_id],
    ).fetchall()
    return {int(channel): bool(allowed) for channel, allowed in rows}


def is_channel_allowed(rules: dict[int, bool], channel_id: int, default_ids: Sequence[int]) -> bool:
    """Denied channels never; otherwise allowed when no allowlist exists or it names the channel.

    The allowlist is the configured channels (``DISCORD_ALLOWED_CHANNEL_IDS``) plus those
    admins allowed with ``/admin channels allow``.
    """
    if rules.get(channel_id) is False:
        return False
    allowlist = set(default_ids) | {channel for channel, allowed in rules.items() if allowed}
    return not allowlist or channel_id in allowlist
