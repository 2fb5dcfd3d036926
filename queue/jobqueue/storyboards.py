"""Storyboards as jobs: a film planned as shots, each shot a job, then one film.

A storyboard is a row in ``storyboards`` with its :class:`~pipeline.storyboard.Plan`. Shoot
submits shot 1 as a job of kind SHOT, from text; each shot after it starts from the last frame
of the shot before (its parent, whose frames it does not repeat) on the image-to-video model.
Shots are submitted one at a time as their user's jobs, so the fair order serves other users
between them; only the first is checked against the user's limits (the storyboard was accepted
as a whole). When a shot ends, :meth:`Storyboards.advance` (called by ``runs.py`` on the bot's
host, where the clips are, for local workers and the broker's dispatcher alike) submits the
next shot, or after the last one joins the take's shots into one film and records it as a FILM
job that is already done: the bot posts it like any finished clip, once. A failed or cancelled
shot ends the storyboard (failed, cancelled).

Every step is idempotent: the next shot is submitted under the key
``storyboard-{id}-take-{k}-shot-{n}`` and the film under ``storyboard-{id}-take-{k}-film``,
each recorded with the storyboard's change in one transaction, so advancing twice (two
processes, or :meth:`Storyboards.resume` at start-up after a crash) changes nothing more.

Reshoot N starts take k+1 from shot N: shots 1 to N-1 of take k are kept, and a new film is
made. Shot clips are kept as long as their jobs: a storyboard may be reshot at any time, and
deleting the film deletes only the film's files.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import sqlite_utils

from jobqueue.clipfiles import PARTIAL_DIR, clip_path, last_frame_path, poster_path
from jobqueue.errors import QueueError
from jobqueue.jobs import EndedJob, JobQueue
from jobqueue.models import Job, JobKind, JobRequest, JobResult, JobStatus
from jobqueue.safety import OutputVerdict, Verdict, worst_verdict
from jobqueue.store import fetch_jobs, rows
from pipeline.encode import ClipMetadata, last_frame, poster_beside
from pipeline.errors import ClipFailed
from pipeline.join import JOIN_FAILED, join_clips
from pipeline.provenance import ClipFacts, SigningIdentity, credit
from pipeline.storyboard import Plan

log = logging.getLogger(__name__)

FILM_MAX_BYTES = 1024 * 1024 * 1024
"""The film as kept; the bot fits a copy to each server's upload limit when it posts it."""
SWEEP_AFTER_S = 60.0
"""How long after a shot ended a periodic :meth:`Storyboards.resume` takes its next step
(the process that recorded the shot takes it at once; a film takes a while to join)."""
JOIN_LEASE_S = 60.0
"""How long a process's claim on joining a film lasts unless renewed (it is renewed every
third of that while ffmpeg runs): the sweeps of other processes leave that film alone."""
SHOT_CLIP_GONE = "The clip of shot {shot} is no longer available; reshoot from shot {shot}."
SHOT_FAILED = "Shot {shot} of {shots} failed: {reason}"
SHOT_CANCELLED = "Shot {shot} of {shots} was cancelled, so the film was not made."
CANCELLED = "The storyboard was cancelled."
SHOT_GONE = "A shot of this storyboard is gone, so the film was not made."


class StoryboardState(StrEnum):
    PLANNED = "planned"
    """Shown with its plan; not shot yet."""
    SHOOTING = "shooting"
    DONE = "done"
    """The current take's film is made."""
    FAILED = "failed"
    CANCELLED = "cancelled"


ENDED_STATES = frozenset({StoryboardState.DONE, StoryboardState.FAILED, StoryboardState.CANCELLED})


class StoryboardError(QueueError):
    """What the user asked of a storyboard cannot be done; the message says why."""


class StoryboardNotFound(StoryboardError):
    pass


