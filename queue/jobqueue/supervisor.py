"""Worker processes beside the bot: start them, restart one that dies, stop them cleanly.

``reelbot run`` uses it::

    async with WorkerSupervisor(settings) as supervisor:
        await bot.start(...)

Each worker is a ``python -m jobqueue`` child process with the parent's settings passed in
its environment. With ``REELBOT_WORKERS=0`` there is one worker per visible GPU, each pinned
to its GPU with ``CUDA_VISIBLE_DEVICES``, or one worker when there is no GPU. Beside them
run ``REELBOT_REWRITERS`` scene writers (``python -m jobqueue.scene_cli``; none when prompts
are not rewritten), supervised the same way. A worker that exits unexpectedly is started
again after a delay that doubles while it keeps failing quickly. Stopping sends SIGTERM (a
worker stops its job at the next step and puts it back in the queue), then SIGKILL after
``stop_timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType

from jobqueue.settings import CoreSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestartPolicy:
    first_delay_s: float = 1.0
    max_delay_s: float = 60.0
    healthy_after_s: float = 60.0
    """A worker that ran this long before dying is restarted after ``first_delay_s`` again."""


@dataclass
class SupervisedWorker:
    """One worker slot: the process now in it, and how often it has been started."""

    name: str
    env: Mapping[str, str]
    command: tuple[str, ...]
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    exit_codes: list[int] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def wait_started(self, starts: int) -> None:
        """Wait until this slot's process has been started ``starts`` times."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.starts >= starts and self.running)

    async def notify(self) -> None:
        """Wake :meth:`wait_started` callers (the supervisor calls it on each start and exit)."""
        async with self._changed:
            self._changed.notify_all()


class WorkerSupervisor:
    def __init__(
        self,
        settings: CoreSettings,
        *,
        count: int | None = None,
        policy: RestartPolicy | None = None,
        stop_timeout_s: float = 30.0,
    ) -> None:
        self._settings = settings
        self._policy = policy or RestartPolicy()
        self._stop_timeout_s = stop_timeout_s
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        base_env = {**os.environ, **settings_environment(settings)}
        self.workers = [
            SupervisedWorker(
                name=f"worker-{index}", env={**base_env, **extra}, command=worker_command(settings)
            )
            for index, extra in enumerate(worker_environments(settings, count))
        ]
        self.scene_writers = [
            SupervisedWorker(
                name=f"scene-writer-{index}", env=base_env, command=scene_writer_command(settings)
            )
            for index in range(scene_writer_count(settings))
        ]

    async def __aenter__(self) -> WorkerSupervisor:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        log.info(
            "starting %d worker process(es) and %d scene writer(s)",
            len(self.workers),
            len(self.scene_writers),
        )
        for worker in self._processes():
            await self._spawn(worker)
            self._tasks.append(asyncio.create_task(self._watch(worker), name=worker.name))

    async def stop(self) -> None:
        """SIGTERM every worker, wait for them to put their jobs back, SIGKILL stragglers."""
        self._stopping.set()
        for worker in self._processes():
            if worker.running and worker.process is not None:
                worker.process.send_signal(signal.SIGTERM)
        await asyncio.gather(*(self._reap(worker) for worker in self._processes()))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def _processes(self) -> list[SupervisedWorker]:
        return [*self.workers, *self.scene_writers]

    async def _reap(self, worker: SupervisedWorker) -> None:
        process = worker.process
        if process is None or process.returncode is not None:
            return
        try:
            await asyncio.wait_for(process.wait(), timeout=self._stop_timeout_s)
        except TimeoutError:
            log.warning(
                "%s did not stop within %.0f s; killing it", worker.name, self._stop_timeout_s
            )
            process.kill()
            await process.wait()

    async def _spawn(self, worker: SupervisedWorker) -> None:
        worker.process = await asyncio.create_subprocess_exec(*worker.command, env=dict(worker.env))
        worker.starts += 1
        log.info("%s started (pid %d)", worker.name, worker.process.pid)
        await worker.notify()

    async def _watch(self, worker: SupervisedWorker) -> None:
        failures = 0
        while True:
            assert worker.process is not None
            started = time.monotonic()
            code = await worker.process.wait()
            worker.exit_codes.append(code)
            await worker.notify()
            if self._stopping.is_set():
                return
            failures = 0 if time.monotonic() - started >= self._policy.healthy_after_s else failures
            delay = min(self._policy.max_delay_s, self._policy.first_delay_s * 2**failures)
            failures += 1
            log.warning("%s exited with code %d; restarting in %.1f s", worker.name, code, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
            if self._stopping.is_set():
                return
            await self._spawn(worker)


def worker_command(settings: CoreSettings) -> tuple[str, ...]:
    return (sys.executable, "-m", "jobqueue", "--database", str(settings.database_path))


def scene_writer_command(settings: CoreSettings) -> tuple[str, ...]:
    database = str(settings.database_path)
    return (sys.executable, "-m", "jobqueue.scene_cli", "--database", database)


def scene_writer_count(settings: CoreSettings) -> int:
    """``REELBOT_REWRITERS``, or none when prompts are not rewritten."""
    return 0 if settings.rewriter == "off" else settings.rewriters


def settings_environment(settings: CoreSettings) -> dict[str, str]:
    """The worker's settings as ``REELBOT_*`` variables, so a child sees what the parent sees."""
    env: dict[str, str] = {}
    for name in CoreSettings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, list | tuple):
            value = ",".join(str(item) for item in value)
        env[f"REELBOT_{name.upper()}"] = str(value)
    return env


def worker_environments(settings: CoreSettings, count: int | None) -> list[dict[str, str]]:
    """Extra environment per worker: how many workers, and which GPU each one uses."""
    wanted = count if count is not None else settings.workers
    if wanted > 0:
        return [{} for _ in range(wanted)]
    gpus = visible_gpus() if settings.device in ("auto", "cuda") else []
    if not gpus:
        return [{}]
    return [{"CUDA_VISIBLE_DEVICES": gpu} for gpu in gpus]


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries (without torch)."""
    restricted = os.environ.get("CUDA_VISIBLE_DEVICES")
    if restricted is not None:
        return [gpu.strip() for gpu in restricted.split(",") if gpu.strip() not in ("", "-1")]
    nvidia_smi = shutil.which("nvidia-smi")
    if nvidia_smi is None:
        return []
    try:
        listing = subprocess.run(
            [nvidia_smi, "-L"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        log.warning("nvidia-smi failed; starting one worker", exc_info=True)
        return []
    return [
        str(index) for index, line in enumerate(listing.splitlines()) if line.startswith("GPU ")
    ]
