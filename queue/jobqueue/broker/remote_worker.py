"""A worker on another host: ``reelbot worker --broker URL``.

It shares nothing with the bot's host but the broker. It loads its models once, advertises
what it serves in the registry (:mod:`jobqueue.broker.registry`) and runs a SAQ worker on its
own queue, into which the bot's dispatcher puts the jobs it chose for it, one at a time. Each
job arrives as an :class:`~jobqueue.broker.wire.Assignment` (with its start image or parent
clip in an inputs record) and runs through the same pipeline call as on the bot's host
(:func:`jobqueue.clipjob.make_job_clip`), screened against the server's blocklist sent along
and judged by the output safety check under the server's policy. Progress, heartbeats and the
latest live preview go into the SAQ job (:class:`BrokerLease` under the usual
:class:`~jobqueue.progress.JobTracker`);
the encoded clip and poster go back as its result. A cancel from Discord arrives as SAQ's abort
and stops the generation at its next step.

Stopping (SIGTERM, Ctrl-C) first tells the registry, so nothing more is sent, then stops the
running job at its next step and sends it back unfinished: the bot puts it back in the fair
queue without counting the attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import saq

from jobqueue.broker.connection import (
    BROKER_ERRORS,
    Broker,
    RateLimitedLog,
    worker_queue_name,
)
from jobqueue.broker.registry import WorkerAd, advertise
from jobqueue.broker.routing import Capability
from jobqueue.broker.wire import (
    MAKE_CLIP,
    MAX_PREVIEW_BYTES,
    PREVIEWS_REFUSED_META,
    Assignment,
    Inputs,
    Outcome,
    TooLarge,
    preview_meta,
)
from jobqueue.clipjob import JobInputs, make_job_clip
from jobqueue.leases import LeaseState
from jobqueue.models import Stage, progress_values
from jobqueue.moderation import BlockHit, BlockRule
from jobqueue.moderation.matcher import Blocklist
from jobqueue.moderation.service import prompt_hit
from jobqueue.progress import JobTracker
from jobqueue.safety import ClipJudge, OutputVerdict
from jobqueue.screening import ModerationScreen
from jobqueue.telemetry import gpu_memory_in_use
from jobqueue.worker import WorkerConfig, safety_frames
from pipeline.clip import ClipMaker, MadeClip
from pipeline.errors import ClipFailed, GenerationCancelled
from pipeline.rewrite import PromptRewriter, build_rewriter

log = logging.getLogger(__name__)

SCRATCH_DIR = ".remote"
"""Under the worker's clips folder: each job's inputs and clip until they are sent back."""
STOP_WAIT_S = 60.0
"""How long a stopping worker waits for its job to reach its next step and go back."""
ABORTED_STATUSES = frozenset({saq.job.Status.ABORTING, saq.job.Status.ABORTED})
"""A job the bot aborted (SAQ's abort), whether or not the worker has seen it yet."""


def remote_worker_id() -> str:
    """``host-pid``, without the colons SAQ's registry keys cannot hold."""
    return f"{socket.gethostname()}-{os.getpid()}".replace(":", "-")


def gpu_total_memory() -> int | None:
    """The memory of the card this process uses; None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    return int(torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory)


class QuietRepeats(logging.Filter):
    """Lets a log message through once a minute: SAQ's worker logs a traceback every second
    while its broker is down."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix
        self._pace = RateLimitedLog()

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix) or self._pace.due()