@dataclass(frozen=True)
class Storyboard:
    id: int
    user_id: int
    guild_id: int | None
    channel_id: int | None
    thread_id: int | None
    plan_message_id: int | None
    plan: Plan
    state: StoryboardState
    take: int
    """1 at Shoot, one more at each Reshoot; 0 before Shoot."""
    shot_job_ids: tuple[int, ...]
    """The current take's shot jobs so far, shot 1 first."""
    film_job_id: int | None
    """The current take's film, once made."""
    error: str | None
    """Why a failed or cancelled storyboard ended, as a sentence for its user."""
    take_started_at: float | None
    """When the current take was asked for (Shoot or Reshoot pressed)."""
    created_at: float
    updated_at: float

    @property
    def shots(self) -> int:
        return len(self.plan.shots)

    @property
    def post_channel_id(self) -> int | None:
        """Where its shots and film go: its thread once it has one, else its channel."""
        return self.thread_id if self.thread_id is not None else self.channel_id

    def shot_number(self, job_id: int) -> int | None:
        """Which shot (1-based) of the current take ``job_id`` is; None if none."""
        if job_id in self.shot_job_ids:
            return self.shot_job_ids.index(job_id) + 1
        return None


class _Stale(Exception):
    """The storyboard moved on (cancelled, reshot, already advanced) while a step was made."""


