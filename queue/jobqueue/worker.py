"""The GPU worker: claims jobs one at a time and turns each into a clip.

``python -m jobqueue`` and ``reelbot worker`` run one; ``jobqueue.supervisor`` runs several
beside the bot. The models load once, before the first claim. Like a saq or arq worker
calling its registered function, the worker claims a job, runs the one pipeline call
(:meth:`pipeline.clip.ClipMaker.make_clip`, asked in the job's terms by
:mod:`jobqueue.clipjob`) and records the outcome: done, failed, cancelled or back in the
queue. A job whose scene a scene writer wrote while it waited skips the rewrite
(:func:`jobqueue.scenes.scene_for_worker`). Each job runs under a lease kept alive by
:class:`~jobqueue.progress.JobTracker`, which also carries the pipeline's progress to the
queue; a worker that dies simply stops renewing it, and the queue gives the job to another
worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from jobqueue.clipfiles import partial_clip_path
from jobqueue.clipjob import (
    clip_to_extend,
    discard,
    job_model,
    job_result,
    publish,
    start_image,
)
from jobqueue.jobs import JobQueue, QueueLimits
from jobqueue.models import Job
from jobqueue.moderation import Moderation
from jobqueue.progress import JobTracker
from jobqueue.safety import OutputGuard, SafetyPolicy
from jobqueue.scenes import Scenes, scene_for_worker
from jobqueue.screening import ModerationScreen
from jobqueue.settings import MIB, CoreSettings
from jobqueue.telemetry import Telemetry
from pipeline.clip import ClipMaker, ClipStage, MadeClip, ModelChoice, StageChange
from pipeline.errors import ClipFailed, GenerationCancelled
from pipeline.provenance import SigningIdentity
from pipeline.rewrite import PromptRewriter, RewriterConfig, build_rewriter
from pipeline.safety import SafetyConfig

log = logging.getLogger(__name__)

UNEXPECTED_FAILURE = (
    "Something went wrong while making this clip; the server's owner can find the details"
    " in the worker's log."
)
SEEN_EVERY_S = 10.0
"""How often an idle worker tells the queue it is alive (for /queue stats)."""
SCENE_WAIT_MARGIN_S = 30.0
"""How much longer than one rewrite may take a job waits for a scene writer."""

JobRunner = Callable[[Job, JobTracker, Path], Awaitable[MadeClip]]
"""One job's clip, encoded at the given path until it is published."""


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
    safety: SafetyConfig | None = None
    """The output safety check every clip goes through before it is done; None: no check
    (``from_settings`` always sets one)."""
    safety_policy: SafetyPolicy = field(default_factory=SafetyPolicy)
    """Servers' policy where they have not set their own."""
    signing: SigningIdentity | None = None
    """The key that signs each clip's content credentials; None: clips go unsigned."""
    rewriter_at_start: bool = True
    """Load the rewriter before taking jobs. False where scene writers run (REELBOT_REWRITERS):
    the worker loads it only for a job whose scene it must write itself."""
    scene_wait_s: float = 90.0
    """The longest a job waits for a scene writer's scene before its worker writes it."""

    @classmethod
    def from_settings(cls, settings: CoreSettings) -> WorkerConfig:
        return cls(
            clips_dir=settings.clips_dir,
            models=settings.model_choice(),
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
            safety=settings.safety_config(),
            safety_policy=settings.safety_policy(),
            signing=settings.signing_identity(),
            rewriter_at_start=settings.rewriters == 0,
            scene_wait_s=settings.rewriter_timeout_s + SCENE_WAIT_MARGIN_S,
        )


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Worker:
    """Runs jobs from the queue at ``database_path`` until stopped (or drained, in burst mode)."""

    def __init__(
        self,
        database_path: Path,
        *,
        config: WorkerConfig,
        worker_id: str | None = None,
        rewriter: PromptRewriter | None = None,
    ) -> None:
        """``rewriter`` replaces the configured one (tests, benchmarks)."""
        self.database_path = database_path
        self.config = config
        self.worker_id = worker_id or default_worker_id()
        self._given_rewriter = rewriter
        self.jobs_run = 0
        self._stopping = asyncio.Event()
        self._tracker: JobTracker | None = None
        self._guard: OutputGuard | None = None

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
        maker = ClipMaker(self.config.models, signing=self.config.signing)
        rewriter = self._given_rewriter or build_rewriter(self.config.rewriter)
        if self.config.safety is not None:
            self._guard = OutputGuard(queue.db, self.config.safety, self.config.safety_policy)
        try:
            await self._warm_up(maker, rewriter)
            await queue.register_worker(self.worker_id, model=self.config.models.t2v_model)
            await Telemetry(queue.db).report_gpu_memory(self.worker_id)
            log.info("worker %s waiting for jobs in %s", self.worker_id, self.database_path)
            run_job = self._job_runner(queue, maker, rewriter)
            await self._loop(queue, run_job, burst=burst)
        finally:
            await _quietly(queue.worker_stopped(self.worker_id), "record that the worker stopped")
            if self._given_rewriter is None:
                await _quietly(rewriter.aclose(), "close the prompt rewriter")
            maker.unload()
            await queue.close()

    async def _warm_up(self, maker: ClipMaker, rewriter: PromptRewriter) -> None:
        """Load the default text-to-video model and the rewriter before taking jobs."""
        model = self.config.models.t2v_model
        seconds = await maker.load(model)
        rewriter_seconds = await rewriter.warm_up() if self.config.rewriter_at_start else 0.0
        safety_seconds = await self._guard.load() if self._guard is not None else 0.0
        log.info(
            "ready: %s loaded in %.1f s, rewriter in %.1f s, safety check in %.1f s",
            model,
            seconds,
            rewriter_seconds,
            safety_seconds,
        )

    def _job_runner(self, queue: JobQueue, maker: ClipMaker, rewriter: PromptRewriter) -> JobRunner:
        """The one function each job runs: the pipeline's make_clip, asked in the job's terms."""
        moderation = Moderation(queue.db)
        scenes = Scenes(queue.db)
        clips_dir = self.config.clips_dir

        async def run_job(job: Job, tracker: JobTracker, partial: Path) -> MadeClip:
            if self._guard is not None:
                await self._guard.refuse_withheld_parent(job)
            started = time.perf_counter()
            scene = await scene_for_worker(
                scenes,
                job,
                wait_s=self.config.scene_wait_s,
                should_stop=tracker.should_stop,
                on_wait=lambda: tracker.stage_changed(StageChange(ClipStage.REWRITING)),
            )
            waited = time.perf_counter() - started
            made = await maker.make_clip(
                job.request.as_asked(),
                model=job_model(job, self.config.models),
                output=lambda _request: partial,
                max_bytes=self.config.max_upload_bytes,
                start_image=start_image(job),
                extend=clip_to_extend(job, clips_dir),
                rewriter=rewriter if job.request.enhance else None,
                scene=scene,
                screen=ModerationScreen(moderation, job),
                on_stage=tracker.stage_changed,
                on_step=tracker.step,
                should_cancel=tracker.should_stop,
            )
            # Waiting for a scene writer's scene is this job's rewrite, as far as time goes.
            made.timings["rewrite"] = made.timings.get("rewrite", 0.0) + waited
            return made

        return run_job

    async def _loop(self, queue: JobQueue, run_job: JobRunner, *, burst: bool) -> None:
        last_seen = time.monotonic()
        while not self._stopping.is_set():
            job = await queue.claim(self.worker_id, lease_seconds=self.config.lease_seconds)
            if job is not None:
                try:
                    await self._process(queue, run_job, job)
                except Exception:
                    # The queue could not record the outcome; the lease runs out and the
                    # job is tried again by the next claim.
                    log.exception("job %d: could not record its outcome", job.id)
                self.jobs_run += 1
                # For /metrics: what the models and this job's activations left allocated.
                await Telemetry(queue.db).report_gpu_memory(self.worker_id)
                continue
            if burst:
                return
            if time.monotonic() - last_seen >= SEEN_EVERY_S:
                await queue.worker_seen(self.worker_id)
                last_seen = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.config.poll_interval_s)

    async def _process(self, queue: JobQueue, run_job: JobRunner, job: Job) -> None:
        log.info(
            "job %d (%s, user %d, attempt %d) started", job.id, job.kind, job.user_id, job.attempts
        )
        partial = partial_clip_path(self.config.clips_dir, job.id, self.worker_id)
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
                await self._run_and_record(queue, run_job, job, tracker, partial)
            finally:
                self._tracker = None
                # A published clip was renamed away; anything left here is unwanted.
                discard(partial)

    async def _run_and_record(
        self, queue: JobQueue, run_job: JobRunner, job: Job, tracker: JobTracker, partial: Path
    ) -> None:
        try:
            made = await run_job(job, tracker, partial)
        except GenerationCancelled:
            await self._after_stop(queue, job, tracker)
        except ClipFailed as failure:
            log.info("job %d failed: %s (%s)", job.id, failure.sentence, failure.detail)
            await queue.fail(
                job.id, self.worker_id, error=failure.sentence, error_detail=failure.detail
            )
        except Exception:
            log.exception("job %d failed unexpectedly", job.id)
            await queue.fail(
                job.id,
                self.worker_id,
                error=UNEXPECTED_FAILURE,
                error_detail=traceback.format_exc(limit=20),
            )
        else:
            await self._deliver(queue, job, tracker, made)

    async def _deliver(
        self, queue: JobQueue, job: Job, tracker: JobTracker, made: MadeClip
    ) -> None:
        if tracker.cancel_requested or tracker.lease_lost:
            await self._after_stop(queue, job, tracker)
            return
        if not await self._check_output(job, made):
            log.warning("job %d: lease lost during the safety check; clip discarded", job.id)
            return
        clips_dir = self.config.clips_dir
        result = job_result(made, clips_dir, job.id)
        if await queue.complete(
            job.id, self.worker_id, result, publish=lambda: publish(made, clips_dir, job.id)
        ):
            log.info("job %d done: %s", job.id, result.result_path)
        else:
            log.warning("job %d finished after its lease was lost; the clip is discarded", job.id)

    async def _check_output(self, job: Job, made: MadeClip) -> bool:
        """Look at the finished clip and store the verdict with the job before it is done;
        False if the job is no longer this worker's."""
        if self._guard is None:
            return True
        verdict = await self._guard.judge(job, made.clip)
        made.timings["safety"] = verdict.seconds
        return await self._guard.record(job.id, self.worker_id, verdict)

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
