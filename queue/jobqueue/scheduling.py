"""Which job runs next: round-robin across users, then priority, then age.

The fair order, precisely:

1. Only users with a job waiting and fewer jobs running than their running limit take part.
2. Each user has a turn number, ``served_seq``: the claim sequence number of the user's
   most recently started job (0 if none has ever started). The user with the lowest turn
   number goes next, so a user who has just been served waits until every other waiting
   user has had a job started, and a newcomer goes ahead of everyone already served.
3. Users who have never been served (all at turn 0) are ordered by their best waiting job:
   higher priority first, then the older job (lower id).
4. The chosen user's job is their best waiting job: higher priority first, then the oldest.

Triggers keep each user's best waiting job (``head_priority``, ``head_id``) on their
``queue_users`` row, and a partial index orders the users with jobs waiting by
(turn, head priority, head id): picking is one index seek, however long the queue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from jobqueue.models import Job
from jobqueue.sql import IS_QUEUED
from jobqueue.store import rows

_USERS_IN_TURN = """
    SELECT u.head_id, u.user_id FROM queue_users u
    LEFT JOIN queue_limits l ON l.user_id = u.user_id
    WHERE u.waiting > 0 AND u.running < COALESCE(l.running, :server_running)
    ORDER BY u.served_seq, u.head_priority DESC, u.head_id
"""


def pick_next(
    db: sqlite_utils.Database,
    *,
    server_running_limit: int,
    can_run: Callable[[Job], bool] | None = None,
) -> dict[str, Any] | None:
    """The row of the job that should start next, or None if nothing may start.

    With ``can_run`` (a worker that serves some models only), the next job that worker can
    run: the first user in turn with such a job gives their best one.
    """
    params = {"server_running": server_running_limit}
    if can_run is None:
        turn = db.execute(f"{_USERS_IN_TURN} LIMIT 1", params).fetchone()
        if turn is None:
            return None
        found = rows(db, "SELECT * FROM jobs WHERE id = ?", [turn[0]])
        return found[0] if found else None
    for _, user_id in db.execute(_USERS_IN_TURN, params).fetchall():
        waiting = rows(
            db,
            f"SELECT * FROM jobs WHERE {IS_QUEUED} AND user_id = ? ORDER BY priority DESC, id",
            [user_id],
        )
        for row in waiting:
            if can_run(Job.from_row(row)):
                return row
    return None


def mark_served(db: sqlite_utils.Database, user_id: int, *, now: float) -> None:
    """Send ``user_id`` to the back of the round: their turn number becomes the newest."""
    db.execute(
        "UPDATE queue_users SET last_served_at = :now,"
        " served_seq = (SELECT MAX(served_seq) FROM queue_users) + 1"
        " WHERE user_id = :user_id",
        {"now": now, "user_id": user_id},
    )


@dataclass(frozen=True)
class _WaitingUser:
    user_id: int
    waiting: int
    served_seq: int
    head_priority: int
    head_id: int

    @property
    def turn(self) -> tuple[int, int, int]:
        return (self.served_seq, -self.head_priority, self.head_id)


def jobs_ahead(db: sqlite_utils.Database, job: Job) -> int:
    """How many waiting jobs start before ``job`` if nothing else is submitted.

    The fair order serves one job per user per round. ``job`` starts in round ``r + 1``,
    where ``r`` is the number of its owner's jobs ahead of it; every other user contributes
    one job to each earlier round (plus one in that round if their turn comes first), as
    long as they have jobs left. Running limits and new arrivals are not foreseen, so
    this is an estimate, exact for a queue that only drains.
    """
    own_ahead = db.execute(
        f"SELECT COUNT(*) FROM jobs WHERE {IS_QUEUED} AND user_id = :user_id"
        " AND (priority > :priority OR (priority = :priority AND id < :id))",
        {"user_id": job.user_id, "priority": job.priority, "id": job.id},
    ).fetchone()[0]
    users = _waiting_users(db)
    mine = next((user for user in users if user.user_id == job.user_id), None)
    if mine is None:
        return int(own_ahead)
    ahead = int(own_ahead)
    for other in users:
        if other.user_id == job.user_id:
            continue
        rounds = own_ahead + (1 if other.turn < mine.turn else 0)
        ahead += min(other.waiting, rounds)
    return ahead


def _waiting_users(db: sqlite_utils.Database) -> list[_WaitingUser]:
    rows = db.execute(
        "SELECT user_id, waiting, served_seq, head_priority, head_id FROM queue_users"
        " WHERE waiting > 0"
    ).fetchall()
    return [_WaitingUser(*row) for row in rows]
