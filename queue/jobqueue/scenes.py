"""Scenes written ahead: each waiting job's rewritten prompt, ready before a GPU takes the job.

A scene writer (:mod:`jobqueue.scene_writer`, a process of its own with its own language
model) takes the jobs that need a scene in the order they will run: running jobs whose
worker waits for theirs first, then waiting jobs in the fair order (round by round of the
round-robin, see scheduling.py). It claims each under a lease, so a writer that dies loses
nothing: the claim runs out and a writer takes the job again. A stored scene has passed the
server's blocklist; a blocked rewrite is stored as the user's own words, with the reason.
Until a worker claims the job, its owner may replace the scene (:meth:`Scenes.edit`).

A worker that claims a job asks :func:`scene_for_worker`: a settled scene is handed to the
pipeline, which then skips the rewrite; one being written is waited for while a scene writer
is alive; otherwise the worker marks the scene not wanted (no writer will take it up) and
rewrites the prompt itself, as it does when no scene writer runs at all.

Storing or editing a scene is a change of its job (its ``version`` advances), so the bot's
change stream shows it at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlite_utils

from jobqueue.db import Database
from jobqueue.errors import JobNotFound, NotAllowed, QueueError
from jobqueue.models import Job, JobStatus
from jobqueue.sql import IS_QUEUED, status_is
from jobqueue.store import fetch_job, rows, update_job
from pipeline.errors import GenerationCancelled
from pipeline.rewrite import RewriteResult
from pipeline.text import MAX_PROMPT_CHARS, checked_text

log = logging.getLogger(__name__)

OWNER = "owner"
"""``backend`` of a scene its job's owner wrote."""


class SceneState(StrEnum):
    WRITING = "writing"
    READY = "ready"
    EDITED = "edited"
    NOT_WANTED = "not_wanted"
    """The job went ahead without a scene written ahead (its worker rewrote the prompt)."""


SETTLED = frozenset({SceneState.READY, SceneState.EDITED})


@dataclass(frozen=True)
class Scene:
    """A job's scene: ``text`` is what the video model gets (None: the user's own words, for
    ``reason`` when there is one)."""

    job_id: int
    state: SceneState
    text: str | None = None
    reason: str | None = None
    backend: str | None = None
    model: str | None = None
    seconds: float = 0.0

    @property
    def settled(self) -> bool:
        return self.state in SETTLED

    @property
    def edited(self) -> bool:
        return self.state is SceneState.EDITED

    def as_rewrite(self, prompt: str) -> RewriteResult:
        """The scene as the rewrite :meth:`pipeline.clip.ClipMaker.make_clip` takes."""
        return RewriteResult(
            original=prompt,
            rewritten=self.text if self.text is not None else prompt,
            enhanced=self.text is not None,
            fallback_reason=None if self.text is not None else self.reason,
            backend=self.backend or "",
            model=self.model,
            seconds=self.seconds,
            cached=False,
        )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Scene:
        return cls(
            job_id=row["job_id"],
            state=SceneState(row["state"]),
            text=row["scene"],
            reason=row["reason"],
            backend=row["backend"],
            model=row["model"],
            seconds=row["seconds"],
        )


def checked_scene(text: str) -> str:
    """A scene someone typed, cleaned, within the prompt's limits (it is the model's prompt);
    raises :class:`~pipeline.errors.InvalidRequest` with a sentence."""
    return checked_text(text, "scene", limit=MAX_PROMPT_CHARS, required=True)


