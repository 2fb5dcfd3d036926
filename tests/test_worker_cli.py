"""``reelbot worker`` makes the clips of jobs another process submitted."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from jobqueue.jobs import JobQueue
from jobqueue.models import JobKind, JobRequest, JobStatus


async def submit(database: Path, prompt: str) -> int:
    queue = await JobQueue.open(database)
    try:
        job = await queue.submit(
            JobKind.CREATE, JobRequest(prompt=prompt), user_id=5, guild_id=1, channel_id=2
        )
        return job.id
    finally:
        await queue.close()


async def status_of(database: Path, job_id: int) -> JobStatus:
    queue = await JobQueue.open(database)
    try:
        job = await queue.get(job_id)
        assert job is not None
        return job.status
    finally:
        await queue.close()


def test_reelbot_worker_burst_drains_the_queue(tmp_path: Path, data_dir: Path) -> None:
    database = tmp_path / "elsewhere.db"
    job_id = asyncio.run(submit(database, "a lighthouse at night"))

    env = {**os.environ, "REELBOT_DATA_DIR": str(data_dir), "REELBOT_REWRITER": "off"}
    command = ["worker", "--burst", "--model", "tiny", "--database", str(database)]
    finished = subprocess.run(
        [sys.executable, "-m", "bot.cli", *command],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    assert asyncio.run(status_of(database, job_id)) is JobStatus.DONE
    assert (data_dir / "clips" / f"{job_id}.mp4").exists()
