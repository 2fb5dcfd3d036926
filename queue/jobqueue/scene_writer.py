"""The scene writer: rewrites each job's prompt while the job waits, apart from the GPU loop.

``reelbot rewriter`` and ``python -m jobqueue.scene_cli`` run one; ``reelbot run`` starts
``REELBOT_REWRITERS`` of them beside the workers (:mod:`jobqueue.supervisor`). It loads the
configured rewriter once (the workers then need none of their own), and takes jobs from
:class:`~jobqueue.scenes.Scenes` one at a time: rewrite them as the worker's pipeline would
(:func:`pipeline.clip.write_scene`), screen the rewrite against the job's server's blocklist
(a blocked one becomes the user's own words, with the reason; the audit log records it), and
store the scene. A heartbeat keeps its claims and tells the workers it is alive, so they wait
for its scenes instead of rewriting themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, replace
from pathlib import Path

from jobqueue.clipjob import clip_to_extend, job_model, start_image
from jobqueue.jobs import JobQueue
from jobqueue.models import Job
from jobqueue.moderation import Moderation
from jobqueue.scenes import Scene, Scenes, SceneState
from jobqueue.screening import ModerationScreen
from jobqueue.settings import CoreSettings
from pipeline.clip import ModelChoice, write_scene
from pipeline.errors import ClipFailed
from pipeline.rewrite import PromptRewriter, RewriterConfig, RewriteResult, build_rewriter
from pipeline.text import clean_text

log = logging.getLogger(__name__)

REWRITE_BLOCKED = "the rewritten one is blocked on this server"


@dataclass(frozen=True)
class SceneWriterConfig:
    """What a scene writer needs, as plain values (see :meth:`from_settings`)."""

    clips_dir: Path
    models: ModelChoice
    rewriter: RewriterConfig
    lease_seconds: float = 30.0
    """How long a claim (and the writer's liveness) lasts without a heartbeat."""
    poll_interval_s: float = 0.5

    @classmethod
    def from_settings(cls, settings: CoreSettings) -> SceneWriterConfig:
        return cls(
            clips_dir=settings.clips_dir,
            models=settings.model_choice(),
            rewriter=settings.rewriter_config(),
        )


def default_writer_id() -> str:
    return f"scenes-{socket.gethostname()}-{os.getpid()}"


class SceneWriter:
    """Writes scenes for the queue at ``database_path`` until stopped (or, in burst mode,
    until no job needs one). ``rewriter`` replaces the configured one (tests, benchmarks)."""

    def __init__(
        self,
        database_path: Path,
        *,
        config: SceneWriterConfig,
        rewriter: PromptRewriter | None = None,
        writer_id: str | None = None,
    ) -> None:
        self.database_path = database_path
        self.config = config
        self.writer_id = writer_id or default_writer_id()
        self.scenes_written = 0
        self._given_rewriter = rewriter
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Stop soon: a scene being written is dropped and written again by the next writer."""
        log.info("scene writer %s stopping", self.writer_id)
        self._stopping.set()

    async def run(self, *, burst: bool = False) -> None:
        queue = await JobQueue.open(self.database_path)
        scenes = Scenes(queue.db)
        rewriter = self._given_rewriter or build_rewriter(self.config.rewriter)
        lease = self.config.lease_seconds
        try:
            # Alive from the start: workers wait for its scenes rather than load a model of
            # their own while it loads.
            await scenes.register_writer(self.writer_id, lease_seconds=lease)
            async with _heartbeat(scenes, self.writer_id, lease):
                seconds = await rewriter.warm_up()
                log.info("scene writer %s ready: rewriter in %.1f s", self.writer_id, seconds)
                await self._loop(scenes, rewriter, Moderation(queue.db), burst=burst)
        finally:
            await _quietly(scenes.writer_stopped(self.writer_id), "record that it stopped")
            if self._given_rewriter is None:
                await _quietly(rewriter.aclose(), "close the prompt rewriter")
            await queue.close()

    async def _loop(
        self, scenes: Scenes, rewriter: PromptRewriter, moderation: Moderation, *, burst: bool
    ) -> None:
        lease = self.config.lease_seconds
        while not self._stopping.is_set():
            job = await scenes.claim_next(self.writer_id, lease_seconds=lease)
            if job is not None:
                scene = await self._until_stopped(self.write(job, rewriter, moderation))
                if scene is None:
                    return
                if await scenes.store(self.writer_id, scene):
                    self.scenes_written += 1
                    log.info("job %d: scene written in %.1f s", job.id, scene.seconds)
                else:
                    log.info("job %d: scene no longer wanted (edited, or the job went on)", job.id)
                continue
            if burst:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.config.poll_interval_s)

    async def write(self, job: Job, rewriter: PromptRewriter, moderation: Moderation) -> Scene:
        """The scene of ``job``: the rewrite as the server's blocklist allows it, else the
        user's own words."""
        try:
            rewrite = await write_scene(
                job.request.as_asked(),
                model=job_model(job, self.config.models),
                rewriter=rewriter,
                start_image=start_image(job),
                extend=clip_to_extend(job, self.config.clips_dir),
            )
            return await _screened(job, rewrite, ModerationScreen(moderation, job))
        except ClipFailed as failure:
            # The job fails with this sentence when it runs; there is no scene to show.
            log.info("job %d: no scene (%s)", job.id, failure.detail)
        except Exception:
            # Stored all the same: a job that breaks the writer must not come back every lease.
            log.exception("job %d: writing its scene failed", job.id)
        return Scene(job.id, SceneState.READY)

    async def _until_stopped(self, work: Awaitable[Scene]) -> Scene | None:
        """``work``'s scene, or None if the writer was stopped first (the work is cancelled)."""
        task = asyncio.ensure_future(work)
        stopping = asyncio.create_task(self._stopping.wait())
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None


async def _screened(job: Job, rewrite: RewriteResult, screen: ModerationScreen) -> Scene:
    """``rewrite`` as the job's scene, once its server's blocklist has seen it."""
    own_words = Scene(
        job.id,
        SceneState.READY,
        reason=rewrite.fallback_reason,
        backend=rewrite.backend,
        model=rewrite.model,
        seconds=rewrite.seconds,
    )
    written = clean_text(rewrite.rewritten) if rewrite.enhanced else ""
    if not written:
        return own_words
    request = job.request
    verdict = await screen.check(request.prompt, request.negative_prompt, written)
    if verdict.refusal is not None:
        # The user's own prompt is blocked by now: the job fails when it runs.
        return own_words
    if verdict.rewrite_blocked:
        return replace(own_words, reason=REWRITE_BLOCKED)
    return replace(own_words, text=written)


@contextlib.asynccontextmanager
async def _heartbeat(scenes: Scenes, writer_id: str, lease_seconds: float) -> AsyncIterator[None]:
    async def beat() -> None:
        while True:
            await asyncio.sleep(lease_seconds / 3)
            try:
                await scenes.writer_seen(writer_id, lease_seconds=lease_seconds)
            except Exception:
                # The lease has slack (three beats): try again at the next one.
                log.exception("scene writer %s: heartbeat failed", writer_id)

    task = asyncio.create_task(beat(), name=f"heartbeat-{writer_id}")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _quietly(awaitable: Awaitable[None], what: str) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("scene writer: could not %s", what)
