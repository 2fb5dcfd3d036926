"""The GPU worker: claims jobs one at a time and turns each into a clip.

``python -m jobqueue`` and ``reelbot worker`` run one; ``jobqueue.supervisor`` runs several
beside the bot. The models load once, before the first claim. Like a saq or arq worker
calling its registered function, the worker claims a job, runs the one pipeline call
(:meth:`pipeline.clip.ClipMaker.make_clip`, asked in the job's terms by
:mod:`jobqueue.clipjob`) and records the outcome: done, failed, cancelled or back in the
queue. A job whose scene a scene writer wrote while it waited skips the rewrite
(:func:`jobqueue.runs.before_clip`). Each job runs under a lease kept alive by
:class:`~jobqueue.progress.JobTracker`, which also carries the pipeline's progress to the
queue (:class:`jobqueue.runs.JobRuns`, shared with the broker's dispatcher, whose workers on
other hosts make the same pipeline call); a worker that dies simply stops renewing it, and the
queue gives the job to another worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

from jobqueue.clipfiles import forget_preview, store_preview
from jobqueue.clipjob import JobInputs, job_model, make_job_clip
from jobqueue.jobs import JobQueue, QueueLimits
from jobqueue.models import Job
from jobqueue.moderation import Moderation
from jobqueue.progress import JobTracker
from jobqueue.runs import JobRunner, JobRuns, before_clip
from jobqueue.safety import OutputGuard, SafetyPolicy
from jobqueue.scenes import Scenes
from jobqueue.screening import ModerationScreen
from jobqueue.settings import MIB, CoreSettings
from jobqueue.storyboards import SWEEP_AFTER_S
from jobqueue.telemetry import Telemetry
from pipeline.clip import ClipMaker, MadeClip, ModelChoice
from pipeline.preview import DEFAULT_PREVIEW, PreviewOptions
from pipeline.provenance import SigningIdentity
from pipeline.rewrite import PromptRewriter, RewriterConfig, build_rewriter
from pipeline.safety import SafetyConfig

log = logging.getLogger(__name__)

SEEN_EVERY_S = 10.0
"""How often an idle worker tells the queue it is alive (for /queue stats)."""
SCENE_WAIT_MARGIN_S = 30.0
"""How much longer than one rewrite may take a job waits for a scene writer."""


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
    storyboard_crossfade_s: float = 0.0
    """Seconds each shot of a storyboard's film fades into the next when this worker joins it;
    0: hard cuts (``from_settings`` sets REELBOT_STORYBOARD_CROSSFADE_S)."""
    rewriter_at_start: bool = True
    """Load the rewriter before taking jobs. False where scene writers run (REELBOT_REWRITERS):
    the worker loads it only for a job whose scene it must write itself."""
    scene_wait_s: float = 90.0
    """The longest a job waits for a scene writer's scene before its worker writes it."""
    preview: PreviewOptions | None = DEFAULT_PREVIEW
    """How often and how big each running job's live preview is; None: no previews."""

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
            storyboard_crossfade_s=settings.storyboard_crossfade_s,
            rewriter_at_start=settings.rewriters == 0,
            scene_wait_s=settings.rewriter_timeout_s + SCENE_WAIT_MARGIN_S,
            preview=settings.preview_options(),
        )


def safety_frames(config: SafetyConfig | None) -> int:
    """How many frames of each clip the maker keeps for the output safety check (none without
    a check)."""
    return 0 if config is None else config.frames


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
        self._runs: JobRuns | None = None
        self._guard: OutputGuard | None = None

    def stop(self) -> None:
        """Stop soon: a running job is stopped at its next step and goes back to the queue."""
        log.info("worker %s stopping", self.worker_id)
        self._stopping.set()
        if self._runs is not None:
            self._runs.stop()

    async def run(self, *, burst: bool = False) -> None:
        """Take jobs until :meth:`stop`; with ``burst``, return once none is left to start."""
        queue = await JobQueue.open(
            self.database_path, limits=self.config.limits, max_attempts=self.config.max_attempts
        )
        maker = ClipMaker(
            self.config.models,
            signing=self.config.signing,
            preview=self.config.preview,
            safety_frame_count=safety_frames(self.config.safety),
        )
        rewriter = self._given_rewriter or build_rewriter(self.config.rewriter)
        if self.config.safety is not None:
            self._guard = OutputGuard(queue.db, self.config.safety, self.config.safety_policy)
        try:
            await self._warm_up(maker, rewriter)
            await queue.register_worker(self.worker_id, model=self.config.models.t2v_model)
            await Telemetry(queue.db).report_gpu_memory(self.worker_id)
            log.info("worker %s waiting for jobs in %s", self.worker_id, self.database_path)
            self._runs = JobRuns(
                queue,
                self.worker_id,
                clips_dir=self.config.clips_dir,
                lease_seconds=self.config.lease_seconds,
                progress_interval_s=self.config.progress_interval_s,
                guard=self._guard,
                signing=self.config.signing,
                crossfade_s=self.config.storyboard_crossfade_s,
            )
            if self._stopping.is_set():
                self._runs.stop()
            # Storyboards a crash left between a shot and their next step go on now.
            await self._runs.storyboards.resume()
            run_job = self._job_runner(queue, maker, rewriter)
            await self._loop(queue, self._runs, run_job, burst=burst)
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
            ready = await before_clip(
                job, tracker, guard=self._guard, scenes=scenes, wait_s=self.config.scene_wait_s
            )
            preview_screen = None
            if self._guard is not None:
                preview_screen = await self._guard.preview_screen(
                    job, on_refused=lambda: forget_preview(clips_dir, job.id)
                )
            made = await make_job_clip(
                maker,
                job,
                model=job_model(job, self.config.models),
                inputs=JobInputs.on_bot_host(job, clips_dir),
                output=partial,
                max_bytes=self.config.max_upload_bytes,
                rewriter=rewriter,
                scene=ready.scene,
                screen=ModerationScreen(moderation, job),
                progress=tracker,
                # The bot shows it in the job's status message (jobqueue.clipfiles).
                on_preview=lambda data: store_preview(clips_dir, job.id, data),
                preview_screen=preview_screen,
            )
            ready.add_wait(made)
            return made

        return run_job

    async def _loop(
        self, queue: JobQueue, runs: JobRuns, run_job: JobRunner, *, burst: bool
    ) -> None:
        last_seen = time.monotonic()
        while not self._stopping.is_set():
            job = await queue.claim(self.worker_id, lease_seconds=self.config.lease_seconds)
            if job is not None:
                try:
                    await runs.run(job, run_job)
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
                # A shot that ended in the queue itself (cancelled while waiting, out of
                # attempts) ends its storyboard here.
                await runs.storyboards.resume(ended_before_s=SWEEP_AFTER_S)
                last_seen = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.config.poll_interval_s)


async def _quietly(awaitable: Awaitable[None], what: str) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("could not %s", what)
