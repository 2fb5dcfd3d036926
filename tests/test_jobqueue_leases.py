"""Leases: a dead worker's job runs again (up to a limit), a job never completes twice, and
two workers never claim the same job."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from jobqueue.jobs import JobQueue, LeaseState, QueueLimits
from jobqueue.models import JobKind, JobRequest, JobResult, JobStatus

LEASE = 2.0
EXPIRED = 0.0
"""A lease that has run out by the time anything else happens."""


@pytest.fixture
async def job_queue(tmp_path: Path) -> AsyncIterator[JobQueue]:
    queue = await JobQueue.open(tmp_path / "reelbot.db", max_attempts=2)
    yield queue
    await queue.close()


async def submit(queue: JobQueue, user_id: int = 1) -> int:
    job = await queue.submit(
        JobKind.CREATE, JobRequest(prompt="a kite"), user_id=user_id, guild_id=1, channel_id=2
    )
    return job.id


RESULT = JobResult(
    result_path="clip.mp4", width=8, height=8, frames=1, fps=8, seed=1, model="tiny", steps=1
)


async def test_a_dead_workers_job_runs_again_and_completes_once(job_queue: JobQueue) -> None:
    job_id = await submit(job_queue)
    dead = await job_queue.claim("dead", lease_seconds=EXPIRED)
    assert dead is not None

    again = await job_queue.claim("alive", lease_seconds=LEASE)
    assert again is not None
    assert (again.id, again.attempts, again.worker_id) == (job_id, 2, "alive")

    assert await job_queue.heartbeat(job_id, "dead", lease_seconds=LEASE) is LeaseState.LOST
    assert not await job_queue.complete(job_id, "dead", RESULT)
    assert await job_queue.complete(job_id, "alive", RESULT)
    assert not await job_queue.complete(job_id, "alive", RESULT)
    done = await job_queue.get(job_id)
    assert done is not None
    assert (done.status, done.worker_id) == (JobStatus.DONE, "alive")


async def test_a_job_fails_after_its_last_attempt(job_queue: JobQueue) -> None:
    job_id = await submit(job_queue)
    for worker in ("first", "second"):
        assert await job_queue.claim(worker, lease_seconds=EXPIRED) is not None
    assert await job_queue.requeue_expired() == [job_id]
    failed = await job_queue.get(job_id)
    assert failed is not None
    assert failed.status is JobStatus.FAILED
    assert failed.error == (
        "The worker stopped while making this clip, 2 times;"
        " try a shorter or smaller clip, or try again later."
    )
    assert failed.error_detail is not None


async def test_a_dead_workers_cancelled_job_stays_cancelled(job_queue: JobQueue) -> None:
    job_id = await submit(job_queue)
    await job_queue.claim("dead", lease_seconds=EXPIRED)
    await job_queue.cancel(job_id, by_user_id=1)
    assert await job_queue.claim("alive", lease_seconds=LEASE) is None
    cancelled = await job_queue.get(job_id)
    assert cancelled is not None
    assert cancelled.status is JobStatus.CANCELLED


async def test_a_released_job_keeps_its_attempts(job_queue: JobQueue) -> None:
    job_id = await submit(job_queue)
    await job_queue.claim("stopping", lease_seconds=LEASE)
    assert await job_queue.release(job_id, "stopping", reason="worker shut down")
    again = await job_queue.claim("next", lease_seconds=LEASE)
    assert again is not None
    assert (again.id, again.attempts) == (job_id, 1)


async def test_a_restart_loses_no_waiting_job(tmp_path: Path) -> None:
    path = tmp_path / "reelbot.db"
    queue = await JobQueue.open(path)
    submitted = [await submit(queue, user_id) for user_id in range(1, 6)]
    crashed = await queue.claim("crashed", lease_seconds=EXPIRED)
    await queue.close()

    reopened = await JobQueue.open(path)
    try:
        claimed = []
        while (job := await reopened.claim("after-restart", lease_seconds=LEASE)) is not None:
            claimed.append(job.id)
            assert await reopened.complete(job.id, "after-restart", RESULT)
    finally:
        await reopened.close()
    assert crashed is not None
    assert sorted(claimed) == submitted


def claim_until_empty(path: Path, worker_id: str) -> list[int]:
    """A worker process's loop with the model left out: claim, complete, repeat."""

    async def loop() -> list[int]:
        queue = await JobQueue.open(path)
        claimed: list[int] = []
        try:
            while (job := await queue.claim(worker_id, lease_seconds=LEASE)) is not None:
                claimed.append(job.id)
                assert await queue.complete(job.id, worker_id, RESULT)
        finally:
            await queue.close()
        return claimed

    return asyncio.run(loop())


async def test_two_worker_processes_never_claim_the_same_job(tmp_path: Path) -> None:
    path = tmp_path / "reelbot.db"
    queue = await JobQueue.open(path, limits=QueueLimits(max_queue=1000))
    await queue.set_limits(user_id=None, waiting=100, running=100, daily=None)
    submitted = [await submit(queue, user_id % 40) for user_id in range(300)]
    await queue.close()

    context = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        claimed = await asyncio.gather(
            loop.run_in_executor(pool, claim_until_empty, path, "w1"),
            loop.run_in_executor(pool, claim_until_empty, path, "w2"),
        )
    first, second = claimed
    assert set(first).isdisjoint(second)
    assert sorted(first + second) == submitted
