"""The audit log: one row per moderation action or refusal, newest first when read."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import sqlite_utils

from jobqueue.moderation.models import AuditEntry, AuditNote

_COLUMNS = (
    "id, guild_id, created_at, actor_id, action, target_user_id, target_job_id, reason, detail"
)


def insert_entry(
    db: sqlite_utils.Database, guild_id: int, note: AuditNote, *, now: float
) -> AuditEntry:
    values = asdict(note) | {"action": str(note.action)}
    cursor = db.execute(
        f"INSERT INTO audit_log (guild_id, created_at, {', '.join(values)})"
        f" VALUES (?, ?, {', '.join('?' for _ in values)})",
        [guild_id, now, *values.values()],
    )
    row_id = cursor.lastrowid
    assert row_id is not None
    return AuditEntry(id=row_id, guild_id=guild_id, created_at=now, **values)


def recent_entries(
    db: sqlite_utils.Database, guild_id: int, *, user_id: int | None, limit: int
) -> list[AuditEntry]:
    """The newest ``limit`` entries; with ``user_id``, those done by or to that user."""
    if user_id is None:
        rows = db.execute(
            f"SELECT {_COLUMNS} FROM audit_log WHERE guild_id = ? ORDER BY id DESC LIMIT ?",
            [guild_id, limit],
        ).fetchall()
    else:
        rows = db.execute(
            f"SELECT {_COLUMNS} FROM audit_log WHERE guild_id = ?"
            " AND (target_user_id = ? OR actor_id = ?) ORDER BY id DESC LIMIT ?",
            [guild_id, user_id, user_id, limit],
        ).fetchall()
    return [_entry(row) for row in rows]


def entries_after(db: sqlite_utils.Database, *, after_id: int, limit: int) -> list[AuditEntry]:
    """Every server's entries with an id above ``after_id``, oldest first (a primary-key range).

    Ids grow in commit order: every process writes inside ``BEGIN IMMEDIATE``, so a row with a
    lower id can never be committed after one with a higher id has been read.
    """
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM audit_log WHERE id > ? ORDER BY id LIMIT ?", [after_id, limit]
    ).fetchall()
    return [_entry(row) for row in rows]


def newest_entry_id(db: sqlite_utils.Database) -> int:
    """The id of the newest entry of any server; 0 when there is none."""
    return int(db.execute("SELECT COALESCE(MAX(id), 0) FROM audit_log").fetchone()[0])


def counts_by_guild(db: sqlite_utils.Database, after_id: int, through_id: int) -> dict[int, int]:
    """How many entries each server has with an id in (``after_id``, ``through_id``]."""
    rows = db.execute(
        "SELECT guild_id, COUNT(*) FROM audit_log WHERE id > ? AND id <= ? GROUP BY guild_id",
        [after_id, through_id],
    ).fetchall()
    return {int(guild_id): int(count) for guild_id, count in rows}


def nth_newest_id(
    db: sqlite_utils.Database, guild_id: int, n: int, *, through_id: int
) -> int | None:
    """The id of the server's ``n``-th newest entry (1: the newest) up to ``through_id``."""
    row = db.execute(
        "SELECT id FROM audit_log WHERE guild_id = ? AND id <= ? ORDER BY id DESC LIMIT 1 OFFSET ?",
        [guild_id, through_id, n - 1],
    ).fetchone()
    return None if row is None else int(row[0])


def _entry(row: tuple[Any, ...]) -> AuditEntry:
    return AuditEntry(*row)
