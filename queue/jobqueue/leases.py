"""A worker's side of a job: claim it under a lease, keep the lease, finish it once.

A lease is a deadline (``lease_expires_at``) renewed by the worker's heartbeat. A job whose
lease has passed belongs to a worker that died: the next claim puts it back in the queue
(or fails it once it has used all its attempts). Every update a worker makes is guarded by
:data:`OWNED` (the job is running, under this worker's id), so a worker that lost its lease
can never overwrite, or complete, a job another worker has taken since.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import sqlite_utils

from jobqueue.eta import shape_key
from jobqueue.models import Job, JobResult, JobStatus, Stage, WorkerInfo
from jobqueue.scheduling import mark_served, pick_next
from jobqueue.sql import IS_RUNNING
from jobqueue.store import fetch_job, is_paused, rows, update_job

OWNED = f"{IS_RUNNING} AND worker_id = :worker_id"
"""The condition on every write a worker makes to its job (named parameter ``worker_id``)."""

WORKER_SEEN_WITHIN_S = 60.0
"""A worker that has not been seen for this long is not counted as running."""


class LeaseState(StrEnum):
    HELD = "held"
    CANCEL_REQUESTED = "cancel_requested"
    LOST = "lost"


def claim_next(
    db: sqlite_utils.Database,
    *,
    worker_id: str,
    lease_seconds: float,
    server_running_limit: int,
    now: float,
    can_run: Callable[[Job], bool] | None = None,
) -> Job | None:
    """Start the next job in the fair order for ``worker_id`` (of those it ``can_run``), or
    return None."""
    requeue_expired(db, now=now)
    if is_paused(db):
        return None
    row = pick_next(db, server_running_limit=server_running_limit, can_run=can_run)
    if row is None:
        return None
    mark_served(db, row["user_id"], now=now)
    update_job(
        db,
        row["id"],
        {
            "status": JobStatus.RUNNING.value,
            "worker_id": worker_id,
            "lease_expires_at": now + lease_seconds,
            "attempts": row["attempts"] + 1,
            "started_at": now,
            "stage": Stage.WAITING.value,
            "step": 0,
            "total_steps": 0,
        },
        now=now,
    )
    return fetch_job(db, row["id"])


def requeue_expired(db: sqlite_utils.Database, *, now: float) -> list[int]:
    """Put jobs whose worker stopped heartbeating back in the queue; return their ids."""
    expired = rows(
        db,
        "SELECT id, attempts, max_attempts, cancel_requested, worker_id FROM jobs"
        f" WHERE {IS_RUNNING} AND lease_expires_at < ?",
        [now],
    )
    for row in expired:
        detail = f"worker {row['worker_id']} stopped heartbeating (attempt {row['attempts']})"
        update_job(db, row["id"], _after_lost_lease(row, detail, now=now), now=now)
    return [row["id"] for row in expired]


def give_up(
    db: sqlite_utils.Database, job_id: int, worker_id: str, detail: str, *, now: float
) -> bool:
    """End ``worker_id``'s lease now, as if it had run out (its worker stopped answering):
    the job waits again, or ends once it has used all its attempts. False if not held."""
    found = rows(
        db,
        "SELECT id, attempts, max_attempts, cancel_requested, worker_id FROM jobs"
        f" WHERE id = :job_id AND {OWNED}",
        {"job_id": job_id, "worker_id": worker_id},
    )
    if not found:
        return False
    values = _after_lost_lease(found[0], detail, now=now)
    return update_job(
        db, job_id, values, now=now, only_if=OWNED, only_if_params={"worker_id": worker_id}
    )


def _after_lost_lease(row: dict[str, Any], detail: str, *, now: float) -> dict[str, Any]:
    if row["cancel_requested"]:
        return _finished(JobStatus.CANCELLED, now=now, error_detail=detail)
    if row["attempts"] < row["max_attempts"]:
        return back_in_queue(detail)
    return _finished(
        JobStatus.FAILED,
        now=now,
        error=(
            f"The worker stopped while making this clip, {row['attempts']} times;"
            " try a shorter or smaller clip, or try again later."
        ),
        error_detail=detail,
    )


def renew(
    db: sqlite_utils.Database, job_id: int, worker_id: str, *, lease_seconds: float, now: float
) -> LeaseState:
    """Extend the lease (a heartbeat) and say whether the job should go on."""
    cursor = db.execute(
        f"UPDATE jobs SET lease_expires_at = :expires WHERE id = :job_id AND {OWNED}",
        {"expires": now + lease_seconds, "job_id": job_id, "worker_id": worker_id},
    )
    db.execute("UPDATE workers SET last_seen = ? WHERE worker_id = ?", [now, worker_id])
    if cursor.rowcount != 1:
        return LeaseState.LOST
    return _lease_state(db, job_id)


def update_running(
    db: sqlite_utils.Database,
    job_id: int,
    worker_id: str,
    values: dict[str, Any],
    *,
    lease_seconds: float,
    now: float,
) -> LeaseState:
    """Record progress (stage, step, rewritten prompt...) on a job this worker holds."""
    values = {**values, "lease_expires_at": now + lease_seconds}
    if not update_job(
        db, job_id, values, now=now, only_if=OWNED, only_if_params={"worker_id": worker_id}
    ):
        return LeaseState.LOST
    worker_seen(db, worker_id, now=now)
    return _lease_state(db, job_id)


def finish(
    db: sqlite_utils.Database,
    job_id: int,
    worker_id: str,
    status: JobStatus,
    values: dict[str, Any],
    *,
    now: float,
) -> bool:
    """Move a job this worker holds to ``status``; False if the lease was lost meanwhile."""
    finished = {**_finished(status, now=now), **values}
    if status is JobStatus.DONE:
        started = db.execute("SELECT started_at FROM jobs WHERE id = ?", [job_id]).fetchone()
        if started is not None and started[0] is not None:
            finished["run_seconds"] = now - started[0]
    return update_job(
        db, job_id, finished, now=now, only_if=OWNED, only_if_params={"worker_id": worker_id}
    )


def result_values(result: JobResult) -> dict[str, Any]:
    return {
        "result_path": result.result_path,
        "width": result.width,
        "height": result.height,
        "frames": result.frames,
        "fps": result.fps,
        "seed": result.seed,
        "model": result.model,
        "rewritten_prompt": result.rewritten_prompt,
        "rewrite_note": result.rewrite_note,
        "step": result.steps,
        "total_steps": result.steps,
        "timings": json.dumps(result.timings),
        "shape_key": result.shape_key
        or shape_key(
            model=result.model,
            width=result.width,
            height=result.height,
            frames=result.frames,
            steps=result.steps,
        ),
    }


def back_in_queue(error_detail: str) -> dict[str, Any]:
    """The columns of a running job put back to wait for another worker."""
    return {
        "status": JobStatus.QUEUED.value,
        "worker_id": None,
        "lease_expires_at": None,
        "stage": Stage.WAITING.value,
        "step": 0,
        "total_steps": 0,
        "error_detail": error_detail,
    }


def _finished(status: JobStatus, *, now: float, **values: Any) -> dict[str, Any]:
    return {
        "status": status.value,
        "finished_at": now,
        "lease_expires_at": None,
        **values,
    }


def _lease_state(db: sqlite_utils.Database, job_id: int) -> LeaseState:
    row = db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", [job_id]).fetchone()
    return LeaseState.CANCEL_REQUESTED if row and row[0] else LeaseState.HELD


def register_worker(
    db: sqlite_utils.Database, worker_id: str, *, pid: int, host: str, model: str | None, now: float
) -> None:
    db.execute(
        "INSERT INTO workers (worker_id, pid, host, model, started_at, last_seen)"
        " VALUES (:worker_id, :pid, :host, :model, :now, :now)"
        " ON CONFLICT (worker_id) DO UPDATE SET pid = excluded.pid, host = excluded.host,"
        " model = excluded.model, started_at = excluded.started_at,"
        " last_seen = excluded.last_seen, stopped_at = NULL",
        {"worker_id": worker_id, "pid": pid, "host": host, "model": model, "now": now},
    )


def worker_seen(db: sqlite_utils.Database, worker_id: str, *, now: float) -> None:
    db.execute("UPDATE workers SET last_seen = ? WHERE worker_id = ?", [now, worker_id])


def worker_stopped(db: sqlite_utils.Database, worker_id: str, *, now: float) -> None:
    db.execute("UPDATE workers SET stopped_at = ? WHERE worker_id = ?", [now, worker_id])


def live_workers(db: sqlite_utils.Database, *, now: float) -> list[WorkerInfo]:
    found = rows(
        db,
        "SELECT worker_id, pid, host, model, started_at, last_seen, kind, models,"
        " max_video_pixels, gpu_total_bytes,"
        f" (SELECT id FROM jobs WHERE {IS_RUNNING} AND jobs.worker_id = workers.worker_id"
        "  LIMIT 1) AS job_id"
        " FROM workers WHERE stopped_at IS NULL AND last_seen > ? ORDER BY started_at",
        [now - WORKER_SEEN_WITHIN_S],
    )
    return [
        WorkerInfo(**{**row, "models": json.loads(row["models"]) if row["models"] else None})
        for row in found
    ]
