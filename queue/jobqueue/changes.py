"""The stream of job changes the bot follows to edit status messages and post clips.

Every change to a job gives it the next ``version`` (a sequence number, unique and
indexed), so the stream polls for ``version > last seen``: cheap, in commit order, and
two changes in the same clock tick can never hide each other. A job changed several times
between two polls is reported once, in its latest state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from functools import partial

import sqlite_utils

from jobqueue.db import Database
from jobqueue.models import Job
from jobqueue.store import fetch_jobs

BATCH = 500


async def follow_changes(
    database: Database, *, since: float | None, poll_interval: float
) -> AsyncIterator[Job]:
    """Yield each job whose state changed after ``since`` (unix time; None: from now on)."""
    start = time.time() if since is None else since
    cursor = await database.read(lambda db: _version_before(db, start))
    while True:
        jobs = await database.read(partial(_changed_after, version=cursor))
        for job in jobs:
            cursor = job.version
            yield job
        if len(jobs) < BATCH:
            await asyncio.sleep(poll_interval)


def _version_before(db: sqlite_utils.Database, since: float) -> int:
    row = db.execute("SELECT MIN(version) - 1 FROM jobs WHERE updated_at > ?", [since]).fetchone()
    if row[0] is not None:
        return int(row[0])
    latest = db.execute("SELECT COALESCE(MAX(version), 0) FROM jobs").fetchone()
    return int(latest[0])


def _changed_after(db: sqlite_utils.Database, *, version: int) -> list[Job]:
    return fetch_jobs(
        db, "SELECT * FROM jobs WHERE version > ? ORDER BY version LIMIT ?", [version, BATCH]
    )
