"""The broker's bookkeeping in the bot's database: attempts sent out, remote workers, and
why waiting jobs wait.

A row in ``broker_dispatches`` is written before an attempt goes out, so a bot that restarts
finds the attempts its workers are still making (and picks them up again) and the ones whose
late answers must be thrown away. Remote workers get a ``workers`` row like local ones, so
/admin stats, ETAs and /metrics see every worker. ``jobs.wait_note`` is shown in a waiting
job's status; writing it is a change of the job, so the bot edits the status at once.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlite_utils

from jobqueue.broker.registry import WorkerAd
from jobqueue.db import Database
from jobqueue.models import Job, JobStatus
from jobqueue.sql import IS_QUEUED, status_is
from jobqueue.store import fetch_jobs, rows, update_job


class DispatchState(StrEnum):
    LIVE = "live"
    """The job's current attempt: the bot waits for its answer."""
    STALE = "stale"
    """Given up: its answer, should it come, is thrown away."""


@dataclass(frozen=True)
class Dispatch:
    job_id: int
    attempt: int
    worker_id: str
    queue: str
    key: str
    state: DispatchState
    sent_at: float


def dispatch_key(job_id: int, attempt: int) -> str:
    """The SAQ job key of one attempt: a new attempt is a new key, never confused with an
    older one's answer."""
    return f"reelbot-job-{job_id}-attempt-{attempt}"


def inputs_key(key: str) -> str:
    return f"{key}-inputs"


@dataclass(frozen=True)
class NoteChange:
    """A waiting job's new wait note (None clears it), or the sentence it fails with."""

    job_id: int
    note: str | None
    unserved_since: float | None
    fail_with: str | None = None


class BrokerRecords:
    """The broker's rows in the queue's database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- attempts sent out ---

    async def mark(self, key: str, state: DispatchState) -> None:
        await self.db.write(
            lambda db: db.execute(
                "UPDATE broker_dispatches SET state = ? WHERE key = ?", [state.value, key]
            )
        )

    async def forget(self, key: str) -> None:
        await self.db.write(
            lambda db: db.execute("DELETE FROM broker_dispatches WHERE key = ?", [key])
        )

    async def forget_settled(self, *, before: float) -> None:
        """Drop the rows of attempts sent before ``before`` that no longer hold their job:
        they were settled (an abandoned one is stale by then, and kept)."""
        await self.db.write(
            lambda db: db.execute(
                "DELETE FROM broker_dispatches WHERE state = ? AND sent_at < ? AND NOT EXISTS"
                " (SELECT 1 FROM jobs WHERE jobs.id = broker_dispatches.job_id"
                f" AND {status_is(JobStatus.RUNNING, column='jobs.status')}"
                " AND jobs.worker_id = broker_dispatches.worker_id"
                " AND jobs.attempts = broker_dispatches.attempt)",
                [DispatchState.LIVE.value, before],
            )
        )

    async def in_state(self, state: DispatchState) -> list[Dispatch]:
        found = await self.db.read(
            lambda db: rows(
                db,
                "SELECT * FROM broker_dispatches WHERE state = ? ORDER BY sent_at",
                [state.value],
            )
        )
        return [Dispatch(**{**row, "state": DispatchState(row["state"])}) for row in found]

    async def still_current(self, dispatch: Dispatch) -> Job | None:
        """The job, if this attempt still holds it (running on that worker, same attempt)."""

        def read(db: sqlite_utils.Database) -> Job | None:
            found = fetch_jobs(
                db,
                "SELECT * FROM jobs WHERE id = ? AND status = ? AND worker_id = ? AND attempts = ?",
                [dispatch.job_id, JobStatus.RUNNING.value, dispatch.worker_id, dispatch.attempt],
            )
            return found[0] if found else None

        return await self.db.read(read)

    # --- remote workers ---

    async def workers_seen(self, ads: list[WorkerAd]) -> None:
        """Record the registered remote workers as seen now (``workers`` rows)."""
        now = time.time()
        await self.db.write(lambda db: _upsert_workers(db, ads, now=now))

    # --- waiting jobs ---

    async def waiting_jobs(self) -> list[Job]:
        return await self.db.read(
            lambda db: fetch_jobs(db, f"SELECT * FROM jobs WHERE {IS_QUEUED} ORDER BY id", [])
        )

    async def unserved_since(self) -> dict[int, float]:
        """When each waiting job was first seen that no live worker could run."""
        found = await self.db.read(
            lambda db: db.execute(
                f"SELECT id, unserved_since FROM jobs WHERE {IS_QUEUED}"
                " AND unserved_since IS NOT NULL"
            ).fetchall()
        )
        return {int(job_id): float(since) for job_id, since in found}

    async def apply_notes(self, changes: list[NoteChange]) -> None:
        """Write new wait notes, and fail the jobs that waited too long; only jobs still
        waiting change."""
        if changes:
            await self.db.write(lambda db: _apply_notes(db, changes, now=time.time()))


def sent(db: sqlite_utils.Database, dispatch: Dispatch) -> None:
    """Record an attempt about to go out (in the transaction that claims its job)."""
    db.execute(
        "INSERT OR REPLACE INTO broker_dispatches"
        " (job_id, attempt, worker_id, queue, key, state, sent_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            dispatch.job_id,
            dispatch.attempt,
            dispatch.worker_id,
            dispatch.queue,
            dispatch.key,
            dispatch.state.value,
            dispatch.sent_at,
        ],
    )


def _upsert_workers(db: sqlite_utils.Database, ads: list[WorkerAd], *, now: float) -> None:
    for ad in ads:
        capability = ad.capability
        models = list(capability.models) if capability.models is not None else None
        values: dict[str, Any] = {
            "worker_id": ad.worker_id,
            "pid": ad.pid,
            "host": ad.host,
            "model": models[0] if models else None,
            "started_at": ad.started_at,
            "now": now,
            "stopped_at": now if ad.stopping else None,
            "models": json.dumps(models) if models is not None else None,
            "max_video_pixels": capability.max_video_pixels,
            "gpu_total_bytes": capability.gpu_total_bytes,
            "gpu_memory_bytes": ad.gpu_memory_bytes,
        }
        db.execute(
            "INSERT INTO workers (worker_id, pid, host, model, started_at, last_seen, stopped_at,"
            " kind, models, max_video_pixels, gpu_total_bytes, gpu_memory_bytes)"
            " VALUES (:worker_id, :pid, :host, :model, :started_at, :now, :stopped_at,"
            " 'remote', :models, :max_video_pixels, :gpu_total_bytes, :gpu_memory_bytes)"
            " ON CONFLICT (worker_id) DO UPDATE SET pid = excluded.pid, host = excluded.host,"
            " model = excluded.model, started_at = excluded.started_at,"
            " last_seen = excluded.last_seen, stopped_at = excluded.stopped_at,"
            " kind = excluded.kind, models = excluded.models,"
            " max_video_pixels = excluded.max_video_pixels,"
            " gpu_total_bytes = excluded.gpu_total_bytes,"
            " gpu_memory_bytes = excluded.gpu_memory_bytes",
            values,
        )


def _apply_notes(db: sqlite_utils.Database, changes: list[NoteChange], *, now: float) -> None:
    for change in changes:
        values: dict[str, Any] = {
            "wait_note": change.note,
            "unserved_since": change.unserved_since,
        }
        if change.fail_with is not None:
            values = {
                "status": JobStatus.FAILED.value,
                "finished_at": now,
                "error": change.fail_with,
                "error_detail": "no live worker served its model",
                "wait_note": None,
            }
        update_job(db, change.job_id, values, now=now, only_if=IS_QUEUED)