class BrokerLease:
    """A running SAQ job in the place of the queue under a :class:`JobTracker`: heartbeats
    touch the job (SAQ's own heartbeat) and progress goes into its ``meta``.

    A broker that cannot be reached does not stop the clip: the error is logged (once a
    minute) and the tracker tries again; the bot decides whether to wait for the result.
    The latest live preview goes along with the next progress; once the safety check refused
    one, no preview does, and the bot is told to remove the one it shows.
    """

    def __init__(self, job: saq.Job) -> None:
        self._job = job
        self._meta: dict[str, Any] = {}
        self._trouble = RateLimitedLog()
        self._loop = asyncio.get_running_loop()
        self._previews = 0
        self._previews_refused = False

    def preview(self, data: bytes) -> None:
        """Keep a live preview for the next write (called on the pipeline's preview thread)."""
        if len(data) <= MAX_PREVIEW_BYTES:
            self._loop.call_soon_threadsafe(self._keep_preview, data)

    def refuse_previews(self) -> None:
        """Send no more previews and have the bot drop the last (from the preview thread)."""
        self._loop.call_soon_threadsafe(self._refuse_previews)

    def _keep_preview(self, data: bytes) -> None:
        if self._previews_refused:
            return
        self._previews += 1
        self._meta.update(preview_meta(data, self._previews))

    def _refuse_previews(self) -> None:
        self._previews_refused = True
        self._meta.update(PREVIEWS_REFUSED_META)

    async def heartbeat(self, job_id: int, worker_id: str, *, lease_seconds: float) -> LeaseState:
        return await self._update()

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
    ) -> LeaseState:
        self._meta.update(
            progress_values(
                stage=stage,
                step=step,
                total_steps=total_steps,
                rewritten_prompt=rewritten_prompt,
                rewrite_note=rewrite_note,
            )
        )
        return await self._update()

    async def _update(self) -> LeaseState:
        """Write the progress, and read back whether the bot aborted the job meanwhile.

        SAQ's own abort cancels the job's task, which stops the generation only if the
        cancellation reaches the pipeline's await; one that lands in a broker call can be
        lost. Reading the status on every write makes a cancel stop the run at its next
        step whatever the task was doing."""
        try:
            await self._job.update(meta=dict(self._meta))
            stored = await self._job.get_queue().job(self._job.key)
        except BROKER_ERRORS as exc:
            self._trouble.warning("job %s: cannot reach the broker (%s)", self._job.key, exc)
            return LeaseState.HELD
        if stored is not None and stored.status in ABORTED_STATUSES:
            return LeaseState.CANCEL_REQUESTED
        return LeaseState.HELD


class ShippedRules:
    """The server's blocklist as the bot sent it with the job. Rewrites it blocks are kept
    for the bot, which audits them."""

    def __init__(self, rules: tuple[BlockRule, ...]) -> None:
        self._blocklist = Blocklist(rules)
        self.blocked: list[BlockHit] = []

    async def check_prompts(
        self,
        guild_id: int | None,
        *,
        prompt: str,
        negative_prompt: str = "",
        rewritten_prompt: str | None = None,
    ) -> BlockHit | None:
        return await asyncio.to_thread(
            prompt_hit,
            self._blocklist,
            prompt=prompt,
            negative_prompt=negative_prompt,
            rewritten_prompt=rewritten_prompt,
        )

    async def record_rewrite_block(
        self, guild_id: int | None, user_id: int, hit: BlockHit, *, job_id: int
    ) -> None:
        self.blocked.append(hit)


@dataclass(frozen=True)
class RemoteConfig:
    """A remote worker's settings: the worker's own, what it serves, and the broker's cap."""

    worker: WorkerConfig
    capability: Capability
    max_transfer_bytes: int


