"""One claimed job, from its lease to its recorded outcome.

Whoever claimed the job hands :meth:`JobRuns.run` the job and the function that makes its
clip: a worker on the bot's host calls the pipeline itself; the broker's dispatcher sends the
job to a worker on another host and waits for its answer. Either way the job runs under a lease
kept alive by :class:`~jobqueue.progress.JobTracker`, its clip is judged by the output safety
check, and the job is recorded exactly once: done (the clip renamed into place in the same
transaction), failed, cancelled, back in the queue (the worker stops; the attempt is not
counted) or given up (its remote worker stopped answering; the attempt counts). A storyboard's
shot then takes its storyboard's next step (:meth:`~jobqueue.storyboards.Storyboards.advance`).
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from jobqueue.clipfiles import forget_preview, partial_clip_path
from jobqueue.clipjob import discard, job_result, publish
from jobqueue.jobs import JobQueue
from jobqueue.models import Job, JobKind
from jobqueue.progress import JobTracker
from jobqueue.safety import OutputGuard, OutputVerdict
from jobqueue.scenes import Scenes, scene_for_worker
from jobqueue.storyboards import Storyboards
from pipeline.clip import ClipStage, MadeClip, StageChange
from pipeline.errors import ClipFailed, GenerationCancelled
from pipeline.provenance import SigningIdentity
from pipeline.rewrite import RewriteResult

log = logging.getLogger(__name__)

UNEXPECTED_FAILURE = (
    "Something went wrong while making this clip; the server's owner can find the details"
    " in the worker's log."
)

JobRunner = Callable[[Job, JobTracker, Path], Awaitable[MadeClip]]
"""One job's clip, encoded at the given path until it is published."""
Judge = Callable[[Job, MadeClip], Awaitable[OutputVerdict | None]]
"""The output safety check's verdict on a finished clip (None: nobody was asked to look)."""


@dataclass(frozen=True)
class Ready:
    """What a job takes to its pipeline call from the bot's host: the scene written while it
    waited (None: the rewriter, if any, writes it now) and how long the job waited for it."""

    scene: RewriteResult | None
    waited_s: float

    def add_wait(self, made: MadeClip) -> None:
        # Waiting for a scene writer's scene is this job's rewrite, as far as time goes.
        made.timings["rewrite"] = made.timings.get("rewrite", 0.0) + self.waited_s


async def before_clip(
    job: Job,
    tracker: JobTracker,
    *,
    guard: OutputGuard | None,
    scenes: Scenes,
    wait_s: float,
) -> Ready:
    """What every job goes through on the bot's host before its clip is made, here or on a
    remote worker: an Extend of someone else's withheld clip is refused, and the scene written
    ahead is taken (waiting up to ``wait_s`` for a live scene writer)."""
    if guard is not None:
        await guard.refuse_withheld_parent(job)
    started = time.perf_counter()
    scene = await scene_for_worker(
        scenes,
        job,
        wait_s=wait_s,
        should_stop=tracker.should_stop,
        on_wait=lambda: tracker.stage_changed(StageChange(ClipStage.REWRITING)),
    )
    return Ready(scene, time.perf_counter() - started)


class WorkerLost(Exception):
    """The worker making the clip stopped answering: a remote host died or was cut off, or
    the broker lost the job. ``counts_attempt`` is False when it was not the job's doing
    (the broker was unreachable)."""

    def __init__(self, detail: str, *, counts_attempt: bool = True) -> None:
        super().__init__(detail)
        self.detail = detail
        self.counts_attempt = counts_attempt


