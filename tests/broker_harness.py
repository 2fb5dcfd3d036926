"""Workers on "other hosts" for tests: the bot host's dispatcher and remote workers that share
nothing with it but a real Redis.

End-to-end bot tests run in either mode (``reel_mode``): ``single-host`` gives
``Reel.worker_running()`` a worker on the bot's SQLite file, ``broker`` a dispatcher beside the
bot and an in-process remote worker with its own data folder. ``start_remote_worker`` runs a
real ``reelbot worker --broker`` process instead (kill -9 needs one).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from jobqueue.broker.dispatcher import DispatchConfig, Dispatcher
from jobqueue.broker.remote_worker import RemoteConfig, RemoteWorker
from jobqueue.broker.routing import Capability
from jobqueue.jobs import JobQueue
from jobqueue.moderation import Moderation
from jobqueue.worker import WorkerConfig
from pipeline.clip import ModelChoice

SINGLE_HOST = "single-host"
BROKER = "broker"
BOTH_MODES = [SINGLE_HOST, BROKER]
TINY_MODELS = ("tiny", "tiny-i2v", "tiny-flf2v")
MAX_TRANSFER_BYTES = 64 * 2**20
STOP_TIMEOUT_S = 120.0


def tiny_models(models_dir: Path) -> ModelChoice:
    return ModelChoice(
        models_dir=models_dir,
        t2v_model="tiny",
        i2v_model="tiny-i2v",
        end_frame_model="tiny-flf2v",
        device="cpu",
    )


def dispatch_config(
    clips_dir: Path, models_dir: Path, *, lease_seconds: float, unserved_wait_s: float = 1800.0
) -> DispatchConfig:
    """The bot host's dispatcher, polling fast."""
    return DispatchConfig(
        clips_dir=clips_dir,
        models=tiny_models(models_dir),
        lease_seconds=lease_seconds,
        progress_interval_s=0.2,
        poll_interval_s=0.02,
        unserved_wait_s=unserved_wait_s,
    )


def worker_data_dir(folder: Path, models_dir: Path) -> Path:
    """A remote host's own data folder: nothing of the bot's, only the tiny models."""
    folder.mkdir(parents=True, exist_ok=True)
    models = folder / "models"
    if not models.exists():
        models.symlink_to(models_dir.resolve(), target_is_directory=True)
    return folder


@contextlib.asynccontextmanager
async def remote_capacity(
    queue: JobQueue,
    moderation: Moderation,
    broker_url: str,
    config: WorkerConfig,
    *,
    worker_id: str,
    worker_dir: Path,
) -> AsyncIterator[RemoteWorker]:
    """The dispatcher on the bot's side and one remote worker in this process (its own data
    folder ``worker_dir``) until the block ends; the worker stops first, handing back its job."""
    models_dir = config.models.models_dir
    own = worker_data_dir(worker_dir, models_dir)
    worker = RemoteWorker(
        broker_url,
        config=RemoteConfig(
            dataclasses.replace(config, clips_dir=own / "clips"),
            Capability.serving(TINY_MODELS),
            MAX_TRANSFER_BYTES,
        ),
        worker_id=worker_id,
    )
    dispatcher_config = dataclasses.replace(
        dispatch_config(config.clips_dir, models_dir, lease_seconds=config.lease_seconds),
        signing=config.signing,  # the bot's host signs what it makes there: films
        storyboard_crossfade_s=config.storyboard_crossfade_s,  # and joins them
    )
    async with Dispatcher(queue, broker_url, config=dispatcher_config, moderation=moderation):
        task = asyncio.create_task(worker.run())
        try:
            yield worker
        finally:
            worker.stop()
            await asyncio.wait_for(task, STOP_TIMEOUT_S)


def remote_worker_env(data_dir: Path, *, lease_seconds: float, **extra: str) -> dict[str, str]:
    """A ``reelbot worker --broker`` host's environment: its own data folder, tiny models."""
    return {
        **os.environ,
        "REELBOT_DATA_DIR": str(data_dir),
        "REELBOT_MODEL": "tiny",
        "REELBOT_I2V_MODEL": "tiny-i2v",
        "REELBOT_END_FRAME_MODEL": "tiny-flf2v",
        "REELBOT_DEVICE": "cpu",
        "REELBOT_REWRITER": "off",
        "REELBOT_LEASE_SECONDS": str(lease_seconds),
        **extra,
    }


def start_remote_worker(
    broker_url: str, worker_id: str, data_dir: Path, *, lease_seconds: float, **extra: str
) -> subprocess.Popen[bytes]:
    """``reelbot worker --broker URL`` as a process of its own, in its own folder."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot.cli",
            "worker",
            "--broker",
            broker_url,
            "--worker-id",
            worker_id,
        ],
        env=remote_worker_env(data_dir, lease_seconds=lease_seconds, **extra),
        cwd=data_dir,
    )
