"""kill -9 of a real worker process mid-job: the job runs again elsewhere, and only once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Protocol

import pytest

from jobqueue.jobs import JobQueue
from jobqueue.models import Job, JobKind, JobRequest, JobStatus, Stage

LEASE_SECONDS = "2"
WAIT_S = 300


class StartWorker(Protocol):
    def __call__(self, worker_id: str) -> subprocess.Popen[bytes]: ...


@pytest.fixture
def worker_env(data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "REELBOT_DATA_DIR": str(data_dir),
        "REELBOT_MODEL": "tiny",
        "REELBOT_I2V_MODEL": "tiny-i2v",
        "REELBOT_DEVICE": "cpu",
        "REELBOT_REWRITER": "off",
        "REELBOT_LEASE_SECONDS": LEASE_SECONDS,
    }


@pytest.fixture
def start_worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[StartWorker]:
    started: list[subprocess.Popen[bytes]] = []

    def start(worker_id: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "jobqueue", "--worker-id", worker_id],
            env=worker_env,
            cwd=tmp_path,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
async def job_queue(data_dir: Path) -> AsyncIterator[JobQueue]:
    queue = await JobQueue.open(data_dir / "reelbot.db")
    yield queue
    await queue.close()


async def submit(queue: JobQueue, user_id: int, prompt: str, *, frames: int, steps: int) -> Job:
    return await queue.submit(
        JobKind.CREATE,
        JobRequest(prompt=prompt, frames=frames, steps=steps),
        user_id=user_id,
        guild_id=1,
        channel_id=2,
    )


async def test_a_killed_workers_job_completes_exactly_once(
    job_queue: JobQueue, start_worker: StartWorker, data_dir: Path
) -> None:
    changes = job_queue.changes(poll_interval=0.05)
    # Long enough (seconds even on a fast CPU) to be killed while it generates.
    long_job = await submit(job_queue, 1, "a long pan across mountains", frames=33, steps=50)
    waiting = [
        await submit(job_queue, user_id, f"clip {user_id}", frames=9, steps=2) for user_id in (2, 3)
    ]
    all_ids = {long_job.id, *(job.id for job in waiting)}
    doomed = start_worker("doomed")

    async with asyncio.timeout(WAIT_S):
        async for change in changes:
            if change.id == long_job.id and change.stage is Stage.GENERATING:
                assert change.worker_id == "doomed"
                break
    doomed.send_signal(signal.SIGKILL)
    assert doomed.wait() == -signal.SIGKILL

    survivor = start_worker("survivor")
    done_events: list[int] = []
    async with asyncio.timeout(WAIT_S):
        async for change in changes:
            if change.status is JobStatus.DONE:
                done_events.append(change.id)
            if all_ids <= set(done_events):
                break
    survivor.send_signal(signal.SIGTERM)
    assert survivor.wait(timeout=60) == 0

    assert sorted(done_events) == sorted(all_ids)
    finished = await job_queue.get(long_job.id)
    assert finished is not None
    assert (finished.status, finished.attempts, finished.worker_id) == (
        JobStatus.DONE,
        2,
        "survivor",
    )
    assert (data_dir / "clips" / f"{long_job.id}.mp4").exists()
