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


def _entry(row: tuple[Any, ...]) -> AuditEntry:
    return AuditEntry(*row)
