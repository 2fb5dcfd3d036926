"""Per-user and queue-wide limits, with overrides stored in the database.

A limit is looked up in three places, first match wins: the user's own row in
``queue_limits``, the server-wide row (``user_id`` 0), then the defaults the queue was
opened with (from settings). Admins change the rows through :meth:`JobQueue.set_limits`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import sqlite_utils

from jobqueue.errors import LimitExceeded
from jobqueue.models import JobKind, JobStatus
from jobqueue.schema import SERVER_SCOPE
from jobqueue.sql import status_is
from jobqueue.store import count_in_status, rows

DAY_SECONDS = 86400.0


@dataclass(frozen=True)
class QueueLimits:
    max_waiting_per_user: int = 5
    max_running_per_user: int = 1
    max_daily_per_user: int = 0
    """Jobs a user may submit in any 24 hours; 0 means no daily limit."""
    max_queue: int = 200


_COLUMNS = {
    "waiting": "max_waiting_per_user",
    "running": "max_running_per_user",
    "daily": "max_daily_per_user",
}


def resolve_limits(db: sqlite_utils.Database, user_id: int, defaults: QueueLimits) -> QueueLimits:
    by_scope = {
        row["user_id"]: row
        for row in rows(
            db, "SELECT * FROM queue_limits WHERE user_id IN (?, ?)", [SERVER_SCOPE, user_id]
        )
    }
    limits = defaults
    for scope in (SERVER_SCOPE, user_id):
        row = by_scope.get(scope)
        if row is None:
            continue
        overrides = {
            field: row[column] for column, field in _COLUMNS.items() if row[column] is not None
        }
        limits = replace(limits, **overrides)
    return limits


def server_running_limit(db: sqlite_utils.Database, defaults: QueueLimits) -> int:
    return resolve_limits(db, SERVER_SCOPE, defaults).max_running_per_user


def store_limits(db: sqlite_utils.Database, user_id: int, changes: dict[str, int | None]) -> None:
    """Set the given columns (``waiting``, ``running``, ``daily``); None leaves one as it is."""
    given: dict[str, Any] = {
        column: value for column, value in changes.items() if value is not None
    }
    for column, value in given.items():
        if column not in _COLUMNS:
            raise ValueError(f"unknown limit {column!r}")
        if value < 0:
            raise ValueError(f"the {column} limit must be 0 or more, not {value}")
    db.execute("INSERT OR IGNORE INTO queue_limits (user_id) VALUES (?)", [user_id])
    for column, value in given.items():
        db.execute(f"UPDATE queue_limits SET {column} = ? WHERE user_id = ?", [value, user_id])


def forget_limits(db: sqlite_utils.Database, user_id: int) -> None:
    db.execute("DELETE FROM queue_limits WHERE user_id = ?", [user_id])


def check_can_submit(
    db: sqlite_utils.Database, user_id: int, limits: QueueLimits, *, now: float
) -> None:
    """Raise :class:`LimitExceeded` with the reason if ``user_id`` may not add a job now."""
    waiting = _user_waiting(db, user_id)
    if waiting >= limits.max_waiting_per_user:
        raise LimitExceeded(
            f"You already have {_clips(waiting)} waiting; wait for one to finish or /cancel one."
        )
    if limits.max_daily_per_user > 0:
        _check_daily(db, user_id, limits.max_daily_per_user, now=now)
    total = count_in_status(db, JobStatus.QUEUED)
    if total >= limits.max_queue:
        raise LimitExceeded(
            f"The queue is full ({_clips(total)} waiting); try again in a few minutes."
        )


def _user_waiting(db: sqlite_utils.Database, user_id: int) -> int:
    row = db.execute("SELECT waiting FROM queue_users WHERE user_id = ?", [user_id]).fetchone()
    return int(row[0]) if row else 0


def _check_daily(db: sqlite_utils.Database, user_id: int, limit: int, *, now: float) -> None:
    # A job cancelled before it ran cost the GPU nothing, so it does not count; nor does a
    # storyboard's film (its shots counted).
    counted = [
        row[0]
        for row in db.execute(
            "SELECT created_at FROM jobs WHERE user_id = ? AND created_at > ?"
            f" AND NOT ({status_is(JobStatus.CANCELLED)} AND started_at IS NULL)"
            " AND kind != ? ORDER BY created_at",
            [user_id, now - DAY_SECONDS, JobKind.FILM.value],
        )
    ]
    if len(counted) < limit:
        return
    frees_at = counted[len(counted) - limit] + DAY_SECONDS
    hours = max(1, math.ceil((frees_at - now) / 3600))
    raise LimitExceeded(
        f"You have reached this server's limit of {_clips(limit)} a day;"
        f" you can make another in {hours} hour{'s' if hours != 1 else ''}."
    )


def _clips(count: int) -> str:
    return f"{count} clip{'s' if count != 1 else ''}"