class RemoteWorker:
    """Runs the jobs the bot's dispatcher sends through the broker at ``broker_url``."""

    def __init__(
        self,
        broker_url: str,
        *,
        config: RemoteConfig,
        worker_id: str | None = None,
        rewriter: PromptRewriter | None = None,
    ) -> None:
        """``rewriter`` replaces the configured one (tests)."""
        self.broker_url = broker_url
        self.config = config
        self.worker_id = worker_id or remote_worker_id()
        self.jobs_run = 0
        self._given_rewriter = rewriter
        self._stopping = asyncio.Event()
        self._tracker: JobTracker | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._started_at = time.time()
        self._judge: ClipJudge | None = None
        self._trouble = RateLimitedLog()

    def stop(self) -> None:
        """Stop soon: say so in the registry, send the running job back at its next step."""
        log.info("worker %s stopping", self.worker_id)
        self._stopping.set()
        if self._tracker is not None:
            self._tracker.stop()

    async def run(self) -> None:
        worker = self.config.worker
        maker = ClipMaker(
            worker.models,
            signing=worker.signing,
            preview=worker.preview,
            safety_frame_count=safety_frames(worker.safety),
        )
        rewriter = self._given_rewriter or build_rewriter(worker.rewriter)
        if worker.safety is not None:
            self._judge = ClipJudge(worker.safety)
        broker = Broker(self.broker_url)
        quiet = QuietRepeats("Upkeep task failed unexpectedly")
        logging.getLogger("saq").addFilter(quiet)
        try:
            await self._warm_up(maker, rewriter)
            await broker.open()
            queue = await broker.queue(worker_queue_name(self.worker_id))
            saq_worker = saq.Worker(
                queue,
                [(MAKE_CLIP, self._job_function(maker, rewriter))],
                id=self.worker_id,
                concurrency=1,
                dequeue_timeout=1.0,
                # The job has gone back by the time SAQ stops: only its idle loops are left.
                shutdown_grace_period_s=1,
            )
            # This class handles SIGTERM and Ctrl-C itself: the job goes back first.
            saq_worker.SIGNALS = []
            log.info("worker %s waiting for jobs from %s", self.worker_id, broker.shown_url)
            await self._serve(broker, saq_worker)
        finally:
            logging.getLogger("saq").removeFilter(quiet)
            await _quietly(rewriter.aclose(), "close the prompt rewriter")
            maker.unload()
            await broker.close()

    async def _warm_up(self, maker: ClipMaker, rewriter: PromptRewriter) -> None:
        model = self.config.worker.models.t2v_model
        seconds = await maker.load(model)
        rewriter_seconds = await rewriter.warm_up()
        safety_seconds = await self._judge.load() if self._judge is not None else 0.0
        log.info(
            "ready: %s loaded in %.1f s, rewriter in %.1f s, safety check in %.1f s",
            model,
            seconds,
            rewriter_seconds,
            safety_seconds,
        )

    async def _serve(self, broker: Broker, saq_worker: saq.Worker[Any]) -> None:
        serving = asyncio.create_task(saq_worker.start(), name="saq-worker")
        advertising = asyncio.create_task(self._advertise(broker), name="advertise")
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            await self._say(broker, stopping=True)
            # The running job reaches its next step and goes back before SAQ stops.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), STOP_WAIT_S)
        finally:
            for task in (advertising, stopping):
                task.cancel()
            await saq_worker.stop()
            serving.cancel()
            await asyncio.gather(serving, advertising, stopping, return_exceptions=True)

    async def _advertise(self, broker: Broker) -> None:
        every_s = self._ttl_s() / 3
        while True:
            await self._say(broker, stopping=False)
            await asyncio.sleep(every_s)

    async def _say(self, broker: Broker, *, stopping: bool) -> None:
        ad = WorkerAd(
            worker_id=self.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            capability=self.config.capability,
            started_at=self._started_at,
            said_at=time.time(),
            gpu_memory_bytes=gpu_memory_in_use(),
            stopping=stopping,
            safety=self._judge.status() if self._judge is not None else {},
        )
        try:
            await advertise(broker.registry, ad, ttl_s=self._ttl_s())
        except BROKER_ERRORS as exc:
            self._trouble.warning("cannot reach the broker at %s (%s)", broker.shown_url, exc)

    def _ttl_s(self) -> float:
        return self.config.worker.lease_seconds

    def _job_function(self, maker: ClipMaker, rewriter: PromptRewriter) -> Any:
        async def make_clip(ctx: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
            self._idle.clear()
            try:
                return await self._make_clip(ctx["job"], kwargs, maker, rewriter)
            finally:
                self.jobs_run += 1
                self._idle.set()

        return make_clip

    async def _make_clip(
        self,
        saq_job: saq.Job,
        kwargs: dict[str, Any],
        maker: ClipMaker,
        rewriter: PromptRewriter,
    ) -> dict[str, Any]:
        assignment = Assignment.from_kwargs(kwargs)
        job = assignment.job
        limit = self.config.max_transfer_bytes
        if self._stopping.is_set():
            return Outcome("released", detail=f"worker {self.worker_id} is stopping").to_result(
                limit=limit
            )
        log.info("job %d (attempt %d) started", job.id, assignment.attempt)
        scratch = self.config.worker.clips_dir / SCRATCH_DIR / f"{job.id}-{assignment.attempt}"
        try:
            outcome = await self._outcome(saq_job, assignment, scratch, maker, rewriter)
            try:
                return outcome.to_result(limit=limit)
            except TooLarge as failure:
                return Outcome("failed", failure.sentence, failure.detail).to_result(limit=limit)
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch, ignore_errors=True)

    async def _outcome(
        self,
        saq_job: saq.Job,
        assignment: Assignment,
        scratch: Path,
        maker: ClipMaker,
        rewriter: PromptRewriter,
    ) -> Outcome:
        job = assignment.job
        try:
            inputs = await self._inputs(saq_job, assignment, scratch)
        except ClipFailed as failure:
            return Outcome("failed", failure.sentence, failure.detail)
        rules = ShippedRules(assignment.rules)
        worker = self.config.worker
        lease = BrokerLease(saq_job)
        preview_screen = None
        if self._judge is not None:
            preview_screen = self._judge.preview_screen(
                job.id, assignment.safety, on_refused=lease.refuse_previews
            )
        async with JobTracker(
            lease,
            job.id,
            self.worker_id,
            # The bot watches for a heartbeat within the job's own time, whatever ours is.
            lease_seconds=saq_job.heartbeat or worker.lease_seconds,
            progress_interval_s=worker.progress_interval_s,
        ) as tracker:
            self._tracker = tracker
            if self._stopping.is_set():
                tracker.stop()
            try:
                made = await make_job_clip(
                    maker,
                    job,
                    model=assignment.model,
                    inputs=inputs,
                    output=scratch / "clip.mp4",
                    max_bytes=assignment.max_bytes,
                    rewriter=rewriter,
                    scene=assignment.scene,
                    screen=ModerationScreen(rules, job),
                    progress=tracker,
                    on_preview=lease.preview,
                    preview_screen=preview_screen,
                )
            except GenerationCancelled:
                if tracker.cancel_requested:
                    log.info("job %d stopped: it was cancelled", job.id)
                    return Outcome("released", detail="cancelled")
                log.info("job %d goes back: the worker is stopping", job.id)
                return Outcome("released", detail=f"worker {self.worker_id} stopped")
            except ClipFailed as failure:
                log.info("job %d failed: %s (%s)", job.id, failure.sentence, failure.detail)
                return Outcome("failed", failure.sentence, failure.detail)
            finally:
                self._tracker = None
        verdict = await self._verdict(assignment, made)
        if verdict is not None:
            made.timings["safety"] = verdict.seconds
        log.info("job %d done (%d bytes)", job.id, made.clip.size_bytes)
        return await asyncio.to_thread(Outcome.done, made, verdict, tuple(rules.blocked))

    async def _inputs(self, saq_job: saq.Job, assignment: Assignment, scratch: Path) -> JobInputs:
        if assignment.inputs_key is None:
            return JobInputs()
        record = await saq_job.get_queue().job(assignment.inputs_key)
        if record is None or not isinstance(record.result, dict):
            raise ClipFailed(
                "The picture or clip this one starts from did not reach the GPU worker; try again.",
                f"inputs record {assignment.inputs_key} is missing",
            )
        return await asyncio.to_thread(Inputs.from_result(record.result).write, scratch / "inputs")

    async def _verdict(self, assignment: Assignment, made: MadeClip) -> OutputVerdict | None:
        if self._judge is None:
            return None
        return await self._judge.judge(
            assignment.job.id, made.clip, assignment.safety, frames=made.safety_frames
        )


async def _quietly(awaitable: Any, what: str) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("could not %s", what)
