"""Bans (temporary or permanent, lifted early by unban) and strikes for refused prompts."""

from __future__ import annotations

from typing import Any

import sqlite_utils

from jobqueue.moderation.models import Ban, BlockHit

_COLUMNS = "id, guild_id, user_id, until, reason, banned_by, created_at"


def active_ban(db: sqlite_utils.Database, guild_id: int, user_id: int, *, now: float) -> Ban | None:
    """The ban in force now; of several, the one that lasts longest."""
    row = db.execute(
        f"SELECT {_COLUMNS} FROM bans WHERE guild_id = ? AND user_id = ? AND lifted_at IS NULL"
        " AND (until IS NULL OR until > ?) ORDER BY until IS NULL DESC, until DESC LIMIT 1",
        [guild_id, user_id, now],
    ).fetchone()
    return None if row is None else _ban(row)


def insert_ban(
    db: sqlite_utils.Database,
    guild_id: int,
    user_id: int,
    *,
    now: float,
    until: float | None,
    reason: str,
    by: int,
) -> Ban:
    """Ban ``user_id``, replacing any ban in force (a new ban can shorten an old one)."""
    lift_bans(db, guild_id, user_id, now=now, by=by)
    cursor = db.execute(
        "INSERT INTO bans (guild_id, user_id, created_at, until, reason, banned_by)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [guild_id, user_id, now, until, reason, by],
    )
    return Ban(
        id=int(cursor.lastrowid or 0),
        guild_id=guild_id,
        user_id=user_id,
        until=until,
        reason=reason,
        by=by,
        created_at=now,
    )


def lift_bans(
    db: sqlite_utils.Database, guild_id: int, user_id: int, *, now: float, by: int
) -> Ban | None:
    """End every ban in force; returns the one that was in force, if any."""
    current = active_ban(db, guild_id, user_id, now=now)
    db.execute(
        "UPDATE bans SET lifted_at = ?, lifted_by = ? WHERE guild_id = ? AND user_id = ?"
        " AND lifted_at IS NULL AND (until IS NULL OR until > ?)",
        [now, by, guild_id, user_id, now],
    )
    return current


def add_strike(
    db: sqlite_utils.Database, guild_id: int, user_id: int, hit: BlockHit, *, now: float
) -> None:
    db.execute(
        "INSERT INTO strikes (guild_id, user_id, created_at, rule_id, category, field)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [guild_id, user_id, now, hit.rule_id, hit.category, hit.field],
    )


def strikes_counting(
    db: sqlite_utils.Database, guild_id: int, user_id: int, *, now: float, window_s: float
) -> int:
    """Strikes within the window that no earlier ban has already answered."""
    row = db.execute(
        "SELECT max(created_at) FROM bans WHERE guild_id = ? AND user_id = ?", [guild_id, user_id]
    ).fetchone()
    since = now - window_s
    if row[0] is not None:
        since = max(since, float(row[0]))
    (count,) = db.execute(
        "SELECT count(*) FROM strikes WHERE guild_id = ? AND user_id = ? AND created_at > ?",
        [guild_id, user_id, since],
    ).fetchone()
    return int(count)


def _ban(row: tuple[Any, ...]) -> Ban:
    return Ban(*row)