class Scenes:
    """The scenes of jobs and the processes writing them, on the queue's database."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    # --- reading ---

    async def get(self, job_id: int) -> Scene | None:
        """The job's scene; None when nobody has taken it on yet."""
        return await self.db.read(lambda db: _scene(db, job_id))

    async def of_jobs(self, job_ids: Collection[int]) -> dict[int, Scene]:
        """The scenes of ``job_ids`` that have one, in one read."""
        wanted = list(job_ids)
        if not wanted:
            return {}

        def read(db: sqlite_utils.Database) -> dict[int, Scene]:
            marks = ", ".join("?" for _ in wanted)
            found = rows(db, f"SELECT * FROM scenes WHERE job_id IN ({marks})", wanted)
            return {row["job_id"]: Scene.from_row(row) for row in found}

        return await self.db.read(read)

    async def writers_alive(self) -> int:
        """How many scene writers are running (their lease is current)."""
        return await self.db.read(lambda db: _writers_alive(db, now=self.clock()))

    # --- a scene writer's side ---

    async def register_writer(self, writer_id: str, *, lease_seconds: float) -> None:
        now = self.clock()
        await self.db.write(
            lambda db: db.execute(
                "INSERT INTO scene_writers (writer_id, pid, host, started_at, lease_expires_at)"
                " VALUES (:writer_id, :pid, :host, :now, :expires)"
                " ON CONFLICT (writer_id) DO UPDATE SET pid = excluded.pid,"
                " host = excluded.host, started_at = excluded.started_at,"
                " lease_expires_at = excluded.lease_expires_at, stopped_at = NULL",
                {
                    "writer_id": writer_id,
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "now": now,
                    "expires": now + lease_seconds,
                },
            )
        )

    async def writer_seen(self, writer_id: str, *, lease_seconds: float) -> None:
        """The writer's heartbeat: it stays alive and keeps the scenes it is writing."""
        expires = self.clock() + lease_seconds

        def renew(db: sqlite_utils.Database) -> None:
            params = {"writer_id": writer_id, "expires": expires}
            db.execute(
                "UPDATE scene_writers SET lease_expires_at = :expires WHERE writer_id = :writer_id",
                params,
            )
            db.execute(
                "UPDATE scenes SET lease_expires_at = :expires"
                f" WHERE writer_id = :writer_id AND state = '{SceneState.WRITING.value}'",
                params,
            )

        await self.db.write(renew)

    async def writer_stopped(self, writer_id: str) -> None:
        """The writer stops: the scenes it had not finished go back to be written."""

        def stopped(db: sqlite_utils.Database) -> None:
            db.execute(
                "UPDATE scene_writers SET stopped_at = ? WHERE writer_id = ?",
                [self.clock(), writer_id],
            )
            db.execute(
                f"DELETE FROM scenes WHERE writer_id = ? AND state = '{SceneState.WRITING.value}'",
                [writer_id],
            )

        await self.db.write(stopped)

    async def claim_next(self, writer_id: str, *, lease_seconds: float) -> Job | None:
        """Take the next job needing a scene (see the module docstring); None if none does."""
        now = self.clock()

        def claim(db: sqlite_utils.Database) -> Job | None:
            found = db.execute(_NEXT_TO_WRITE, {"now": now}).fetchone()
            if found is None:
                return None
            job_id = int(found[0])
            db.execute(
                "INSERT INTO scenes (job_id, state, writer_id, lease_expires_at, updated_at)"
                " VALUES (:job_id, :writing, :writer_id, :expires, :now)"
                " ON CONFLICT (job_id) DO UPDATE SET state = excluded.state,"
                " writer_id = excluded.writer_id, lease_expires_at = excluded.lease_expires_at,"
                " updated_at = excluded.updated_at",
                {
                    "job_id": job_id,
                    "writing": SceneState.WRITING.value,
                    "writer_id": writer_id,
                    "expires": now + lease_seconds,
                    "now": now,
                },
            )
            return fetch_job(db, job_id)

        return await self.db.write(claim)

    async def store(self, writer_id: str, scene: Scene) -> bool:
        """Store a written scene; False (nothing changed) if the claim was lost meanwhile
        (its owner edited the scene, or the job went ahead without it)."""
        now = self.clock()

        def store(db: sqlite_utils.Database) -> bool:
            cursor = db.execute(
                "UPDATE scenes SET state = :state, scene = :scene, reason = :reason,"
                " backend = :backend, model = :model, seconds = :seconds, writer_id = NULL,"
                " lease_expires_at = NULL, updated_at = :now"
                " WHERE job_id = :job_id AND writer_id = :writer_id"
                f" AND state = '{SceneState.WRITING.value}'",
                {
                    "state": SceneState.READY.value,
                    "scene": scene.text,
                    "reason": scene.reason,
                    "backend": scene.backend,
                    "model": scene.model,
                    "seconds": scene.seconds,
                    "now": now,
                    "job_id": scene.job_id,
                    "writer_id": writer_id,
                },
            )
            if cursor.rowcount != 1:
                return False
            update_job(db, scene.job_id, {}, now=now)
            return True

        return await self.db.write(store)

    # --- the job's owner and its worker ---

    async def edit(self, job_id: int, *, user_id: int, text: str) -> Scene:
        """Replace the scene of ``user_id``'s waiting job with ``text`` (a checked scene).

        Raises :class:`JobNotFound`, :class:`NotAllowed` (someone else's job: moderators
        included, a scene is its owner's) or :class:`QueueError` (the job has started).
        """
        now = self.clock()

        def edit(db: sqlite_utils.Database) -> Scene:
            job = fetch_job(db, job_id)
            if job is None:
                raise JobNotFound(f"There is no clip #{job_id}.")
            if job.user_id != user_id:
                raise NotAllowed(
                    f"Only the person who asked for clip #{job_id} can edit its scene."
                )
            if job.status is not JobStatus.QUEUED:
                raise QueueError(too_late(job))
            db.execute(
                _SET_SCENE,
                {
                    "job_id": job_id,
                    "state": SceneState.EDITED.value,
                    "scene": text,
                    "backend": OWNER,
                    "now": now,
                },
            )
            update_job(db, job_id, {}, now=now)
            edited = _scene(db, job_id)
            assert edited is not None
            return edited

        return await self.db.write(edit)

    async def give_up(self, job_id: int) -> Scene | None:
        """The settled scene if there is one by now; else mark it not wanted (no writer takes
        it up, one writing it stores nothing) and return None."""
        now = self.clock()

        def give_up(db: sqlite_utils.Database) -> Scene | None:
            scene = _scene(db, job_id)
            if scene is not None and scene.settled:
                return scene
            db.execute(
                "INSERT INTO scenes (job_id, state, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (job_id) DO UPDATE SET state = excluded.state,"
                " writer_id = NULL, lease_expires_at = NULL, updated_at = excluded.updated_at",
                [job_id, SceneState.NOT_WANTED.value, now],
            )
            return None

        return await self.db.write(give_up)

    async def waiting_on(self, job_id: int) -> tuple[Scene | None, int]:
        """The job's scene and how many scene writers are alive, in one read."""

        def read(db: sqlite_utils.Database) -> tuple[Scene | None, int]:
            return _scene(db, job_id), _writers_alive(db, now=self.clock())

        return await self.db.read(read)