class Storyboards:
    """Storyboards on the queue's database; see the module docstring."""

    def __init__(
        self,
        queue: JobQueue,
        *,
        clips_dir: Path,
        crossfade_s: float = 0.0,
        signing: SigningIdentity | None = None,
    ) -> None:
        """``signing``: the key that signs each film's content credentials, as the clips
        made on this host are signed (None: films go unsigned)."""
        self.queue = queue
        self.db = queue.db
        self.clips_dir = clips_dir
        self.crossfade_s = crossfade_s
        self.signing = signing

    # --- what the bot asks ---

    async def create(
        self, *, user_id: int, guild_id: int | None, channel_id: int | None, plan: Plan
    ) -> Storyboard:
        """A new storyboard with ``plan``, not shot yet."""
        now = time.time()
        values = {
            "user_id": user_id,
            "guild_id": guild_id,
            "channel_id": channel_id,
            "plan": plan.to_json(),
            "state": StoryboardState.PLANNED.value,
            "created_at": now,
            "updated_at": now,
        }

        def insert(db: sqlite_utils.Database) -> Storyboard:
            cursor = db.execute(
                f"INSERT INTO storyboards ({', '.join(values)})"
                f" VALUES ({', '.join(':' + column for column in values)})",
                values,
            )
            return _found(db, int(cursor.lastrowid or 0))

        return await self.db.write(insert)

    async def get(self, storyboard_id: int) -> Storyboard | None:
        return await self.db.read(lambda db: _read(db, storyboard_id))

    async def for_job(self, job_id: int) -> Storyboard | None:
        """The storyboard whose shot or film ``job_id`` is (of any take)."""

        def read(db: sqlite_utils.Database) -> Storyboard | None:
            row = db.execute(
                "SELECT storyboard_id FROM storyboard_shots WHERE job_id = :job_id"
                " UNION SELECT storyboard_id FROM storyboard_films WHERE job_id = :job_id"
                " LIMIT 1",
                {"job_id": job_id},
            ).fetchone()
            return None if row is None else _read(db, int(row[0]))

        return await self.db.read(read)

    async def film_take(self, job_id: int) -> int | None:
        """The take film ``job_id`` was made from (None: not a storyboard's film)."""

        def read(db: sqlite_utils.Database) -> int | None:
            row = db.execute(
                "SELECT take FROM storyboard_films WHERE job_id = ?", [job_id]
            ).fetchone()
            return None if row is None else int(row[0])

        return await self.db.read(read)

    async def set_plan_message(self, storyboard_id: int, message_id: int) -> None:
        """Remember the message that shows the plan (bookkeeping for the bot)."""
        await self.db.write(
            lambda db: db.execute(
                "UPDATE storyboards SET plan_message_id = ? WHERE id = ?",
                [message_id, storyboard_id],
            )
        )

    async def replace_plan(self, storyboard_id: int, plan: Plan) -> Storyboard:
        """Put ``plan`` in place of the storyboard's plan; only before Shoot."""

        def write(db: sqlite_utils.Database) -> Storyboard:
            board = _found(db, storyboard_id)
            if board.state is not StoryboardState.PLANNED:
                raise StoryboardError("The plan can only be edited before the storyboard is shot.")
            db.execute(
                "UPDATE storyboards SET plan = ?, updated_at = ? WHERE id = ?",
                [plan.to_json(), time.time(), storyboard_id],
            )
            return _found(db, storyboard_id)

        return await self.db.write(write)

    async def shoot(self, storyboard_id: int, *, thread_id: int | None) -> Job:
        """Start shooting: submit shot 1 (from text), within its user's limits; the shots and
        the film go to ``thread_id`` when given. Pressing Shoot again returns the same job.

        Raises :class:`StoryboardError`, or the queue's LimitExceeded and QueuePaused.
        """
        board = await self._found(storyboard_id)
        started = board.state is StoryboardState.SHOOTING and board.take == 1
        if board.state is not StoryboardState.PLANNED and not started:
            raise StoryboardError("This storyboard has already been shot; reshoot a shot instead.")
        if thread_id is not None and board.thread_id is None:
            board = replace(board, thread_id=thread_id)  # recorded as the take starts
        job = await self._submit_shot(
            board, take=1, number=1, parent=None, then=_starts_take(board, take=1, kept=())
        )
        assert job is not None  # _starts_take raises rather than leaving it unrecorded
        log.info(
            "storyboard %d: shooting %d shots, shot 1 is job %d", board.id, board.shots, job.id
        )
        return job

    async def reshoot(self, storyboard_id: int, shot: int) -> Job:
        """Start a new take from shot ``shot`` (1-based): the shots before it are kept, the
        ones from it on are made again (each from the last frame of the one before), then a
        new film. Only once the storyboard has stopped shooting; within its user's limits."""
        board = await self._found(storyboard_id)
        if not 1 <= shot <= board.shots:
            raise StoryboardError(f"This storyboard has shots 1 to {board.shots}, not {shot}.")
        if board.state is StoryboardState.PLANNED:
            raise StoryboardError("This storyboard has not been shot yet; press Shoot first.")
        if board.state is StoryboardState.SHOOTING:
            raise StoryboardError(
                "This storyboard is still being shot; wait for its film or cancel it first."
            )
        kept = board.shot_job_ids[: shot - 1]
        parent = await self._kept_parent(board, kept, shot)
        take = board.take + 1
        try:
            job = await self._submit_shot(
                board,
                take=take,
                number=shot,
                parent=parent,
                then=_starts_take(board, take=take, kept=kept),
            )
        except ClipFailed as gone:  # the clip of the shot before was deleted
            raise StoryboardError(gone.sentence) from gone
        assert job is not None
        log.info("storyboard %d: take %d from shot %d, job %d", board.id, take, shot, job.id)
        return job

    async def cancel(self, storyboard_id: int) -> None:
        """Stop the storyboard: its waiting shot is cancelled, its running one stops at its
        next step, no later shot nor film is made. Nothing changes once it has ended."""

        def stop(db: sqlite_utils.Database) -> Storyboard:
            board = _found(db, storyboard_id)
            if board.state in (StoryboardState.PLANNED, StoryboardState.SHOOTING):
                _end(db, board, StoryboardState.CANCELLED, CANCELLED)
            return board

        board = await self.db.write(stop)
        if board.state is not StoryboardState.SHOOTING or not board.shot_job_ids:
            return
        shot_id = board.shot_job_ids[-1]
        try:
            await self.queue.cancel(shot_id, by_user_id=board.user_id)
        except QueueError:
            log.info("storyboard %d: shot job %d had already finished", board.id, shot_id)
        log.info("storyboard %d cancelled", board.id)

    # --- what the queue's side does ---

    async def advance(self, job: Job) -> None:
        """Take the next step after shot ``job`` ended: the next shot, the film, or the end
        of the storyboard. Does nothing if ``job`` is still waiting or running, is no longer
        the latest shot of its storyboard's current take, or the step was already taken."""
        if job.kind is not JobKind.SHOT:
            return
        shot = await self.queue.get(job.id)
        if shot is None or not shot.status.is_terminal:
            return
        board = await self.for_job(job.id)
        if (
            board is None
            or board.state is not StoryboardState.SHOOTING
            or not board.shot_job_ids
            or board.shot_job_ids[-1] != shot.id
        ):
            return
        number = len(board.shot_job_ids)
        if shot.status is JobStatus.FAILED:
            reason = shot.error or "it could not be made."
            sentence = SHOT_FAILED.format(shot=number, shots=board.shots, reason=reason)
            await self._end(board, StoryboardState.FAILED, sentence)
        elif shot.status is JobStatus.CANCELLED:
            sentence = SHOT_CANCELLED.format(shot=number, shots=board.shots)
            await self._end(board, StoryboardState.CANCELLED, sentence)
        elif number < board.shots:
            await self._next_shot(board, shot, number + 1)
        else:
            await self._make_film(board)

    async def resume(self, *, ended_before_s: float = 0.0) -> None:
        """Take the step each storyboard left mid-way is waiting for: one whose latest shot
        ended while nobody advanced it (a crash between the two, a shot cancelled or failed
        in the queue). Run at start-up; safe to run at any time. A sweep that runs often
        passes ``ended_before_s`` (only shots that ended that long ago): the process that
        recorded a shot may still be joining the film."""
        before = time.time() - ended_before_s
        for shot in await self.db.read(lambda db: _ended_latest_shots(db, before=before)):
            try:
                await self.advance(shot)
            except Exception:
                log.exception("storyboard of shot job %d: could not take its next step", shot.id)

    # --- steps ---

    async def _found(self, storyboard_id: int) -> Storyboard:
        return await self.db.read(lambda db: _found(db, storyboard_id))

    async def _kept_parent(self, board: Storyboard, kept: Sequence[int], shot: int) -> Job | None:
        """The last kept shot, the one a reshoot from ``shot`` starts from (None for shot 1);
        each kept shot must have its clip."""
        if len(kept) < shot - 1:
            first_missing = len(kept) + 1
            raise StoryboardError(
                f"Shot {first_missing} was never made; reshoot from shot {first_missing}."
            )
        jobs = [await self.queue.get(job_id) for job_id in kept]
        for number, job in enumerate(jobs, start=1):
            if job is None or job.status is not JobStatus.DONE:
                raise StoryboardError(f"Shot {number} has no clip; reshoot from shot {number}.")
        return jobs[-1] if jobs else None

    async def _next_shot(self, board: Storyboard, parent: Job, number: int) -> None:
        try:
            job = await self._submit_shot(
                board,
                take=board.take,
                number=number,
                parent=parent,
                then=_continues_take(board, number),
                check_limits=False,
            )
        except ClipFailed as gone:
            await self._film_failed(board, parent, gone.sentence)
            return
        if job is not None:
            log.info(
                "storyboard %d: shot %d of %d is job %d", board.id, number, board.shots, job.id
            )

    async def _submit_shot(
        self,
        board: Storyboard,
        *,
        take: int,
        number: int,
        parent: Job | None,
        then: Callable[[sqlite_utils.Database, Job], None],
        check_limits: bool = True,
    ) -> Job | None:
        """Submit shot ``number`` of ``take`` as its user's job, ``then`` recorded with it;
        None if ``then`` found the storyboard had moved on."""
        start_frame = None
        if parent is not None:
            start_frame = await asyncio.to_thread(self._write_start_frame, parent, number - 1)
        shot = board.plan.shots[number - 1]
        request = JobRequest(
            prompt=board.plan.shot_prompt(number - 1),
            duration_s=shot.duration_s,
            camera=shot.camera,
            # The plan already is a language model's detailed scene, sheet included: a rewrite
            # per shot would drift from the sheet the shots share.
            enhance=False,
            image_path=None if start_frame is None else str(start_frame),
        )
        try:
            return await self.queue.submit(
                JobKind.SHOT,
                request,
                user_id=board.user_id,
                guild_id=board.guild_id,
                channel_id=board.post_channel_id,
                parent_id=None if parent is None else parent.id,
                idempotency_key=f"storyboard-{board.id}-take-{take}-shot-{number}",
                check_limits=check_limits,
                then=then,
            )
        except _Stale as stale:
            log.info("storyboard %d: shot %d not submitted: %s", board.id, number, stale)
            return None

    def _write_start_frame(self, parent: Job, parent_number: int) -> Path:
        """The last frame of shot ``parent`` as a picture beside its clip (blocking)."""
        clip = clip_path(self.clips_dir, parent.id)
        try:
            frame = last_frame(clip)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ClipFailed(SHOT_CLIP_GONE.format(shot=parent_number), f"{clip}: {exc}") from exc
        path = last_frame_path(self.clips_dir, parent.id)
        partial = path.with_name(f"{path.name}.{uuid.uuid4().hex}.part")
        frame.save(partial, format="PNG")
        os.replace(partial, path)
        return path

    async def _end(self, board: Storyboard, state: StoryboardState, sentence: str) -> None:
        def write(db: sqlite_utils.Database) -> None:
            if _still_shooting(db, board.id, board.take):
                _end(db, board, state, sentence)

        await self.db.write(write)
        log.info("storyboard %d ended %s: %s", board.id, state, sentence)

    async def _film_failed(self, board: Storyboard, last_shot: Job | None, sentence: str) -> None:
        """End the storyboard without a film, recorded as its take's FILM job that failed with
        ``sentence``: the bot tells its user where the film would have gone, once."""

        def then(db: sqlite_utils.Database, job: Job) -> None:
            if not _still_shooting(db, board.id, board.take):
                raise _Stale(f"no longer shooting take {board.take}")
            _end(db, board, StoryboardState.FAILED, sentence)
            _record_film(db, board, job)

        try:
            await self.queue.record_failed(_film_job(board, last_shot), error=sentence, then=then)
        except _Stale as stale:
            log.info("storyboard %d: failed film not recorded: %s", board.id, stale)
            return
        log.info("storyboard %d ended without a film: %s", board.id, sentence)

    async def _make_film(self, board: Storyboard) -> None:
        """Join the take's shots into the film and record it as a FILM job already done,
        unless another process is joining it (see :data:`JOIN_LEASE_S`)."""
        lease = await self.db.write(lambda db: _claim_join(db, board, now=time.time()))
        if lease is None:
            log.info("storyboard %d: take %d is joined elsewhere, or was", board.id, board.take)
            return
        try:
            await self._join_and_record(board, lease)
        finally:
            await self.db.write(lambda db: _release_join(db, board.id, lease))

    async def _join_and_record(self, board: Storyboard, lease: str) -> None:
        shots = [await self.queue.get(job_id) for job_id in board.shot_job_ids]
        done = [shot for shot in shots if shot is not None and shot.status is JobStatus.DONE]
        if len(done) != len(shots):
            await self._film_failed(board, done[-1] if done else None, SHOT_GONE)
            return
        partial = (
            self.clips_dir / PARTIAL_DIR / f"film-{board.id}-{board.take}-{uuid.uuid4().hex}.mp4"
        )
        try:
            film = await self._joined_under_lease(board, done, partial, lease)
        except ClipFailed as failure:
            log.warning("storyboard %d: join failed: %s", board.id, failure.detail)
            _discard(partial)
            await self._film_failed(board, done[-1], failure.sentence)
            return
        except Exception:
            # Left to the next sweep, a join that raised would be tried again every round
            # and the storyboard would never end: its user is told, and Reshoot tries again.
            log.exception("storyboard %d: join failed", board.id)
            _discard(partial)
            await self._film_failed(board, done[-1], JOIN_FAILED)
            return
        try:
            job = await self.queue.record_done(
                _film_job(board, done[-1]),
                publish=self._film_publisher(board, film),
                extra=safety_of(done),
            )
        except _Stale as stale:
            log.info("storyboard %d: film not recorded: %s", board.id, stale)
            return
        finally:
            _discard(partial)
        log.info("storyboard %d: film is job %d", board.id, job.id)

    async def _joined_under_lease(
        self, board: Storyboard, shots: Sequence[Job], output: Path, lease: str
    ) -> FilmFile:
        """The joined film; the join's lease is renewed while ffmpeg runs."""
        join = asyncio.ensure_future(asyncio.to_thread(self._join, board, shots, output))
        while True:
            finished, _ = await asyncio.wait({join}, timeout=JOIN_LEASE_S / 3)
            if finished:
                return join.result()
            try:
                await self.db.write(lambda db: _renew_join(db, board.id, lease))
            except Exception:
                log.exception("storyboard %d: could not renew its join's lease", board.id)

    def _join(self, board: Storyboard, shots: Sequence[Job], output: Path) -> FilmFile:
        output.parent.mkdir(parents=True, exist_ok=True)
        first = shots[0]
        metadata = ClipMetadata(
            prompt=board.plan.idea, seed=first.seed or 0, model=_models_of(shots)
        )
        clip = join_clips(
            [clip_path(self.clips_dir, shot.id) for shot in shots],
            output,
            crossfade_s=self.crossfade_s,
            metadata=metadata,
            max_bytes=FILM_MAX_BYTES,
        )
        if self.signing is not None:
            # The film is a new file: its shots' manifests do not carry over to it.
            facts = ClipFacts.of(model=metadata.model, seed=metadata.seed, prompt=metadata.prompt)
            clip = credit(clip, facts, self.signing)
        return FilmFile(
            path=clip.path,
            poster=clip.poster_path,
            result=JobResult(
                result_path="",
                width=clip.width,
                height=clip.height,
                frames=clip.frames,
                fps=clip.fps,
                seed=metadata.seed,
                model=metadata.model,
                steps=0,
                timings={"join": clip.seconds},
            ),
        )

    def _film_publisher(
        self, board: Storyboard, film: FilmFile
    ) -> Callable[[sqlite_utils.Database, Job], JobResult]:
        clips_dir = self.clips_dir

        def publish(db: sqlite_utils.Database, job: Job) -> JobResult:
            if not _still_shooting(db, board.id, board.take):
                raise _Stale(f"no longer shooting take {board.take}")
            db.execute(
                "UPDATE storyboards SET state = ?, film_job_id = ?, updated_at = ? WHERE id = ?",
                [StoryboardState.DONE.value, job.id, time.time(), board.id],
            )
            _record_film(db, board, job)
            os.replace(film.poster, poster_path(clips_dir, job.id))
            os.replace(film.path, clip_path(clips_dir, job.id))
            return replace(film.result, result_path=str(clip_path(clips_dir, job.id)))

        return publish


