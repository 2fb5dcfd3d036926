"""A running job's link to the queue: heartbeats, throttled progress, cancel and lost flags.

The pipeline reports stages with :meth:`JobTracker.stage_changed` and, from the generating
thread, steps with :meth:`JobTracker.step` (thread-safe, never blocks); one asyncio task owns
every write for the job, so progress reaches the database in order. It writes a changed stage
at once, steps at most every ``progress_interval_s``, and renews the lease every
``lease_seconds / 3`` seconds even when nothing moves. Each answer from the queue tells whether
the job's cancellation was requested or its lease was lost (another worker took it over);
:meth:`should_stop` lets the generator stop at its next step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from jobqueue.leases import LeaseState
from jobqueue.models import Stage
from pipeline.clip import StageChange

log = logging.getLogger(__name__)


class LeaseKeeper(Protocol):
    """Where a job's heartbeats and progress go: the queue itself, or, on a worker behind the
    broker, the broker's job (:class:`~jobqueue.broker.remote_worker.BrokerLease`)."""

    async def heartbeat(self, job_id: int, worker_id: str, *, lease_seconds: float) -> LeaseState:
        ...

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
    ) -> LeaseState: ...


@dataclass(frozen=True)
class Progress:
    stage: Stage
    step: int = 0
    total_steps: int = 0


class JobTracker:
    """Use as ``async with JobTracker(...) as tracker:`` around one job's work."""

    def __init__(
        self,
        queue: LeaseKeeper,
        job_id: int,
        worker_id: str,
        *,
        lease_seconds: float,
        progress_interval_s: float,
    ) -> None:
        self._queue = queue
        self._job_id = job_id
        self._worker_id = worker_id
        self._lease_seconds = lease_seconds
        self._heartbeat_s = lease_seconds / 3
        self._progress_interval_s = progress_interval_s
        self._current = Progress(Stage.WAITING)
        self._written = self._current
        self._last_step_write = 0.0
        self._last_contact = time.monotonic()
        self._lock = threading.Lock()
        self._write_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[None] | None = None
        self._stop_requested = threading.Event()
        self.cancel_requested = False
        self.lease_lost = False

    async def __aenter__(self) -> JobTracker:
        self._task = asyncio.create_task(self._keep_lease(), name=f"lease-{self._job_id}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def should_stop(self) -> bool:
        """True once the job was cancelled, its lease lost, or :meth:`stop` called."""
        return self._stop_requested.is_set()

    def stop(self) -> None:
        """Ask the running generation to stop at its next step (the worker is shutting down)."""
        self._stop_requested.set()

    def step(self, step: int, total_steps: int) -> None:
        """Called from the generating thread after each denoising step."""
        with self._lock:
            self._current = Progress(self._current.stage, step, total_steps)
        self._loop.call_soon_threadsafe(self._wake.set)

    async def stage_changed(self, change: StageChange) -> None:
        """The pipeline entered a stage: write it now, with the prompt the model gets once
        that is settled."""
        with self._lock:
            self._current = Progress(Stage(change.stage), 0, change.total_steps)
        fields: dict[str, Any] = {}
        if change.prompt is not None:
            fields = {
                "rewritten_prompt": change.prompt.rewritten,
                "rewrite_note": change.prompt.note,
            }
        await self._write(fields)

    async def _keep_lease(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._next_wait())
            self._wake.clear()
            try:
                if self._step_write_due():
                    await self._write({})
                elif time.monotonic() - self._last_contact >= self._heartbeat_s:
                    async with self._write_lock:
                        self._note(
                            await self._queue.heartbeat(
                                self._job_id, self._worker_id, lease_seconds=self._lease_seconds
                            )
                        )
            except Exception:
                # A busy or briefly unavailable database must not end the job: the lease
                # has slack (three heartbeats), so try again after the usual interval.
                log.exception("heartbeat for job %d failed", self._job_id)
                self._last_contact = self._last_step_write = time.monotonic()

    def _next_wait(self) -> float:
        waits = [self._heartbeat_s - (time.monotonic() - self._last_contact)]
        if self._snapshot() != self._written:
            waits.append(self._progress_interval_s - (time.monotonic() - self._last_step_write))
        return max(0.0, min(waits))

    def _step_write_due(self) -> bool:
        current = self._snapshot()
        if current == self._written:
            return False
        return time.monotonic() - self._last_step_write >= self._progress_interval_s

    async def _write(self, fields: dict[str, Any]) -> None:
        async with self._write_lock:
            current = self._snapshot()
            state = await self._queue.report_progress(
                self._job_id,
                self._worker_id,
                lease_seconds=self._lease_seconds,
                stage=current.stage,
                step=current.step,
                total_steps=current.total_steps,
                **fields,
            )
            self._written = current
            self._last_step_write = time.monotonic()
            self._note(state)

    def _snapshot(self) -> Progress:
        with self._lock:
            return self._current

    def _note(self, state: LeaseState) -> None:
        self._last_contact = time.monotonic()
        if state is LeaseState.CANCEL_REQUESTED and not self.cancel_requested:
            log.info("job %d: cancellation requested", self._job_id)
            self.cancel_requested = True
            self._stop_requested.set()
        elif state is LeaseState.LOST and not self.lease_lost:
            log.warning("job %d: lease lost; another worker may have taken it", self._job_id)
            self.lease_lost = True
            self._stop_requested.set()
