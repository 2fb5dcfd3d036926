"""The GPU worker: claims jobs one at a time and turns each into a clip.

``python -m jobqueue`` and ``reelbot worker`` run one; ``jobqueue.supervisor`` runs several
beside the bot. The models load once, before the first claim. Each job runs under a lease
kept alive by :class:`~jobqueue.progress.JobTracker`; a worker that dies simply stops
renewing it, and the queue gives the job to another worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import traceback
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

from jobqueue.clipmaker import ClipMaker, JobFailed, MadeClip, ModelChoice
from jobqueue.jobs import JobQueue, QueueLimits
from jobqueue.models import Job
from jobqueue.moderation import Moderation
from jobqueue.progress import JobTracker
from jobqueue.screening import ModerationScreen
from jobqueue.settings import MIB, CoreSettings
from pipeline.generator import GenerationCancelled
from pipeline.rewrite import RewriterConfig, build_rewriter

log = logging.getLogger(__name__)

UNEXPECTED_FAILURE = (
    "Something went wrong while making this clip; the server's owner can find the details"
    " in the worker's log."
)
SEEN_EVERY_S = 10.0
"""How often an idle worker tells the queue it is alive (for /queue stats)."""


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs, as plain values (see :meth:`from_settings`)."""

    clips_dir: Path
    models: ModelChoice
    rewriter: RewriterConfig = field(default_factory=lambda: RewriterConfig(backend="off"))
    max_upload_bytes: int = 10 * MIB
    limits: QueueLimits = field(default_factory=QueueLimits)
    max_attempts: int = 3
    lease_seconds: float = 60.0
    progress_interval_s: float = 2.0
    poll_interval_s: float = 1.0

    @classmethod
    def from_settings(cls, settings: CoreSettings) -> WorkerConfig:
        return cls(
            clips_dir=settings.clips_dir,
            models=ModelChoice(
                models_dir=settings.models_dir,
                t2v_model=settings.model,
                i2v_model=settings.i2v_model,
                device=settings.device,
                cpu_offload=settings.cpu_offload,
            ),
            rewriter=settings.rewriter_config(),
            max_upload_bytes=settings.max_upload_bytes,
            limits=QueueLimits(
                max_waiting_per_user=settings.max_waiting_per_user,
                max_running_per_user=settings.max_running_per_user,
                max_daily_per_user=settings.max_daily_per_user,
                max_queue=settings.max_queue,
            ),
            max_attempts=settings.max_attempts,
            lease_seconds=settings.lease_seconds,
        )


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Worker:
    """Runs jobs from the queue at ``database_path`` until stopped (or drained, in burst mode)."""

    def __init__(
        self, database_path: Path, *, config: WorkerConfig, worker_id: str | None = None
    ) -> None:
        self.database_path = database_path
        self.config = config
        self.worker_id = worker_id or default_worker_id()
        self.jobs_run = 0
        self._stopping = asyncio.Event()
        self._tracker: JobTracker | None = None

    def stop(self) -> None:
        """Stop soon: a running job is stopped at its next step and goes back to the queue."""
        log.info("worker %s stopping", self.worker_id)
        self._stopping.set()
        if self._tracker is not None:
            self._tracker.stop()

    async def run(self, *, burst: bool = False) -> None:
        """Take jobs until :meth:`stop`; with ``burst``, return once none is left to start."""
        queue = await JobQueue.open(
            self.database_path, limits=self.config.limits, max_attempts=self.config.max_attempts
        )
        maker: ClipMaker | None = None
        try:
            maker = self._clip_maker(queue)
            await maker.warm_up()
            await queue.register_worker(self.worker_id, model=self.config.models.t2v_model)
            log.info("worker %s waiting for jobs in %s", self.worker_id, self.database_path)
            await self._loop(queue, maker, burst=burst)
        finally:
            await _quietly(queue.worker_stopped(self.worker_id), "record that the worker stopped")
            if maker is not None:
                await maker.aclose()
            await queue.close()

    def _clip_maker(self, queue: JobQueue) -> ClipMaker:
        return ClipMaker(
            self.config.models,
            rewriter=build_rewriter(self.config.rewriter),
            screen=ModerationScreen(Moderation(queue.db)),
            clips_dir=self.config.clips_dir,
            max_upload_bytes=self.config.max_upload_bytes,
        )

    async def _loop(self, queue: JobQueue, maker: ClipMaker, *, burst: bool) -> None:
        last_seen = time.monotonic()
        while not self._stopping.is_set():
            job = await queue.claim(self.worker_id, lease_seconds=self.config.lease_seconds)
            if job is not None:
                try:
                    await self._process(queue, maker, job)
                except Exception:
                    # The queue could not record the outcome; the lease runs out and the
                    # job is tried again by the next claim.
                    log.exception("job %d: could not record its outcome", job.id)
                self.jobs_run += 1
                continue
            if burst:
                return
            if time.monotonic() - last_seen >= SEEN_EVERY_S:
                await queue.worker_seen(self.worker_id)
                last_seen = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.config.poll_interval_s)

    async def _process(self, queue: JobQueue, maker: ClipMaker, job: Job) -> None:
        log.info(
            "job %d (%s, user %d, attempt %d) started", job.id, job.kind, job.user_id, job.attempts
        )
        parent = await queue.get(job.parent_id) if job.parent_id is not None else None
        async with JobTracker(
            queue,
            job.id,
            self.worker_id,
            lease_seconds=self.config.lease_seconds,
            progress_interval_s=self.config.progress_interval_s,
        ) as tracker:
            self._tracker = tracker
            if self._stopping.is_set():
                tracker.stop()
            try:
                made = await maker.make(job, tracker, parent=parent, worker_id=self.worker_id)
            except GenerationCancelled:
                await self._after_stop(queue, job, tracker)
                return
            except JobFailed as failure:
                log.info("job %d failed: %s (%s)", job.id, failure.sentence, failure.detail)
                await queue.fail(
                    job.id, self.worker_id, error=failure.sentence, error_detail=failure.detail
                )
                return
            except Exception:
                log.exception("job %d failed unexpectedly", job.id)
                await queue.fail(
                    job.id,
                    self.worker_id,
                    error=UNEXPECTED_FAILURE,
                    error_detail=traceback.format_exc(limit=20),
                )
                return
            finally:
                self._tracker = None
            await self._deliver(queue, job, tracker, made)

    async def _deliver(
        self, queue: JobQueue, job: Job, tracker: JobTracker, made: MadeClip
    ) -> None:
        if tracker.cancel_requested or tracker.lease_lost:
            made.discard()
            await self._after_stop(queue, job, tracker)
            return
        if await queue.complete(job.id, self.worker_id, made.result, publish=made.publish):
            log.info("job %d done: %s", job.id, made.result.result_path)
        else:
            log.warning("job %d finished after its lease was lost; the clip is discarded", job.id)
            made.discard()

    async def _after_stop(self, queue: JobQueue, job: Job, tracker: JobTracker) -> None:
        if tracker.lease_lost:
            log.info("job %d abandoned: its lease was lost", job.id)
        elif tracker.cancel_requested:
            await queue.mark_cancelled(job.id, self.worker_id)
            log.info("job %d cancelled", job.id)
        else:
            await queue.release(job.id, self.worker_id, reason=f"worker {self.worker_id} stopped")
            log.info("job %d returned to the queue: the worker is stopping", job.id)


async def _quietly(awaitable: Awaitable[None], what: str) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("could not %s", what)