@dataclass(frozen=True)
class FilmFile:
    """A joined film not yet published: the MP4, its poster and what the FILM job records."""

    path: Path
    poster: Path
    result: JobResult


def safety_of(shots: Sequence[Job]) -> dict[str, Any]:
    """The film's safety columns from its checked shots' verdicts (:func:`worst_verdict`).
    Nothing when no shot was checked."""
    verdicts = [
        OutputVerdict(
            _verdict_of(shot.id, shot.safety_verdict),
            dict(shot.safety_scores),
            tuple(shot.safety_flagged),
            hold=shot.safety_hold,
        )
        for shot in shots
        if shot.safety_verdict is not None
    ]
    if not verdicts:
        return {}
    film = worst_verdict(verdicts)
    return {
        "safety_verdict": film.verdict.value,
        "safety_scores": json.dumps(film.scores),
        "safety_flagged": json.dumps(list(film.flagged)),
        "safety_hold": int(film.hold),
    }


def _verdict_of(job_id: int, stored: str) -> Verdict:
    """A shot's stored verdict; one this version does not know (a newer worker's, a row
    changed by hand) counts as unchecked: nobody here can say what it found."""
    try:
        return Verdict(stored)
    except ValueError:
        log.warning("shot job %d: unknown safety verdict %r", job_id, stored)
        return Verdict.UNCHECKED