class JobRuns:
    """Runs claimed jobs for ``worker_id`` one after another and records their outcomes."""

    def __init__(
        self,
        queue: JobQueue,
        worker_id: str,
        *,
        clips_dir: Path,
        lease_seconds: float,
        progress_interval_s: float,
        guard: OutputGuard | None,
        judge: Judge | None = None,
        signing: SigningIdentity | None = None,
        crossfade_s: float = 0.0,
    ) -> None:
        """``guard`` records each clip's verdict; ``judge`` gives it (by default the guard
        looks at the clip here); ``signing`` signs the storyboards' films joined here, whose
        shots fade into each other over ``crossfade_s`` seconds (0: cuts)."""
        self.queue = queue
        self.worker_id = worker_id
        self.clips_dir = clips_dir
        self.lease_seconds = lease_seconds
        self.progress_interval_s = progress_interval_s
        self.guard = guard
        self.judge = judge
        self.storyboards = Storyboards(
            queue, clips_dir=clips_dir, crossfade_s=crossfade_s, signing=signing
        )
        self._tracker: JobTracker | None = None
        self._stopping = False

    def stop(self) -> None:
        """Stop the running job at its next step and put it back in the queue; later runs
        stop at once."""
        self._stopping = True
        if self._tracker is not None:
            self._tracker.stop()

    async def run(self, job: Job, run_job: JobRunner) -> None:
        log.info(
            "job %d (%s, user %d, attempt %d) started on %s",
            job.id,
            job.kind,
            job.user_id,
            job.attempts,
            self.worker_id,
        )
        partial = partial_clip_path(self.clips_dir, job.id, self.worker_id)
        async with JobTracker(
            self.queue,
            job.id,
            self.worker_id,
            lease_seconds=self.lease_seconds,
            progress_interval_s=self.progress_interval_s,
        ) as tracker:
            self._tracker = tracker
            if self._stopping:
                tracker.stop()
            try:
                await self._run_and_record(run_job, job, tracker, partial)
            finally:
                self._tracker = None
                # A published clip was renamed away; anything left here is unwanted, and
                # the clip (or the outcome) takes the live preview's place.
                discard(partial)
                forget_preview(self.clips_dir, job.id)
        if job.kind is JobKind.SHOT:
            await self._advance_storyboard(job)

    async def _advance_storyboard(self, shot: Job) -> None:
        """The storyboard's next step once its shot's outcome is recorded (the next shot or
        the film); a step not taken now is taken by the next start-up's resume."""
        try:
            await self.storyboards.advance(shot)
        except Exception:
            log.exception("job %d: could not take its storyboard's next step", shot.id)

    async def _run_and_record(
        self, run_job: JobRunner, job: Job, tracker: JobTracker, partial: Path
    ) -> None:
        try:
            made = await run_job(job, tracker, partial)
        except GenerationCancelled:
            await self._after_stop(job, tracker)
        except WorkerLost as lost:
            await self._after_lost(job, lost)
        except ClipFailed as failure:
            log.info("job %d failed: %s (%s)", job.id, failure.sentence, failure.detail)
            await self.queue.fail(
                job.id, self.worker_id, error=failure.sentence, error_detail=failure.detail
            )
        except Exception:
            log.exception("job %d failed unexpectedly", job.id)
            await self.queue.fail(
                job.id,
                self.worker_id,
                error=UNEXPECTED_FAILURE,
                error_detail=traceback.format_exc(limit=20),
            )
        else:
            await self._deliver(job, tracker, made)

    async def _deliver(self, job: Job, tracker: JobTracker, made: MadeClip) -> None:
        if tracker.cancel_requested or tracker.lease_lost:
            await self._after_stop(job, tracker)
            return
        if not await self._check_output(job, made):
            log.warning("job %d: lease lost during the safety check; clip discarded", job.id)
            return
        clips_dir = self.clips_dir
        result = job_result(made, clips_dir, job.id)
        if await self.queue.complete(
            job.id, self.worker_id, result, publish=lambda: publish(made, clips_dir, job.id)
        ):
            log.info("job %d done: %s", job.id, result.result_path)
        else:
            log.warning("job %d finished after its lease was lost; the clip is discarded", job.id)

    async def _check_output(self, job: Job, made: MadeClip) -> bool:
        """Look at the finished clip and store the verdict with the job before it is done;
        False if the job is no longer this worker's."""
        if self.guard is None:
            return True
        if self.judge is None:
            verdict: OutputVerdict | None = await self.guard.judge(
                job, made.clip, frames=made.safety_frames
            )
        else:
            verdict = await self.judge(job, made)
        if verdict is None:
            return True
        made.timings["safety"] = verdict.seconds
        return await self.guard.record(job.id, self.worker_id, verdict)

    async def _after_stop(self, job: Job, tracker: JobTracker) -> None:
        if tracker.lease_lost:
            log.info("job %d abandoned: its lease was lost", job.id)
        elif tracker.cancel_requested:
            await self.queue.mark_cancelled(job.id, self.worker_id)
            log.info("job %d cancelled", job.id)
        else:
            await self.queue.release(
                job.id, self.worker_id, reason=f"worker {self.worker_id} stopped"
            )
            log.info("job %d returned to the queue: the worker is stopping", job.id)

    async def _after_lost(self, job: Job, lost: WorkerLost) -> None:
        if not lost.counts_attempt:
            await self.queue.release(job.id, self.worker_id, reason=lost.detail)
            log.warning("job %d returned to the queue: %s", job.id, lost.detail)
        elif await self.queue.abandon(job.id, self.worker_id, detail=lost.detail):
            log.warning("job %d given up: %s", job.id, lost.detail)