def too_late(job: Job) -> str:
    """Why the scene of ``job`` can no longer be changed."""
    if job.status is JobStatus.RUNNING:
        return f"Clip #{job.id} has already started; its scene can no longer be changed."
    return f"Clip #{job.id} has already finished; its scene can no longer be changed."


async def scene_for_worker(
    scenes: Scenes,
    job: Job,
    *,
    wait_s: float,
    should_stop: Callable[[], bool],
    on_wait: Callable[[], Awaitable[None]],
    poll_s: float = 0.1,
) -> RewriteResult | None:
    """The scene written ahead for ``job``, as the pipeline's ``scene``; None: the worker
    rewrites the prompt itself (or the job asked for no rewrite).

    Waits (calling ``on_wait`` once first) while the scene is being written or still to be
    written and a scene writer is alive, for at most ``wait_s``. Raises GenerationCancelled
    when ``should_stop`` says so meanwhile.
    """
    if not job.request.enhance:
        return None
    deadline = time.monotonic() + wait_s
    waiting = False
    while True:
        scene, writers = await scenes.waiting_on(job.id)
        if scene is not None and scene.settled:
            return scene.as_rewrite(job.request.prompt)
        if scene is not None and scene.state is SceneState.NOT_WANTED:
            return None
        if should_stop():
            raise GenerationCancelled()
        if writers == 0:
            break
        if time.monotonic() >= deadline:
            log.warning("job %d: no scene after %.0f s; rewriting its prompt here", job.id, wait_s)
            break
        if not waiting:
            waiting = True
            await on_wait()
        await asyncio.sleep(poll_s)
    settled = await scenes.give_up(job.id)
    return settled.as_rewrite(job.request.prompt) if settled is not None else None