def _film_job(board: Storyboard, last_shot: Job | None) -> EndedJob:
    """The current take's FILM job: the idea, as long as all the shots, after the last shot,
    posted where the shots go, asked for when Shoot or Reshoot was pressed."""
    return EndedJob(
        JobKind.FILM,
        JobRequest(prompt=board.plan.idea, duration_s=board.plan.duration_s, enhance=False),
        user_id=board.user_id,
        guild_id=board.guild_id,
        channel_id=board.post_channel_id,
        parent_id=None if last_shot is None else last_shot.id,
        idempotency_key=f"storyboard-{board.id}-take-{board.take}-film",
        asked_at=board.take_started_at or board.created_at,
    )


def _models_of(shots: Sequence[Job]) -> str:
    models = dict.fromkeys(shot.model or "unknown" for shot in shots)
    return " + ".join(models)


def _discard(partial: Path) -> None:
    for path in (partial, poster_beside(partial)):
        path.unlink(missing_ok=True)


# --- in transactions ---


def _starts_take(
    board: Storyboard, *, take: int, kept: Sequence[int]
) -> Callable[[sqlite_utils.Database, Job], None]:
    """Record ``job`` as the first new shot of ``take`` (after the ``kept`` shots of the take
    before), if the storyboard is still where ``board`` saw it; else raise."""

    def record(db: sqlite_utils.Database, job: Job) -> None:
        now = _found(db, board.id)
        if now.take == take and now.shot_job_ids[len(kept) : len(kept) + 1] == (job.id,):
            return  # pressed twice: this take already started with this job
        if (now.state, now.take) != (board.state, board.take):
            raise StoryboardError("This storyboard changed meanwhile; try again.")
        db.execute(
            "UPDATE storyboards SET state = ?, take = ?, take_started_at = ?, film_job_id = NULL,"
            " error = NULL, thread_id = ?, updated_at = ? WHERE id = ?",
            [
                StoryboardState.SHOOTING.value,
                take,
                job.created_at,
                board.thread_id,
                time.time(),
                board.id,
            ],
        )
        for number, job_id in enumerate([*kept, job.id], start=1):
            _record_shot(db, board.id, take, number, job_id)

    return record


