"""The dispatcher, on the bot's host: the next fair job to each remote worker with room.

The bot's SQLite file stays the record of every job, the fair order and the limits. The
dispatcher reads the registry (which remote workers are alive, what each serves); when one
has room it claims, in the fair order, the next job that worker can run
(:meth:`~jobqueue.jobs.JobQueue.claim` with the worker's capability), exactly as a local
worker claims one, so the broker never holds more jobs than workers are free to start.

Each claimed job then runs as on a local worker (:class:`~jobqueue.runs.JobRuns`: lease,
heartbeats, progress, cancellation, the safety verdict, exactly one outcome), except that its
clip is made elsewhere: :class:`RemoteRun` sends the job through SAQ to that worker's queue and
watches the SAQ job, passing its progress on and renewing the lease while the worker's
heartbeat (SAQ's ``touched``) keeps coming (a live preview it sends is stored where the bot
shows it from). A worker whose heartbeat stops, or that leaves the
registry before starting the job, is given up: the job goes back to the fair queue with the
attempt counted and runs elsewhere. Every attempt has its own SAQ key, and only the attempt
that still holds the job's lease is ever recorded, so an answer from a "dead" worker that comes
back late is thrown away (and logged): each clip is posted once.

A broker that cannot be reached stops nothing on the bot's side: jobs are accepted into
SQLite, waiting jobs say they wait for a GPU worker, a line is logged once a minute, and
dispatching resumes when the broker answers again. Waiting jobs no live worker can run say so
in their status and fail with a sentence after ``unserved_wait_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import saq
import sqlite_utils
from saq.job import Status

from jobqueue.broker.connection import BROKER_ERRORS, Broker, RateLimitedLog
from jobqueue.broker.records import (
    BrokerRecords,
    Dispatch,
    DispatchState,
    NoteChange,
    dispatch_key,
    inputs_key,
    sent,
)
from jobqueue.broker.registry import WorkerAd, registered_workers
from jobqueue.broker.routing import Capability, Need, anyone_can_run, need_of
from jobqueue.broker.wire import (
    MAKE_CLIP,
    Assignment,
    Inputs,
    Outcome,
    preview_of,
    previews_refused,
)
from jobqueue.clipfiles import clip_path, forget_preview, store_preview
from jobqueue.clipjob import draft_to_start, end_image, job_model, start_image
from jobqueue.jobs import JobQueue
from jobqueue.leases import live_workers
from jobqueue.models import Job, JobKind, JobStatus, Stage
from jobqueue.moderation import BlockRule, Moderation
from jobqueue.progress import JobTracker
from jobqueue.runs import JobRuns, Ready, WorkerLost, before_clip
from jobqueue.safety import OutputGuard, OutputVerdict, SafetyPolicy
from jobqueue.scenes import Scenes
from jobqueue.settings import CoreSettings
from jobqueue.store import count_in_status
from jobqueue.storyboards import SWEEP_AFTER_S, Storyboards
from pipeline.clip import (
    CLIP_TO_EXTEND_GONE,
    ChosenPrompt,
    ClipStage,
    MadeClip,
    ModelChoice,
    StageChange,
)
from pipeline.drafts import DRAFT_GONE, latents_beside
from pipeline.errors import ClipFailed, GenerationCancelled, StartImageUnreadable
from pipeline.provenance import SigningIdentity
from pipeline.safety import SafetyConfig

log = logging.getLogger(__name__)

REGISTRY_EVERY_S = 1.0
NOTES_EVERY_S = 2.0
JANITOR_EVERY_S = 5.0
RESULT_TTL_S = 3600
"""How long the broker keeps an answer or an inputs record the bot has not collected."""
STALE_FORGET_S = 86400.0
SETTLED_AFTER_S = 60.0
RULES_FRESH_S = 1.0
"""How long a server's blocklist and safety policy are sent without being read again."""
ABORT_AGAIN_S = 1.0
KEEP_SMALL_ANSWER_BYTES = 256 * 1024
"""An answer smaller than this (a sentence, a tiny clip) is left to expire in the broker: two
round trips to drop it cost more than it takes up for an hour."""
"""An attempt sent this long ago that no longer holds its job has been settled (its row goes)."""
NEVER = 2**31 - 1
"""``scheduled`` of an inputs record: a time no worker ever runs it at (it only holds bytes)."""
SCENE_WAIT_MARGIN_S = 30.0
FIRST_POLL_S = 0.002
"""How soon a job that just changed is looked at again (a no-op job is done in milliseconds)."""

