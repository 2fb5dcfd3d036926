"""Worker processes beside the bot: started, restarted when one dies, stopped cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from jobqueue.jobs import JobQueue
from jobqueue.models import JobKind, JobRequest, JobStatus
from jobqueue.settings import CoreSettings
from jobqueue.supervisor import (
    RestartPolicy,
    WorkerSupervisor,
    settings_environment,
    worker_environments,
)

WAIT_S = 300


@pytest.fixture
def settings(data_dir: Path) -> CoreSettings:
    return CoreSettings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        model="tiny",
        i2v_model="tiny-i2v",
        device="cpu",
        rewriter="off",
        lease_seconds=2.0,
    )


async def test_workers_run_jobs_restart_after_a_crash_and_stop_cleanly(
    settings: CoreSettings,
) -> None:
    queue = await JobQueue.open(settings.database_path)
    changes = queue.changes(poll_interval=0.05)
    try:
        async with WorkerSupervisor(
            settings, count=2, policy=RestartPolicy(first_delay_s=0.1), stop_timeout_s=60
        ) as supervisor:
            first, second = supervisor.workers
            await first.wait_started(1)
            crashed = first.pid
            assert crashed is not None
            os.kill(crashed, signal.SIGKILL)
            await asyncio.wait_for(first.wait_started(2), timeout=WAIT_S)
            assert first.pid != crashed
            assert first.exit_codes == [-signal.SIGKILL]

            jobs = [
                await queue.submit(
                    JobKind.CREATE,
                    JobRequest(prompt=f"clip {user_id}"),
                    user_id=user_id,
                    guild_id=1,
                    channel_id=2,
                )
                for user_id in (1, 2)
            ]
            done: set[int] = set()
            async with asyncio.timeout(WAIT_S):
                async for change in changes:
                    if change.status is JobStatus.DONE:
                        done.add(change.id)
                    if done == {job.id for job in jobs}:
                        break
    finally:
        await queue.close()
    assert first.exit_codes == [-signal.SIGKILL, 0]
    assert second.exit_codes == [0]
    assert not first.running
    assert not second.running


def test_children_get_the_parents_settings(
    settings: CoreSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in settings_environment(settings).items():
        monkeypatch.setenv(name, value)
    child = CoreSettings(_env_file=None)  # type: ignore[call-arg]
    assert child == settings


def test_one_worker_per_visible_gpu(
    settings: CoreSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,2")
    on_gpus = settings.model_copy(update={"device": "auto", "workers": 0})
    assert worker_environments(on_gpus, None) == [
        {"CUDA_VISIBLE_DEVICES": "0"},
        {"CUDA_VISIBLE_DEVICES": "2"},
    ]
    assert worker_environments(on_gpus.model_copy(update={"device": "cpu"}), None) == [{}]
    assert worker_environments(on_gpus.model_copy(update={"workers": 3}), None) == [{}, {}, {}]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert worker_environments(on_gpus, None) == [{}]