def _continues_take(board: Storyboard, number: int) -> Callable[[sqlite_utils.Database, Job], None]:
    """Record ``job`` as shot ``number`` of the board's current take, if it is still being
    shot; else raise :class:`_Stale` (nothing is submitted)."""

    def record(db: sqlite_utils.Database, job: Job) -> None:
        if not _still_shooting(db, board.id, board.take):
            raise _Stale(f"no longer shooting take {board.take}")
        _record_shot(db, board.id, board.take, number, job.id)

    return record


def _record_shot(
    db: sqlite_utils.Database, board_id: int, take: int, number: int, job_id: int
) -> None:
    db.execute(
        "INSERT OR IGNORE INTO storyboard_shots (storyboard_id, take, shot, job_id)"
        " VALUES (?, ?, ?, ?)",
        [board_id, take, number, job_id],
    )


def _record_film(db: sqlite_utils.Database, board: Storyboard, job: Job) -> None:
    db.execute(
        "INSERT INTO storyboard_films (job_id, storyboard_id, take) VALUES (?, ?, ?)",
        [job.id, board.id, board.take],
    )


def _still_shooting(db: sqlite_utils.Database, board_id: int, take: int) -> bool:
    row = db.execute(
        "SELECT 1 FROM storyboards WHERE id = ? AND state = ? AND take = ?",
        [board_id, StoryboardState.SHOOTING.value, take],
    ).fetchone()
    return row is not None