def _scene(db: sqlite_utils.Database, job_id: int) -> Scene | None:
    found = rows(db, "SELECT * FROM scenes WHERE job_id = ?", [job_id])
    return Scene.from_row(found[0]) if found else None


def _writers_alive(db: sqlite_utils.Database, *, now: float) -> int:
    row = db.execute(
        "SELECT COUNT(*) FROM scene_writers WHERE stopped_at IS NULL AND lease_expires_at > ?",
        [now],
    ).fetchone()
    return int(row[0])


_JOB_WAITING = status_is(JobStatus.QUEUED, column="j.status")
_JOB_RUNNING = status_is(JobStatus.RUNNING, column="j.status")
_NEXT_TO_WRITE = f"""
    WITH waiting AS (
        SELECT id, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY priority DESC, id) AS round
        FROM jobs WHERE {IS_QUEUED}
    )
    SELECT j.id FROM jobs AS j
    LEFT JOIN scenes AS s ON s.job_id = j.id
    LEFT JOIN waiting AS w ON w.id = j.id
    LEFT JOIN queue_users AS u ON u.user_id = j.user_id
    WHERE ({_JOB_WAITING} OR {_JOB_RUNNING}) AND json_extract(j.request, '$.enhance')
      AND (s.job_id IS NULL
           OR (s.state = '{SceneState.WRITING.value}' AND s.lease_expires_at < :now))
    ORDER BY {_JOB_RUNNING} DESC, w.round, u.served_seq, u.head_priority DESC, u.head_id, j.id
    LIMIT 1
"""
"""The next job whose scene nobody is writing: running jobs first (their worker waits),
then waiting ones in the fair order, one round of it at a time."""


def inherit_scene(
    db: sqlite_utils.Database, job_id: int, *, text: str | None, backend: str, now: float
) -> bool:
    """Give the waiting (or just claimed) job ``job_id`` a scene decided elsewhere: a Render
    or Vary keeps its drafts' scene (``text``; None: the user's own words). A scene writer's
    claim gives way, as to an owner's edit; a settled scene or a job that went ahead without
    one is kept. False when nothing changed.

    It runs in a transaction already open, the one that adds the job, so no worker or scene
    writer ever sees the job without its scene."""
    cursor = db.execute(
        _SET_SCENE + f" WHERE scenes.state = '{SceneState.WRITING.value}'",
        {
            "job_id": job_id,
            "state": SceneState.READY.value,
            "scene": text,
            "backend": backend,
            "now": now,
        },
    )
    if cursor.rowcount != 1:
        return False
    update_job(db, job_id, {}, now=now)
    return True


_SET_SCENE = (
    "INSERT INTO scenes (job_id, state, scene, backend, updated_at)"
    " VALUES (:job_id, :state, :scene, :backend, :now)"
    " ON CONFLICT (job_id) DO UPDATE SET state = excluded.state,"
    " scene = excluded.scene, reason = NULL, backend = excluded.backend,"
    " model = NULL, seconds = 0, writer_id = NULL, lease_expires_at = NULL,"
    " updated_at = excluded.updated_at"
)
"""A job's scene decided outside the scene writers (its owner's, or its drafts'); any claim
on it is dropped."""
