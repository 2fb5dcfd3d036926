"""The job queue's API: what the bot calls (submit, cancel, position, changes, limits...)
and what workers call (claim, heartbeat, progress, finish).

All state is in one SQLite file, so the bot and any number of worker processes share it;
every method is a short transaction on :class:`~jobqueue.db.Database`.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from jobqueue.changes import follow_changes
from jobqueue.db import Database
from jobqueue.errors import JobNotFound, LimitExceeded, NotAllowed, QueueError, QueuePaused
from jobqueue.eta import estimate_seconds, eta_seconds, request_key, typical_seconds
from jobqueue.leases import (
    OWNED,
    LeaseState,
    back_in_queue,
    claim_next,
    finish,
    give_up,
    live_workers,
    register_worker,
    renew,
    requeue_expired,
    result_values,
    update_running,
    worker_seen,
    worker_stopped,
)
from jobqueue.limits import (
    QueueLimits,
    check_can_submit,
    forget_limits,
    resolve_limits,
    server_running_limit,
    store_limits,
)
from jobqueue.models import (
    ACTIVE_STATUSES,
    Job,
    JobKind,
    JobRequest,
    JobResult,
    JobStatus,
    Stage,
    WorkerInfo,
    progress_values,
)
from jobqueue.scheduling import jobs_ahead
from jobqueue.schema import SERVER_SCOPE, all_migrations
from jobqueue.sql import IS_ACTIVE, IS_DONE, IS_QUEUED, IS_RUNNING, IS_TERMINAL, status_in
from jobqueue.store import (
    count_in_status,
    fetch_job,
    fetch_jobs,
    is_paused,
    next_version,
    update_job,
    write_state,
)

__all__ = [
    "JobNotFound",
    "JobQueue",
    "LeaseState",
    "LimitExceeded",
    "NotAllowed",
    "QueueError",
    "QueueLimits",
    "QueuePaused",
    "QueuePosition",
    "QueueStats",
]

RECENT_AVERAGE_JOBS = 20


@dataclass(frozen=True)
class QueuePosition:
    position: int
    """1 means the job starts next."""
    waiting_total: int
    eta_seconds: float | None
    """Seconds until the clip should be ready; None until some job has finished."""


@dataclass(frozen=True)
class QueueStats:
    waiting: int
    running: int
    done_today: int
    failed_today: int
    cancelled_today: int
    avg_seconds: float | None
    paused: bool
    workers: list[WorkerInfo] = field(default_factory=list)


@dataclass(frozen=True)
class EndedJob:
    """A job added already ended, one no worker runs (a storyboard's film): what it stands
    for, whose it is, where it is posted, and when it was asked for (its time taken counts
    from there). The idempotency key makes adding it twice return the first."""

    kind: JobKind
    request: JobRequest
    user_id: int
    guild_id: int | None
    channel_id: int | None
    parent_id: int | None
    idempotency_key: str
    asked_at: float

    def row(self, status: JobStatus) -> dict[str, Any]:
        now = time.time()
        return {
            "kind": self.kind.value,
            "status": status.value,
            "request": self.request.to_json(),
            "user_id": self.user_id,
            "guild_id": self.guild_id,
            "channel_id": self.channel_id,
            "parent_id": self.parent_id,
            "idempotency_key": self.idempotency_key,
            "max_attempts": 0,
            "stage": Stage.ENCODING.value,
            "request_key": request_key(self.kind, self.request),
            "created_at": self.asked_at,
            "updated_at": now,
            "finished_at": now,
        }


class JobQueue:
    """Durable, fair job queue on one SQLite file; see the module docstring."""

    def __init__(self, db: Database, *, limits: QueueLimits, max_attempts: int) -> None:
        self.db = db
        self.default_limits = limits
        self.max_attempts = max_attempts

    @classmethod
    async def open(
        cls, path: Path, *, limits: QueueLimits | None = None, max_attempts: int = 3
    ) -> JobQueue:
        """Open the database at ``path`` (creating it), with every area's schema applied."""
        migrations = all_migrations()
        db = await _run_off_loop(lambda: Database.open(path, migrations))
        return cls(db, limits=limits or QueueLimits(), max_attempts=max_attempts)

    async def close(self) -> None:
        await _run_off_loop(self.db.close)

    # --- the bot's side ---

    async def submit(
        self,
        kind: JobKind,
        request: JobRequest,
        *,
        user_id: int,
        guild_id: int | None,
        channel_id: int | None,
        parent_id: int | None = None,
        idempotency_key: str | None = None,
        priority: int = 0,
        check_limits: bool = True,
        then: Callable[[sqlite_utils.Database, Job], None] | None = None,
    ) -> Job:
        """Add a job; the same ``idempotency_key`` again returns the first job unchanged.

        Raises :class:`QueuePaused` or :class:`LimitExceeded` (the message says why), unless
        ``check_limits`` is False: a later part of work already accepted as a whole (a
        storyboard's next shot) is refused by neither. ``then`` records something with the
        job (the new one or the first) in the same transaction; if it raises, nothing is added.
        """
        row = {
            "kind": kind.value,
            "status": JobStatus.QUEUED.value,
            "request": request.to_json(),
            "user_id": user_id,
            "guild_id": guild_id,
            "channel_id": channel_id,
            "parent_id": parent_id,
            "idempotency_key": idempotency_key,
            "priority": priority,
            "max_attempts": self.max_attempts,
            "stage": Stage.WAITING.value,
            "request_key": request_key(kind, request),
        }

        def insert(db: sqlite_utils.Database) -> Job:
            job = _existing(db, idempotency_key)
            if job is None:
                if check_limits:
                    self._check_can_submit(db, user_id)
                now = time.time()
                job = _insert(db, {**row, "created_at": now, "updated_at": now})
            if then is not None:
                then(db, job)
            return job

        return await self.db.write(insert)

    def _check_can_submit(self, db: sqlite_utils.Database, user_id: int) -> None:
        if is_paused(db):
            raise QueuePaused("The queue is paused by the server's moderators; try again later.")
        limits = resolve_limits(db, user_id, self.default_limits)
        check_can_submit(db, user_id, limits, now=time.time())

    async def record_done(
        self,
        ended: EndedJob,
        *,
        publish: Callable[[sqlite_utils.Database, Job], JobResult],
        extra: Mapping[str, Any] | None = None,
    ) -> Job:
        """Add ``ended`` as a job that is done as it is added: one no worker runs (a
        storyboard's film, joined from clips already made). The bot delivers it like any
        finished clip.

        ``publish`` runs in the same transaction with the new job: it moves the clip into
        place under the job's id (and may check the job is still wanted) and returns the
        job's result; if it raises, nothing is added. ``extra`` sets more columns (the safety
        verdict). The same idempotency key again returns the first job and publishes nothing.
        """

        def finish(db: sqlite_utils.Database, job: Job) -> dict[str, Any]:
            return {**result_values(publish(db, job)), **(extra or {})}

        row = ended.row(JobStatus.DONE)
        return await self.db.write(lambda db: _record_ended(db, row, finish))

    async def record_failed(
        self,
        ended: EndedJob,
        *,
        error: str,
        then: Callable[[sqlite_utils.Database, Job], None],
    ) -> Job:
        """Add ``ended`` as a job that failed as it is added: the last step of work accepted
        as a whole could not be made (a storyboard's film whose shots could not be joined), so
        its user is told ``error`` like for any failed job. ``then`` records something with it
        in the same transaction; if it raises, nothing is added. The same idempotency key
        again returns the first job."""

        def finish(db: sqlite_utils.Database, job: Job) -> dict[str, Any]:
            then(db, job)
            return {"error": error}

        row = ended.row(JobStatus.FAILED)
        return await self.db.write(lambda db: _record_ended(db, row, finish))

    async def get(self, job_id: int) -> Job | None:
        return await self.db.read(lambda db: fetch_job(db, job_id))

    async def cancel(self, job_id: int, *, by_user_id: int, is_moderator: bool = False) -> Job:
        """Cancel a job: a waiting one at once, a running one at its next step.

        Raises :class:`JobNotFound`, :class:`NotAllowed` (not the owner nor a moderator) or
        :class:`QueueError` (already finished). Cancelling a cancelled job changes nothing.
        """
        return await self.db.write(
            lambda db: _cancel(db, job_id, by_user_id=by_user_id, is_moderator=is_moderator)
        )

    async def position(self, job_id: int) -> QueuePosition | None:
        """Where a waiting job stands and when its clip should be ready; None if not waiting."""
        return await self.db.read(lambda db: _position(db, job_id))

    async def positions(self, job_ids: list[int]) -> dict[int, QueuePosition]:
        """:meth:`position` of many jobs in one read; jobs not waiting are left out."""

        def read(db: sqlite_utils.Database) -> dict[int, QueuePosition]:
            found = {job_id: _position(db, job_id) for job_id in job_ids}
            return {job_id: place for job_id, place in found.items() if place is not None}

        return await self.db.read(read)

    async def user_jobs(self, user_id: int, *, active_only: bool = True) -> list[Job]:
        statuses = status_in(ACTIVE_STATUSES if active_only else frozenset(JobStatus))
        return await self.db.read(
            lambda db: fetch_jobs(
                db, f"SELECT * FROM jobs WHERE user_id = ? AND {statuses} ORDER BY id", [user_id]
            )
        )

    async def active_jobs(self) -> list[Job]:
        """Every waiting and running job, oldest first (the bot follows these at start-up)."""
        return await self.db.read(
            lambda db: fetch_jobs(db, f"SELECT * FROM jobs WHERE {IS_ACTIVE} ORDER BY id", [])
        )

    def changes(
        self, *, since: float | None = None, poll_interval: float = 0.25
    ) -> AsyncIterator[Job]:
        """Every job that changes from now (or from ``since``, unix time), in change order."""
        start = time.time() if since is None else since
        return follow_changes(self.db, since=start, poll_interval=poll_interval)

    async def stats(self) -> QueueStats:
        return await self.db.read(_stats)

    async def pause(self) -> None:
        """Refuse new jobs and start no more; running jobs finish."""
        await self.db.write(lambda db: write_state(db, "paused", "1"))

    async def resume(self) -> None:
        await self.db.write(lambda db: write_state(db, "paused", "0"))

    async def is_paused(self) -> bool:
        return await self.db.read(is_paused)

    async def clear(self, *, user_id: int | None = None) -> int:
        """Cancel every waiting job (or one user's); return how many were cancelled."""
        return await self.db.write(lambda db: _clear(db, user_id))

    async def set_limits(
        self, *, user_id: int | None, waiting: int | None, running: int | None, daily: int | None
    ) -> None:
        """Override limits for one user (``user_id``) or the server (None).

        A None limit leaves that limit as it is; 0 for ``daily`` means no daily limit.
        """
        scope = SERVER_SCOPE if user_id is None else user_id
        changes = {"waiting": waiting, "running": running, "daily": daily}
        await self.db.write(lambda db: store_limits(db, scope, changes))

    async def reset_limits(self, *, user_id: int | None) -> None:
        """Drop the overrides for one user (or the server): the defaults apply again."""
        scope = SERVER_SCOPE if user_id is None else user_id
        await self.db.write(lambda db: forget_limits(db, scope))

    async def limits_for(self, user_id: int) -> QueueLimits:
        return await self.db.read(lambda db: resolve_limits(db, user_id, self.default_limits))

    async def set_status_message(self, job_id: int, message_id: int) -> None:
        # Bookkeeping for the bot, not a change of the job: the version stays.
        await self.db.write(
            lambda db: db.execute(
                "UPDATE jobs SET status_message_id = ? WHERE id = ?", [message_id, job_id]
            )
        )

    async def mark_delivered(self, job_id: int, message_id: int) -> bool:
        """Record that the bot posted the job's outcome; False if it already had."""

        def mark(db: sqlite_utils.Database) -> bool:
            cursor = db.execute(
                "UPDATE jobs SET delivered_at = ?, result_message_id = ?"
                " WHERE id = ? AND delivered_at IS NULL",
                [time.time(), message_id, job_id],
            )
            return cursor.rowcount == 1

        return await self.db.write(mark)

    async def undelivered_finished(self) -> list[Job]:
        """Finished jobs whose outcome the bot has not posted yet, oldest first."""
        return await self.db.read(
            lambda db: fetch_jobs(
                db,
                f"SELECT * FROM jobs WHERE delivered_at IS NULL AND {IS_TERMINAL}"
                " ORDER BY finished_at",
                [],
            )
        )

    async def requeue_expired(self) -> list[int]:
        """Return to the queue jobs whose worker died; claims do this too."""
        return await self.db.write(lambda db: requeue_expired(db, now=time.time()))

    # --- a worker's side ---

    async def register_worker(self, worker_id: str, *, model: str | None) -> None:
        await self.db.write(
            lambda db: register_worker(
                db,
                worker_id,
                pid=os.getpid(),
                host=socket.gethostname(),
                model=model,
                now=time.time(),
            )
        )

    async def worker_seen(self, worker_id: str) -> None:
        await self.db.write(lambda db: worker_seen(db, worker_id, now=time.time()))

    async def worker_stopped(self, worker_id: str) -> None:
        await self.db.write(lambda db: worker_stopped(db, worker_id, now=time.time()))

    async def claim(
        self,
        worker_id: str,
        *,
        lease_seconds: float,
        can_run: Callable[[Job], bool] | None = None,
        then: Callable[[sqlite_utils.Database, Job], None] | None = None,
    ) -> Job | None:
        """Start the next job in the fair order, leased to ``worker_id``; None if none may start.

        ``can_run`` limits the choice to the jobs a worker can run (its models and sizes);
        ``then`` records something with the claimed job in the claim's own transaction.
        """

        def claim(db: sqlite_utils.Database) -> Job | None:
            job = claim_next(
                db,
                worker_id=worker_id,
                lease_seconds=lease_seconds,
                server_running_limit=server_running_limit(db, self.default_limits),
                now=time.time(),
                can_run=can_run,
            )
            if job is not None and then is not None:
                then(db, job)
            return job

        return await self.db.write(claim)

    async def heartbeat(self, job_id: int, worker_id: str, *, lease_seconds: float) -> LeaseState:
        """Renew the lease; tells the worker whether to go on, stop (cancelled) or give up."""
        return await self.db.write(
            lambda db: renew(db, job_id, worker_id, lease_seconds=lease_seconds, now=time.time())
        )

    async def report_progress(
        self,
        job_id: int,
        worker_id: str,
        *,
        lease_seconds: float,
        stage: Stage | None = None,
        step: int | None = None,
        total_steps: int | None = None,
        rewritten_prompt: str | None = None,
        rewrite_note: str | None = None,
    ) -> LeaseState:
        """Record a stage, a step or the rewritten prompt (also renews the lease)."""
        values = progress_values(
            stage=stage,
            step=step,
            total_steps=total_steps,
            rewritten_prompt=rewritten_prompt,
            rewrite_note=rewrite_note,
        )
        return await self.db.write(
            lambda db: update_running(
                db, job_id, worker_id, values, lease_seconds=lease_seconds, now=time.time()
            )
        )

    async def complete(
        self,
        job_id: int,
        worker_id: str,
        result: JobResult,
        *,
        publish: Callable[[], None] | None = None,
    ) -> bool:
        """Mark a job done; False (and nothing changed) if this worker no longer holds it.

        ``publish`` runs inside the same transaction once ownership is confirmed (the worker
        moves its finished file into place there): if it raises, the job stays as it was.
        """

        def complete(db: sqlite_utils.Database) -> bool:
            owned = finish(
                db, job_id, worker_id, JobStatus.DONE, result_values(result), now=time.time()
            )
            if owned and publish is not None:
                publish()
            return owned

        return await self.db.write(complete)

    async def fail(self, job_id: int, worker_id: str, *, error: str, error_detail: str) -> bool:
        """Fail a job with a sentence for its user and the detail for the log."""
        values = {"error": error, "error_detail": error_detail}
        return await self.db.write(
            lambda db: finish(db, job_id, worker_id, JobStatus.FAILED, values, now=time.time())
        )

    async def mark_cancelled(self, job_id: int, worker_id: str) -> bool:
        """Record that a worker stopped a job whose cancellation was requested."""
        return await self.db.write(
            lambda db: finish(db, job_id, worker_id, JobStatus.CANCELLED, {}, now=time.time())
        )

    async def abandon(self, job_id: int, worker_id: str, *, detail: str) -> bool:
        """Give up a job whose worker stopped answering (a remote host that died): it waits
        for another worker, this attempt counted, or fails once it has had them all."""
        return await self.db.write(
            lambda db: give_up(db, job_id, worker_id, detail, now=time.time())
        )

    async def release(self, job_id: int, worker_id: str, *, reason: str) -> bool:
        """Give a job back to the queue unfinished (the worker is shutting down)."""

        def release(db: sqlite_utils.Database) -> bool:
            # Shutting down is not the job's fault: the attempt is not counted.
            values = {**back_in_queue(reason), "attempts": _attempts(db, job_id) - 1}
            return update_job(
                db,
                job_id,
                values,
                now=time.time(),
                only_if=OWNED,
                only_if_params={"worker_id": worker_id},
            )

        return await self.db.write(release)


def _existing(db: sqlite_utils.Database, idempotency_key: str | None) -> Job | None:
    """The job already added under ``idempotency_key``, if any."""
    if idempotency_key is None:
        return None
    found = fetch_jobs(db, "SELECT * FROM jobs WHERE idempotency_key = ?", [idempotency_key])
    return found[0] if found else None


def _record_ended(
    db: sqlite_utils.Database,
    row: Mapping[str, Any],
    finish: Callable[[sqlite_utils.Database, Job], Mapping[str, Any]],
) -> Job:
    """Insert ``row`` unless its idempotency key is taken (the first job is returned), with
    the columns ``finish`` gives for the new job, in the caller's transaction."""
    job = _existing(db, row["idempotency_key"])
    if job is not None:
        return job
    job = _insert(db, row)
    update_job(db, job.id, finish(db, job), now=row["finished_at"])
    ended = fetch_job(db, job.id)
    assert ended is not None
    return ended


def _insert(db: sqlite_utils.Database, row: Mapping[str, Any]) -> Job:
    cursor = db.execute(
        f"INSERT INTO jobs ({', '.join(row)}, version)"
        f" VALUES ({', '.join(':' + column for column in row)}, :version)",
        {**row, "version": next_version(db)},
    )
    job = fetch_job(db, int(cursor.lastrowid or 0))
    assert job is not None
    return job


def _attempts(db: sqlite_utils.Database, job_id: int) -> int:
    row = db.execute("SELECT attempts FROM jobs WHERE id = ?", [job_id]).fetchone()
    return int(row[0]) if row else 0


def _cancel(db: sqlite_utils.Database, job_id: int, *, by_user_id: int, is_moderator: bool) -> Job:
    job = fetch_job(db, job_id)
    if job is None:
        raise JobNotFound(f"There is no clip #{job_id}.")
    if job.user_id != by_user_id and not is_moderator:
        raise NotAllowed("Only the person who asked for this clip, or a moderator, can cancel it.")
    if job.status is JobStatus.CANCELLED:
        return job
    if job.status.is_terminal:
        raise QueueError(f"Clip #{job_id} has already finished; there is nothing to cancel.")
    who = "its owner" if job.user_id == by_user_id else "a moderator"
    now = time.time()
    if job.status is JobStatus.QUEUED:
        values: dict[str, Any] = {
            "status": JobStatus.CANCELLED.value,
            "finished_at": now,
            "error": f"Cancelled by {who}.",
        }
    else:
        values = {"cancel_requested": 1, "error": f"Cancelled by {who}."}
    update_job(db, job_id, values, now=now)
    cancelled = fetch_job(db, job_id)
    assert cancelled is not None
    return cancelled


def _clear(db: sqlite_utils.Database, user_id: int | None) -> int:
    sql = f"SELECT id FROM jobs WHERE {IS_QUEUED}"
    params: list[Any] = []
    if user_id is not None:
        sql += " AND user_id = ?"
        params.append(user_id)
    ids = [row[0] for row in db.execute(sql, params).fetchall()]
    now = time.time()
    for job_id in ids:
        update_job(
            db,
            job_id,
            {
                "status": JobStatus.CANCELLED.value,
                "finished_at": now,
                "error": "Cancelled: a moderator cleared the queue.",
            },
            now=now,
        )
    return len(ids)


def _position(db: sqlite_utils.Database, job_id: int) -> QueuePosition | None:
    job = fetch_job(db, job_id)
    if job is None or job.status is not JobStatus.QUEUED:
        return None
    now = time.time()
    ahead = jobs_ahead(db, job)
    waiting_total = count_in_status(db, JobStatus.QUEUED)
    running_started = [
        row[0] for row in db.execute(f"SELECT started_at FROM jobs WHERE {IS_RUNNING}").fetchall()
    ]
    key = db.execute("SELECT request_key FROM jobs WHERE id = ?", [job_id]).fetchone()[0]
    eta = eta_seconds(
        own=estimate_seconds(db, key),
        typical=typical_seconds(db),
        jobs_ahead=ahead,
        running_elapsed=[now - started for started in running_started if started is not None],
        workers=len(live_workers(db, now=now)),
    )
    return QueuePosition(position=ahead + 1, waiting_total=int(waiting_total), eta_seconds=eta)


def _stats(db: sqlite_utils.Database) -> QueueStats:
    now = time.time()
    midnight = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
    today = dict(
        db.execute(
            "SELECT status, COUNT(*) FROM jobs WHERE finished_at >= ? GROUP BY status",
            [midnight.timestamp()],
        ).fetchall()
    )
    return QueueStats(
        waiting=count_in_status(db, JobStatus.QUEUED),
        running=count_in_status(db, JobStatus.RUNNING),
        done_today=today.get(JobStatus.DONE, 0),
        failed_today=today.get(JobStatus.FAILED, 0),
        cancelled_today=today.get(JobStatus.CANCELLED, 0),
        avg_seconds=_recent_average(db),
        paused=is_paused(db),
        workers=live_workers(db, now=now),
    )


def _recent_average(db: sqlite_utils.Database) -> float | None:
    row = db.execute(
        f"SELECT AVG(run_seconds) FROM (SELECT run_seconds FROM jobs WHERE {IS_DONE}"
        " AND run_seconds IS NOT NULL ORDER BY finished_at DESC LIMIT ?)",
        [RECENT_AVERAGE_JOBS],
    ).fetchone()
    return None if row[0] is None else float(row[0])


async def _run_off_loop(fn: Callable[[], Any]) -> Any:
    import asyncio

    return await asyncio.get_running_loop().run_in_executor(None, fn)
