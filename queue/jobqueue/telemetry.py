"""What the queue and its workers report for monitoring (/metrics and /healthz).

Workers record the GPU memory they hold after loading their models and after each job; the
web server reads counts, finished runs and deliveries from the shared database, so a
``reelbot web`` on the same data folder reports the same as the one inside ``reelbot run``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import sqlite_utils

from jobqueue.db import Database
from jobqueue.leases import live_workers
from jobqueue.models import Job, WorkerInfo
from jobqueue.sql import IS_DONE, IS_TERMINAL
from jobqueue.store import fetch_jobs, rows, write_state

log = logging.getLogger(__name__)

Mark = tuple[float, int]
"""A point in a stream of jobs: a time and, for jobs at the same time, a job id."""
BATCH = 500
HEALTH_KEY = "health_probe"


@dataclass(frozen=True)
class Delivered:
    """A clip the bot posted (not one it could not post): seconds from the job's end."""

    job_id: int
    delivered_at: float
    seconds: float


@dataclass(frozen=True)
class WorkerMemory:
    worker: WorkerInfo
    gpu_memory_bytes: int | None


def gpu_memory_in_use() -> int | None:
    """Bytes of GPU memory this process holds (PyTorch's allocator); None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    return int(torch.cuda.memory_reserved())


class Telemetry:
    """Monitoring reads and the workers' reports, on the shared database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def report_gpu_memory(self, worker_id: str) -> None:
        """Record the GPU memory this worker process holds now (nothing without a GPU)."""
        in_use = gpu_memory_in_use()
        if in_use is None:
            return
        await self.db.write(
            lambda db: db.execute(
                "UPDATE workers SET gpu_memory_bytes = ? WHERE worker_id = ?", [in_use, worker_id]
            )
        )

    async def jobs_by_status(self) -> dict[str, int]:
        return await self.db.read(
            lambda db: dict(db.execute("SELECT status, jobs FROM queue_counts").fetchall())
        )

    async def workers(self) -> list[WorkerMemory]:
        """The live workers, with the GPU memory each last reported."""
        return await self.db.read(_workers)

    async def finished_after(self, mark: Mark) -> list[Job]:
        """Jobs that ended after ``mark``, in the order they ended (at most a batch)."""
        return await self.db.read(
            lambda db: fetch_jobs(
                db,
                f"SELECT * FROM jobs WHERE {IS_TERMINAL} AND (finished_at, id) > (?, ?)"
                " ORDER BY finished_at, id LIMIT ?",
                [*mark, BATCH],
            )
        )

    async def delivered_after(self, mark: Mark) -> list[Delivered]:
        """Clips posted after ``mark``, in the order they were posted (at most a batch)."""
        found = await self.db.read(
            lambda db: rows(
                db,
                "SELECT id, delivered_at, delivered_at - finished_at AS seconds FROM jobs"
                f" WHERE delivered_at IS NOT NULL AND {IS_DONE} AND result_message_id > 0"
                " AND (delivered_at, id) > (?, ?) ORDER BY delivered_at, id LIMIT ?",
                [*mark, BATCH],
            )
        )
        return [Delivered(row["id"], row["delivered_at"], row["seconds"]) for row in found]

    async def probe_write(self) -> None:
        """Write one row: raises if the database cannot be written (disk full, read-only)."""
        now = time.time()
        await self.db.write(lambda db: write_state(db, HEALTH_KEY, repr(now)))


def _workers(db: sqlite_utils.Database) -> list[WorkerMemory]:
    memory = dict(db.execute("SELECT worker_id, gpu_memory_bytes FROM workers").fetchall())
    return [
        WorkerMemory(worker, memory.get(worker.worker_id))
        for worker in live_workers(db, now=time.time())
    ]