WAITING_FOR_WORKER = "waiting for a GPU worker"
UNSERVED_NOTE = "waiting for a GPU worker that can make {model} clips{size}"


@dataclass(frozen=True)
class DispatchConfig:
    """What the dispatcher needs, as plain values (see :meth:`from_settings`)."""

    clips_dir: Path
    models: ModelChoice
    """The bot's models: which model a job that names none runs on."""
    max_upload_bytes: int = 10 * 2**20
    max_transfer_bytes: int = 64 * 2**20
    lease_seconds: float = 60.0
    progress_interval_s: float = 2.0
    poll_interval_s: float = 0.05
    unserved_wait_s: float = 1800.0
    """How long a job no live worker can run waits before it fails; 0: for ever."""
    scene_wait_s: float = 90.0
    safety_policy: SafetyPolicy = field(default_factory=SafetyPolicy)
    signing: SigningIdentity | None = None
    """Signs the storyboards' films, joined here from shots the remote workers signed."""
    storyboard_crossfade_s: float = 0.0
    """Seconds each shot of a film joined here fades into the next; 0: hard cuts."""

    @classmethod
    def from_settings(cls, settings: CoreSettings) -> DispatchConfig:
        return cls(
            clips_dir=settings.clips_dir,
            models=settings.model_choice(),
            max_upload_bytes=settings.max_upload_bytes,
            max_transfer_bytes=settings.broker_max_bytes,
            lease_seconds=settings.lease_seconds,
            unserved_wait_s=settings.unserved_wait_minutes * 60,
            scene_wait_s=settings.rewriter_timeout_s + SCENE_WAIT_MARGIN_S,
            safety_policy=settings.safety_policy(),
            signing=settings.signing_identity(),
            storyboard_crossfade_s=settings.storyboard_crossfade_s,
        )