def _end(
    db: sqlite_utils.Database, board: Storyboard, state: StoryboardState, sentence: str
) -> None:
    db.execute(
        "UPDATE storyboards SET state = ?, error = ?, updated_at = ? WHERE id = ?",
        [state.value, sentence, time.time(), board.id],
    )


def _claim_join(db: sqlite_utils.Database, board: Storyboard, *, now: float) -> str | None:
    """A token for joining the film of ``board``'s take, or None when the storyboard moved on
    or another process holds a live lease on the join."""
    lease = uuid.uuid4().hex
    cursor = db.execute(
        "UPDATE storyboards SET joining_by = ?, joining_until = ?"
        " WHERE id = ? AND state = ? AND take = ?"
        " AND (joining_until IS NULL OR joining_until < ?)",
        [lease, now + JOIN_LEASE_S, board.id, StoryboardState.SHOOTING.value, board.take, now],
    )
    return lease if cursor.rowcount == 1 else None


def _renew_join(db: sqlite_utils.Database, board_id: int, lease: str) -> None:
    db.execute(
        "UPDATE storyboards SET joining_until = ? WHERE id = ? AND joining_by = ?",
        [time.time() + JOIN_LEASE_S, board_id, lease],
    )


def _release_join(db: sqlite_utils.Database, board_id: int, lease: str) -> None:
    db.execute(
        "UPDATE storyboards SET joining_by = NULL, joining_until = NULL"
        " WHERE id = ? AND joining_by = ?",
        [board_id, lease],
    )


