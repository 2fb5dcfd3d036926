"""Reading and changing job rows; every change a user could notice advances ``version``.

Functions here take a ``sqlite_utils.Database`` and run inside a :class:`~jobqueue.db.Database`
read or write call (writes are already in a ``BEGIN IMMEDIATE`` transaction).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlite_utils

from jobqueue.models import Job, JobStatus


def next_version(db: sqlite_utils.Database) -> int:
    """The next change sequence number; unique because writers hold SQLite's write lock."""
    row = db.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM jobs").fetchone()
    return int(row[0])


def rows(
    db: sqlite_utils.Database, sql: str, params: dict[str, Any] | list[Any] | None = None
) -> list[dict[str, Any]]:
    """Rows as dicts. Unlike ``db.query`` it adds no savepoint around each statement, which
    costs two extra statements per read in the scheduler's hot path."""
    cursor = db.conn.execute(sql, params if params is not None else [])
    columns = [description[0] for description in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def fetch_job(db: sqlite_utils.Database, job_id: int) -> Job | None:
    found = rows(db, "SELECT * FROM jobs WHERE id = ?", [job_id])
    return Job.from_row(found[0]) if found else None


def fetch_jobs(
    db: sqlite_utils.Database, sql: str, params: dict[str, Any] | list[Any]
) -> list[Job]:
    """Jobs from ``SELECT * FROM jobs ...`` SQL."""
    return [Job.from_row(row) for row in rows(db, sql, params)]


def update_job(
    db: sqlite_utils.Database,
    job_id: int,
    values: Mapping[str, Any],
    *,
    now: float,
    only_if: str = "1",
    only_if_params: Mapping[str, Any] | None = None,
) -> bool:
    """Set ``values`` on one job, as a change the stream reports; False if ``only_if`` failed.

    ``only_if`` is an SQL condition with named parameters (such as ``leases.OWNED``, "still
    running under this worker"): the check and the update happen in one statement.
    """
    assignments = [f"{column} = :set_{column}" for column in values]
    assignments += ["updated_at = :now", "version = :version"]
    params: dict[str, Any] = {f"set_{column}": value for column, value in values.items()}
    params.update(only_if_params or {})
    params.update(job_id=job_id, now=now, version=next_version(db))
    cursor = db.execute(
        f"UPDATE jobs SET {', '.join(assignments)} WHERE id = :job_id AND ({only_if})",
        params,
    )
    return cursor.rowcount == 1


def read_state(db: sqlite_utils.Database, key: str) -> str | None:
    row = db.execute("SELECT value FROM queue_state WHERE key = ?", [key]).fetchone()
    return None if row is None else str(row[0])


def write_state(db: sqlite_utils.Database, key: str, value: str) -> None:
    db.execute(
        "INSERT INTO queue_state (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )


def is_paused(db: sqlite_utils.Database) -> bool:
    return read_state(db, "paused") == "1"


def count_in_status(db: sqlite_utils.Database, status: JobStatus) -> int:
    """How many jobs are in ``status`` (kept by triggers in ``queue_counts``)."""
    row = db.execute("SELECT jobs FROM queue_counts WHERE status = ?", [status.value]).fetchone()
    return int(row[0]) if row else 0