class Dispatcher:
    """Sends jobs from the queue to remote workers through the broker at ``broker_url``.

    Use as ``async with Dispatcher(...):`` beside the bot; stopping leaves the attempts in
    flight running (the next start picks them up again).
    """

    def __init__(
        self,
        queue: JobQueue,
        broker_url: str,
        *,
        config: DispatchConfig,
        moderation: Moderation | None = None,
    ) -> None:
        self.queue = queue
        self.broker = Broker(broker_url)
        self.config = config
        self.moderation = moderation or Moderation(queue.db)
        self.records = BrokerRecords(queue.db)
        self.scenes = Scenes(queue.db)
        self.storyboards = Storyboards(
            queue,
            clips_dir=config.clips_dir,
            crossfade_s=config.storyboard_crossfade_s,
            signing=config.signing,
        )
        # Only its policies and records are used here: the remote workers look at the clips.
        self.guard = OutputGuard(queue.db, SafetyConfig(), config.safety_policy)
        self.reachable = False
        self.late_answers_discarded = 0
        self._ads: dict[str, WorkerAd] = {}
        self._silent: dict[str, float] = {}
        """Workers whose heartbeat stopped, with the advertisement last heard from them:
        nothing more goes to one until it advertises again."""
        self._running: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._down_log = RateLimitedLog()
        self._safety_status: dict[str, Any] | None = None
        self._rules: dict[int | None, tuple[float, tuple[BlockRule, ...], SafetyPolicy]] = {}
        self._needs: dict[int, Need] = {}
        self._opened = False

    async def __aenter__(self) -> Dispatcher:
        self._tasks = [
            asyncio.create_task(self._run(), name="dispatcher"),
            asyncio.create_task(self._clean_up_stale(), name="dispatcher-janitor"),
        ]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        tasks = [*self._tasks, *self._running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._running.clear()
        await self.broker.close()

    def registered(self, worker_id: str) -> bool:
        return worker_id in self._ads

    async def server_rules(
        self, guild_id: int | None
    ) -> tuple[tuple[BlockRule, ...], SafetyPolicy]:
        """The server's blocklist and safety policy, read at most once a second: the jobs of
        a burst go out without a database read each."""
        now = time.monotonic()
        cached = self._rules.get(guild_id)
        if cached is not None and now - cached[0] < RULES_FRESH_S:
            return cached[1], cached[2]
        rules = tuple(await self.moderation.blocklist_list(guild_id))
        policy = await self.guard.policies.policy(guild_id)
        self._rules[guild_id] = (now, rules, policy)
        return rules, policy

    def wake(self) -> None:
        self._wake.set()

    # --- the loop ---

    async def _run(self) -> None:
        await self._adopt()
        next_registry = next_notes = 0.0
        while True:
            try:
                now = time.monotonic()
                if now >= next_registry:
                    await self._read_registry()
                    next_registry = now + REGISTRY_EVERY_S
                await self._dispatch()
                if now >= next_notes:
                    await self._update_notes()
                    next_notes = now + NOTES_EVERY_S
            except Exception:
                log.exception("the dispatcher's round failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.poll_interval_s)
            self._wake.clear()

    async def _read_registry(self) -> None:
        try:
            if not self._opened:
                await self.broker.open()
                self._opened = True
            ads = await registered_workers(self.broker.registry)
        except BROKER_ERRORS as exc:
            self.reachable = False
            self._ads = {}
            self._down_log.warning(
                "the broker at %s is unreachable (%s); jobs wait in the queue until it is back",
                self.broker.shown_url,
                exc,
            )
            return
        if not self.reachable:
            log.info("broker at %s: %d remote worker(s)", self.broker.shown_url, len(ads))
        self.reachable = True
        self._ads = {ad.worker_id: ad for ad in ads}
        await self.records.workers_seen(ads)
        await self._report_safety(ads)

    async def _report_safety(self, ads: list[WorkerAd]) -> None:
        """Tell /admin safety which classifiers run, when only remote workers judge clips."""
        status = next((ad.safety for ad in ads if ad.safety), None)
        if status is None or status == self._safety_status:
            return
        locals_alive = await self.queue.db.read(
            lambda db: any(worker.kind == "local" for worker in live_workers(db, now=time.time()))
        )
        if not locals_alive:
            await self.guard.report_status(status)
            self._safety_status = status

    async def _dispatch(self) -> None:
        if not self.reachable:
            return
        free = [
            ad
            for ad in self._ads.values()
            if not (ad.stopping or ad.worker_id in self._running or self._went_silent(ad))
        ]
        if not free or not await self.queue.db.read(
            lambda db: count_in_status(db, JobStatus.QUEUED)
        ):
            return
        for ad in free:
            job = await self.queue.claim(
                ad.worker_id,
                lease_seconds=self.config.lease_seconds,
                can_run=self._can_run(ad.capability),
                then=_records_sending(ad),
            )
            if job is not None:
                self._start(RemoteRun(self, ad.worker_id, ad.queue, job), job)

    def _went_silent(self, ad: WorkerAd) -> bool:
        if self._silent.get(ad.worker_id) == ad.said_at:
            return True
        self._silent.pop(ad.worker_id, None)
        return False

    def _can_run(self, capability: Capability) -> Callable[[Job], bool] | None:
        """The claim's filter for a worker (None for one that runs anything: the plain fair
        pick, one index seek)."""
        if capability.serves_anything:
            return None
        return lambda job: capability.can_run(self._need(job))

    def _need(self, job: Job) -> Need:
        """What ``job`` needs (its request never changes: worked out once per job)."""
        need = self._needs.get(job.id)
        if need is None:
            need = self._needs[job.id] = need_of(job, self.config.models)
        return need

    def _start(self, run: RemoteRun, job: Job) -> None:
        task = asyncio.create_task(self._run_one(run, job), name=f"remote-job-{job.id}")
        self._running[run.worker_id] = task

    async def _run_one(self, run: RemoteRun, job: Job) -> None:
        runs = JobRuns(
            self.queue,
            run.worker_id,
            clips_dir=self.config.clips_dir,
            lease_seconds=self.config.lease_seconds,
            progress_interval_s=self.config.progress_interval_s,
            guard=self.guard,
            judge=run.judge,
            signing=self.config.signing,
            crossfade_s=self.config.storyboard_crossfade_s,
        )
        try:
            await runs.run(job, run.run)
        except Exception:
            log.exception("job %d: could not record its outcome", job.id)
        finally:
            if run.went_silent and run.worker_id in self._ads:
                self._silent[run.worker_id] = self._ads[run.worker_id].said_at
            if self._running.get(run.worker_id) is asyncio.current_task():
                del self._running[run.worker_id]
            self._wake.set()
        await self._settle(run)

    async def _adopt(self) -> None:
        """Pick up the attempts a previous run of the bot left in flight."""
        for dispatch in await self.records.in_state(DispatchState.LIVE):
            job = await self.records.still_current(dispatch)
            if job is None:
                await self.records.mark(dispatch.key, DispatchState.STALE)
                continue
            log.info("job %d: still on worker %s; watching it again", job.id, dispatch.worker_id)
            self._start(RemoteRun(self, dispatch.worker_id, dispatch.queue, job, sent=True), job)

    # --- after an attempt ---

    async def _settle(self, run: RemoteRun) -> None:
        """Drop a finished attempt's bytes from the broker; an attempt given up while its
        worker may still be at it becomes stale (aborted, its answer thrown away). A settled
        attempt's row goes in the janitor's next sweep, not in a write of its own."""
        if not run.sent:
            return
        try:
            queue = await self.broker.queue(run.queue_name)
            found = run.last_seen if run.ended else await queue.job(run.key)
            if found is not None and found.status not in saq.job.TERMINAL_STATUSES:
                await queue.abort(found, "given up by the bot")
                await self.records.mark(run.key, DispatchState.STALE)
                return
            if found is not None and _is_large(found.result):
                await queue.finish(found, found.status, result=None, error=found.error)
            if run.sent_inputs:
                await self._drop_inputs(queue, run.key)
        except BROKER_ERRORS:
            await self.records.mark(run.key, DispatchState.STALE)

    async def _drop_inputs(self, queue: saq.Queue, key: str) -> None:
        record = await queue.job(inputs_key(key))
        if record is not None and record.result is not None:
            await queue.finish(record, Status.COMPLETE, result=None)

    async def _clean_up_stale(self) -> None:
        await self._resume_storyboards(ended_before_s=0.0)
        while True:
            await asyncio.sleep(JANITOR_EVERY_S)
            await self._resume_storyboards(ended_before_s=SWEEP_AFTER_S)
            if not self.reachable:
                continue
            try:
                await self.records.forget_settled(before=time.time() - SETTLED_AFTER_S)
                for dispatch in await self.records.in_state(DispatchState.STALE):
                    await self._clean_up(dispatch)
            except BROKER_ERRORS:
                continue
            except Exception:
                log.exception("cleaning up attempts given up failed")

    async def _resume_storyboards(self, *, ended_before_s: float) -> None:
        """Storyboards left between a shot and their next step go on: at start (a restart
        mid-way), then each round (a shot that ended in the queue itself, such as a waiting
        shot cancelled)."""
        try:
            await self.storyboards.resume(ended_before_s=ended_before_s)
        except Exception:
            log.exception("resuming storyboards failed")

    async def _clean_up(self, dispatch: Dispatch) -> None:
        queue = await self.broker.queue(dispatch.queue)
        found = await queue.job(dispatch.key)
        if found is None or time.time() - dispatch.sent_at > STALE_FORGET_S:
            await self.records.forget(dispatch.key)
            return
        if found.status not in saq.job.TERMINAL_STATUSES:
            # A dead worker's queue has nobody to sweep it: SAQ's sweep here aborts the job
            # once its heartbeat is overdue.
            await queue.abort(found, "given up by the bot")
            return
        if found.status is Status.COMPLETE and isinstance(found.result, dict):
            if found.result.get("outcome") == "done":
                self.late_answers_discarded += 1
                log.warning(
                    "job %d: discarded a late clip from worker %s (attempt %d no longer holds"
                    " the job)",
                    dispatch.job_id,
                    dispatch.worker_id,
                    dispatch.attempt,
                )
            await queue.finish(found, found.status, result=None)
        await self._drop_inputs(queue, dispatch.key)
        await self.records.forget(dispatch.key)

    # --- why waiting jobs wait ---

    async def _update_notes(self) -> None:
        jobs = await self.records.waiting_jobs()
        if not jobs:
            return
        capabilities = await self._live_capabilities()
        since = await self.records.unserved_since()
        now = time.time()
        changes: list[NoteChange] = []
        for job in jobs:
            need = self._need(job)
            change = self._note_for(job, need, capabilities, since.get(job.id), now=now)
            if change is not None:
                changes.append(change)
        await self.records.apply_notes(changes)
        waiting = {job.id for job in jobs}
        self._needs = {job_id: need for job_id, need in self._needs.items() if job_id in waiting}

    async def _live_capabilities(self) -> list[Capability]:
        local = await self.queue.db.read(
            lambda db: [
                Capability.of_worker(worker)
                for worker in live_workers(db, now=time.time())
                if worker.kind == "local"
            ]
        )
        remote = [ad.capability for ad in self._ads.values() if not ad.stopping]
        return [*local, *remote]

    def _note_for(
        self,
        job: Job,
        need: Need,
        capabilities: list[Capability],
        unserved_since: float | None,
        *,
        now: float,
    ) -> NoteChange | None:
        if anyone_can_run(capabilities, need):
            if job.wait_note is None and unserved_since is None:
                return None
            return NoteChange(job.id, None, None)
        if not self.reachable:
            # Nobody to ask: the job waits for the broker, however long that takes.
            if job.wait_note == WAITING_FOR_WORKER:
                return None
            return NoteChange(job.id, WAITING_FOR_WORKER, None)
        started = unserved_since if unserved_since is not None else now
        wait_s = self.config.unserved_wait_s
        size = _size_words(capabilities, need)
        if wait_s > 0 and now - started >= wait_s:
            failure = _unserved_failure(need.model, size, wait_s)
            return NoteChange(job.id, None, started, fail_with=failure)
        note = UNSERVED_NOTE.format(model=need.model, size=size)
        if job.wait_note == note and unserved_since is not None:
            return None
        return NoteChange(job.id, note, started)


class RemoteRun:
    """One attempt of one job on a remote worker, as the bot's host sees it: the
    :data:`~jobqueue.runs.JobRunner` the dispatcher hands :class:`~jobqueue.runs.JobRuns`."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        worker_id: str,
        queue_name: str,
        job: Job,
        *,
        sent: bool = False,
    ) -> None:
        """``sent``: the attempt went out before (the bot restarted): only watch it."""
        self.dispatcher = dispatcher
        self.worker_id = worker_id
        self.queue_name = queue_name
        self.attempt = job.attempts
        self.key = dispatch_key(job.id, job.attempts)
        self.sent = sent
        self.verdict: OutputVerdict | None = None
        self.ready: Ready | None = None
        self.went_silent = False
        self._stage: str | None = None
        self._prompt_sent = False
        self._touched: int | None = None
        self._touched_seen = time.monotonic()
        self._last_seen: tuple[Status, int] | None = None
        self._wait_s = FIRST_POLL_S / 2
        self.sent_inputs = sent
        """Whether an inputs record went out (after a restart: perhaps)."""
        self.last_seen: saq.Job | None = None
        """The SAQ job as last read; ``ended``: it had finished, one way or another."""
        self.ended = False
        self._preview_number = 0
        self._previews_refused = False

    async def judge(self, job: Job, made: MadeClip) -> OutputVerdict | None:
        """The verdict the remote worker sent (it looked at the clip there)."""
        return self.verdict

    async def run(self, job: Job, tracker: JobTracker, partial: Path) -> MadeClip:
        queue = await self._queue()
        if not self.sent:
            await self._send(job, tracker, queue)
        return await self._watch(job, tracker, partial, queue)

    async def _queue(self) -> saq.Queue:
        try:
            return await self.dispatcher.broker.queue(self.queue_name)
        except BROKER_ERRORS as exc:
            raise WorkerLost(f"the broker is unreachable: {exc}", counts_attempt=False) from exc

    # --- out ---

    async def _send(self, job: Job, tracker: JobTracker, queue: saq.Queue) -> None:
        dispatcher = self.dispatcher
        config = dispatcher.config
        ready = await before_clip(
            job,
            tracker,
            guard=dispatcher.guard,
            scenes=dispatcher.scenes,
            wait_s=config.scene_wait_s,
        )
        self.ready = ready
        inputs = Inputs()
        if _has_inputs(job):
            inputs = await asyncio.to_thread(_read_inputs, job, config.clips_dir)
        rules, policy = await dispatcher.server_rules(job.guild_id)
        assignment = Assignment(
            job=job,
            attempt=self.attempt,
            model=job_model(job, config.models),
            max_bytes=config.max_upload_bytes,
            scene=ready.scene,
            rules=rules,
            safety=policy,
            inputs_key=inputs_key(self.key) if inputs != Inputs() else None,
        )
        # Its row was written with the claim: a bot that dies right after sending still knows
        # of the attempt.
        self.sent = True
        self.sent_inputs = assignment.inputs_key is not None
        try:
            if assignment.inputs_key is not None:
                await _hold_inputs(queue, assignment.inputs_key, inputs, config.max_transfer_bytes)
            await queue.enqueue(
                saq.Job(
                    MAKE_CLIP,
                    kwargs=assignment.to_kwargs(),
                    key=self.key,
                    timeout=0,
                    heartbeat=math.ceil(config.lease_seconds),
                    retries=1,
                    ttl=RESULT_TTL_S,
                )
            )
        except BROKER_ERRORS as exc:
            raise WorkerLost(f"could not send the job: {exc}", counts_attempt=False) from exc
        log.info("job %d (attempt %d) sent to worker %s", job.id, self.attempt, self.worker_id)

    # --- back ---

    async def _watch(
        self, job: Job, tracker: JobTracker, partial: Path, queue: saq.Queue
    ) -> MadeClip:
        config = self.dispatcher.config
        aborting = False
        aborted_at = 0.0
        unreachable_since: float | None = None
        while True:
            # The worker has barely had the job yet: asking at once would only see it waiting.
            await asyncio.sleep(self._pause(self.last_seen))
            try:
                found = self.last_seen = await queue.job(self.key)
                if (
                    tracker.should_stop()
                    and found is not None
                    and abort_due(found, aborting=aborting, aborted_at=aborted_at)
                ):
                    await queue.abort(found, "cancelled")
                    aborting, aborted_at = True, time.monotonic()
                unreachable_since = None
            except BROKER_ERRORS as exc:
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since > config.lease_seconds:
                    raise WorkerLost(
                        f"the broker was unreachable for {config.lease_seconds:.0f} s: {exc}",
                        counts_attempt=False,
                    ) from exc
                await asyncio.sleep(config.poll_interval_s)
                continue
            if found is None:
                raise WorkerLost("the broker no longer has the job (did it restart empty?)")
            self.ended = found.status in saq.job.TERMINAL_STATUSES
            if found.status is Status.COMPLETE:
                return await self._answer(job, found, partial)
            if found.status is Status.FAILED:
                raise RemoteError(f"worker {self.worker_id}: {found.error}")
            if found.status is Status.ABORTED:
                if aborting:
                    raise GenerationCancelled()
                raise WorkerLost(f"the broker aborted the job: {found.error}")
            await self._pass_on_progress(found.meta, tracker)
            await self._keep_preview(job, found.meta)
            self._check_alive(found)

    def _pause(self, found: saq.Job | None) -> float:
        """How long to wait before asking again: soon after the job changed (it may be about
        to finish), then twice as long each time up to the poll interval."""
        seen = (found.status, found.touched) if found is not None else None
        if seen != self._last_seen:
            self._last_seen, self._wait_s = seen, FIRST_POLL_S
        else:
            self._wait_s = min(self._wait_s * 2, self.dispatcher.config.poll_interval_s)
        return self._wait_s

    def _check_alive(self, found: saq.Job) -> None:
        """Raise WorkerLost once the worker's heartbeat (SAQ's ``touched``) has not moved for
        the job's heartbeat time, timed by this host's clock (the hosts' clocks may differ)."""
        if found.touched != self._touched:
            self._touched, self._touched_seen = found.touched, time.monotonic()
        elif found.status is not Status.QUEUED and found.heartbeat > 0:
            silent = time.monotonic() - self._touched_seen
            if silent > found.heartbeat:
                self.went_silent = True
                raise WorkerLost(f"worker {self.worker_id} stopped heartbeating ({silent:.0f} s)")
        gone = self.dispatcher.reachable and not self.dispatcher.registered(self.worker_id)
        if found.status is Status.QUEUED and gone:
            raise WorkerLost(f"worker {self.worker_id} left before starting the job")

    async def _pass_on_progress(self, meta: dict[str, Any], tracker: JobTracker) -> None:
        stage = meta.get("stage")
        rewritten, note = meta.get("rewritten_prompt"), meta.get("rewrite_note")
        prompt_known = rewritten is not None or note is not None
        if stage in tuple(ClipStage) and (
            stage != self._stage or (prompt_known and not self._prompt_sent)
        ):
            prompt = None
            if prompt_known:
                prompt = ChosenPrompt(rewritten or "", rewritten=rewritten, note=note)
                self._prompt_sent = True
            total = int(meta.get("total_steps") or 0)
            await tracker.stage_changed(StageChange(ClipStage(stage), total, prompt))
            self._stage = stage
        if stage == Stage.GENERATING.value and meta.get("step"):
            tracker.step(int(meta["step"]), int(meta.get("total_steps") or 0))

    async def _keep_preview(self, job: Job, meta: dict[str, Any]) -> None:
        """A newer live preview from the worker, where the bot shows it from; none once the
        worker's safety check refused one (the one shown is removed)."""
        clips_dir = self.dispatcher.config.clips_dir
        if self._previews_refused:
            return
        if previews_refused(meta):
            self._previews_refused = True
            await asyncio.to_thread(forget_preview, clips_dir, job.id)
            return
        preview = preview_of(meta)
        if preview is None or preview[0] == self._preview_number:
            return
        self._preview_number, data = preview
        await asyncio.to_thread(store_preview, clips_dir, job.id, data)

    async def _answer(self, job: Job, found: saq.Job, partial: Path) -> MadeClip:
        if not isinstance(found.result, dict):
            raise WorkerLost("the answer was already collected (the bot restarted meanwhile)")
        outcome = Outcome.from_result(found.result)
        if outcome.kind == "released":
            raise WorkerLost(outcome.detail, counts_attempt=False)
        if outcome.kind == "failed":
            raise ClipFailed(outcome.sentence, outcome.detail)
        for hit in outcome.rewrite_blocks:
            log.info("job %d: rewritten prompt blocked, rule %d", job.id, hit.rule_id)
            await self.dispatcher.moderation.record_rewrite_block(
                job.guild_id, job.user_id, hit, job_id=job.id
            )
        self.verdict = outcome.verdict
        made = await asyncio.to_thread(outcome.made_at, partial)
        if self.ready is not None:
            self.ready.add_wait(made)
        return made


class RemoteError(Exception):
    """The remote worker's code raised: its traceback is the job's detail for the log."""


def _records_sending(ad: WorkerAd) -> Callable[[sqlite_utils.Database, Job], None]:
    """Write the attempt's row in the claim's transaction: a bot that dies right after
    sending still knows of it."""

    def record(db: sqlite_utils.Database, job: Job) -> None:
        key = dispatch_key(job.id, job.attempts)
        dispatch = Dispatch(
            job.id, job.attempts, ad.worker_id, ad.queue, key, DispatchState.LIVE, time.time()
        )
        sent(db, dispatch)

    return record


def _is_large(result: object) -> bool:
    if not isinstance(result, dict):
        return False
    return sum(len(value) for value in result.values() if isinstance(value, str)) > (
        KEEP_SMALL_ANSWER_BYTES
    )


def _has_inputs(job: Job) -> bool:
    """Whether ``job`` starts from a file (a picture, a clip, a draft), without looking."""
    return job.parent_id is not None or start_image(job) is not None


def _read_inputs(job: Job, clips_dir: Path) -> Inputs:
    """The start image, parent clip or draft latents of ``job``, as the pipeline would open
    them here."""
    draft = draft_to_start(job, clips_dir)
    if draft is not None:
        try:
            return Inputs(draft_latents=latents_beside(draft).read_bytes())
        except OSError as exc:
            raise ClipFailed(DRAFT_GONE, f"the draft to start from, {draft}: {exc}") from exc
    image = start_image(job)
    if image is not None:
        try:
            return Inputs(start_image=image.read_bytes(), end_image=_end_image_bytes(job))
        except OSError as exc:
            raise StartImageUnreadable(image, str(exc)) from exc
    if job.kind is JobKind.EXTEND and job.parent_id is not None:
        parent = clip_path(clips_dir, job.parent_id)
        try:
            return Inputs(extend=parent.read_bytes())
        except OSError as exc:
            raise ClipFailed(CLIP_TO_EXTEND_GONE, f"the clip to extend, {parent}: {exc}") from exc
    return Inputs()


def _end_image_bytes(job: Job) -> bytes | None:
    end = end_image(job)
    if end is None:
        return None
    try:
        return end.read_bytes()
    except OSError as exc:
        raise StartImageUnreadable(end, str(exc), which="end image") from exc


async def _hold_inputs(queue: saq.Queue, key: str, inputs: Inputs, limit: int) -> None:
    """Put the job's input files in the broker, as the result of a record nobody runs."""
    result = inputs.to_result(limit=limit)
    record = saq.Job("inputs", key=key, scheduled=NEVER, ttl=RESULT_TTL_S)
    await queue.enqueue(record)
    await queue.finish(record, Status.COMPLETE, result=result)


def _size_words(capabilities: list[Capability], need: Need) -> str:
    """ " at this size" when a live worker serves the model but not clips this large."""
    serves_model = any(
        capability.models is None or need.model in capability.models for capability in capabilities
    )
    return " at this size" if serves_model else ""


def _unserved_failure(model: str, size: str, wait_s: float) -> str:
    return (
        f"No GPU worker here can make {model} clips{size}, and none came within"
        f" {_duration(wait_s)}; try another model or a smaller clip, or ask the server's owner."
    )


def _duration(seconds: float) -> str:
    count, unit = (round(seconds), "second") if seconds < 60 else (round(seconds / 60), "minute")
    return f"{count} {unit}{'s' if count != 1 else ''}"


def abort_due(found: saq.Job, *, aborting: bool, aborted_at: float) -> bool:
    """Whether to (again) ask SAQ to abort a cancelled job. SAQ's ``update`` reads the stored
    status and then writes the whole job back, so a worker's progress write can land on an
    abort and undo it: a job still running a second after the abort is aborted again."""
    if not aborting:
        return True
    still_running = found.status in (Status.QUEUED, Status.ACTIVE)
    return still_running and time.monotonic() - aborted_at >= ABORT_AGAIN_S