def _ended_latest_shots(db: sqlite_utils.Database, *, before: float) -> list[Job]:
    """The latest shot of each storyboard being shot, where that shot ended ``before``
    and no process is joining the storyboard's film."""
    return fetch_jobs(
        db,
        "SELECT jobs.* FROM storyboards b"
        " JOIN storyboard_shots s ON s.storyboard_id = b.id AND s.take = b.take"
        " JOIN jobs ON jobs.id = s.job_id"
        " WHERE b.state = :shooting AND s.shot = ("
        "  SELECT MAX(shot) FROM storyboard_shots WHERE storyboard_id = b.id AND take = b.take)"
        " AND jobs.status IN (:done, :failed, :cancelled) AND jobs.finished_at <= :before"
        " AND (b.joining_until IS NULL OR b.joining_until < :now)",
        {
            "before": before,
            "now": time.time(),
            "shooting": StoryboardState.SHOOTING.value,
            "done": JobStatus.DONE.value,
            "failed": JobStatus.FAILED.value,
            "cancelled": JobStatus.CANCELLED.value,
        },
    )


def _found(db: sqlite_utils.Database, storyboard_id: int) -> Storyboard:
    board = _read(db, storyboard_id)
    if board is None:
        raise StoryboardNotFound(f"There is no storyboard #{storyboard_id}.")
    return board


def _read(db: sqlite_utils.Database, storyboard_id: int) -> Storyboard | None:
    found = rows(db, "SELECT * FROM storyboards WHERE id = ?", [storyboard_id])
    if not found:
        return None
    row = found[0]
    shots = db.execute(
        "SELECT job_id FROM storyboard_shots WHERE storyboard_id = ? AND take = ? ORDER BY shot",
        [storyboard_id, row["take"]],
    ).fetchall()
    return Storyboard(
        id=row["id"],
        user_id=row["user_id"],
        guild_id=row["guild_id"],
        channel_id=row["channel_id"],
        thread_id=row["thread_id"],
        plan_message_id=row["plan_message_id"],
        plan=Plan.from_json(row["plan"]),
        state=StoryboardState(row["state"]),
        take=row["take"],
        shot_job_ids=tuple(int(shot[0]) for shot in shots),
        film_job_id=row["film_job_id"],
        error=row["error"],
        take_started_at=row["take_started_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
