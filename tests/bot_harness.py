"""The bot's end-to-end harness: the real bot, queue, moderation and tiny-model worker,
connected to the fake Discord. Also small builders for unit tests (``make_job``)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import imageio_ffmpeg

from bot.client import ReelBot
from bot.settings import Settings
from jobqueue.broker.remote_worker import RemoteWorker
from jobqueue.jobs import JobQueue
from jobqueue.models import Job, JobKind, JobRequest, JobStatus, Stage
from jobqueue.moderation import Moderation
from jobqueue.worker import Worker, WorkerConfig
from pipeline.clip import ModelChoice
from pipeline.preview import DEFAULT_PREVIEW, PreviewOptions
from pipeline.rewrite.config import RewriterConfig
from pipeline.safety import SafetyConfig
from tests.broker_harness import remote_capacity
from tests.fakediscord import FakeDiscord, InteractionHandle, Message, User

CLIP_TIMEOUT_S = 120.0
JOB_NUMBER = re.compile(r"#(\d+)")


def make_job(**changes: object) -> Job:
    now = time.time()
    job = Job(
        id=7, kind=JobKind.CREATE, status=JobStatus.DONE, request=JobRequest(prompt="a cat"),
        user_id=42, guild_id=1, channel_id=2, parent_id=None, idempotency_key=None, priority=0,
        attempts=1, max_attempts=3, created_at=now - 30, updated_at=now, started_at=now - 20,
        finished_at=now, stage=Stage.ENCODING, step=2, total_steps=2, worker_id="w",
        lease_expires_at=None, cancel_requested=False, rewritten_prompt="a fluffy cat",
        rewrite_note=None, seed=1234, model="tiny", result_path="data/clips/7.mp4", width=112,
        height=64, frames=9, fps=16, error=None, error_detail=None, status_message_id=None,
        result_message_id=None, delivered_at=None,
    )  # fmt: skip
    return replace(job, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class VideoFacts:
    codec: str
    frames: int
    width: int
    height: int


def probe_mp4(data: bytes, folder: Path) -> VideoFacts:
    """What ffmpeg reads back from a posted MP4 (it must decode to the end)."""
    path = folder / "posted.mp4"
    path.write_bytes(data)
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    frames = sum(1 for _ in reader)
    width, height = meta["size"]
    return VideoFacts(codec=meta["codec"], frames=frames, width=width, height=height)


def worker_config(
    settings: Settings,
    *,
    lease_seconds: float = 30.0,
    signing: bool = False,
    safety: bool = False,
    rewriter: RewriterConfig | None = None,
    preview: PreviewOptions | None = DEFAULT_PREVIEW,
) -> WorkerConfig:
    """A worker on the tiny models, polling fast, with prompt rewriting off unless
    ``rewriter`` says how; with ``signing``, clips carry content credentials signed with the
    data folder's own key; with ``safety``, clips go through the packaged output safety
    classifiers; ``preview`` says how often running jobs get a live preview."""
    return WorkerConfig(
        clips_dir=settings.clips_dir,
        models=ModelChoice(
            models_dir=settings.models_dir,
            t2v_model="tiny",
            i2v_model="tiny-i2v",
            end_frame_model="tiny-flf2v",
            device="cpu",
        ),
        lease_seconds=lease_seconds,
        progress_interval_s=0.2,
        poll_interval_s=0.1,
        signing=settings.signing_identity() if signing else None,
        safety=SafetyConfig() if safety else None,
        safety_policy=settings.safety_policy(),
        rewriter=rewriter or RewriterConfig(backend="off"),
        preview=preview,
    )


@dataclass
class Reel:
    """Everything an end-to-end test drives: the fake Discord and reelbot's real parts."""

    fake: FakeDiscord
    settings: Settings
    queue: JobQueue
    moderation: Moderation
    bot: ReelBot | None = None
    workers: list[Worker | RemoteWorker] = field(default_factory=list)
    broker_url: str | None = None
    """Set: workers run on "another host", through the broker (tests/broker_harness.py)."""

    @contextlib.asynccontextmanager
    async def bot_running(self) -> AsyncIterator[ReelBot]:
        """A freshly built bot connected to the fake until the block ends (a restart is two)."""
        bot = ReelBot(
            self.settings, queue=self.queue, moderation=self.moderation, guild_ready_timeout=0.05
        )
        async with self.fake.running(bot):
            self.bot = bot
            try:
                yield bot
            finally:
                self.bot = None

    @contextlib.asynccontextmanager
    async def worker_running(
        self,
        *,
        lease_seconds: float = 30.0,
        signing: bool = False,
        safety: bool = False,
        rewriter: RewriterConfig | None = None,
        preview: PreviewOptions | None = DEFAULT_PREVIEW,
    ) -> AsyncIterator[Worker | RemoteWorker]:
        """An in-process worker on the tiny models until the block ends (see
        :func:`worker_config` for ``signing``, ``safety``, ``rewriter`` and ``preview``); with
        a broker, a remote worker with its own data folder and the dispatcher that feeds it."""
        config = worker_config(
            self.settings,
            lease_seconds=lease_seconds,
            signing=signing,
            safety=safety,
            rewriter=rewriter,
            preview=preview,
        )
        if self.broker_url is not None:
            worker_id = f"remote-worker-{len(self.workers)}"
            async with remote_capacity(
                self.queue,
                self.moderation,
                self.broker_url,
                config,
                worker_id=worker_id,
                worker_dir=self.settings.data_dir.parent / worker_id,
            ) as remote:
                self.workers.append(remote)
                yield remote
            return
        worker = Worker(
            self.settings.database_path,
            config=config,
            worker_id=f"test-worker-{len(self.workers)}",
        )
        self.workers.append(worker)
        task = asyncio.create_task(worker.run())
        try:
            yield worker
        finally:
            worker.stop()
            await asyncio.wait_for(task, CLIP_TIMEOUT_S)

    async def create(
        self, prompt: str, *, user: User | None = None, **options: Any
    ) -> tuple[InteractionHandle, Job]:
        """Run /create and return its interaction and the job it queued."""
        handle = await self.fake.invoke(
            "create", {"prompt": prompt, **options}, user=user or self.fake.alice
        )
        return handle, await self.job_of(handle)

    async def job_of(self, handle: InteractionHandle) -> Job:
        """The job an interaction queued, from the private answer ("Queued your clip #12")."""
        answer = await self.fake.wait_for(
            lambda: handle.original if handle.original and "#" in handle.original.content else None,
            timeout=10,
        )
        match = JOB_NUMBER.search(answer.content)
        assert match is not None, answer.content
        job = await self.queue.get(int(match.group(1)))
        assert job is not None
        return job

    async def clip_message(self, job_id: int) -> Message:
        """The clip message of ``job_id`` once it is posted."""
        marker = f"job:{job_id}:retry"
        return await self.fake.wait_for_message(
            self.fake.general,
            lambda message: marker in message.custom_ids(),
            timeout=CLIP_TIMEOUT_S,
        )

    async def delivered(self, job_id: int) -> Job:
        """The job once it has ended and the bot has shown its outcome."""
        async with asyncio.timeout(CLIP_TIMEOUT_S):
            while True:
                job = await self.queue.get(job_id)
                if job is not None and job.delivered_at is not None:
                    return job
                await asyncio.sleep(0.1)

    async def started(self, job_id: int) -> Job:
        """The job once a worker has claimed it."""
        async with asyncio.timeout(CLIP_TIMEOUT_S):
            async for job in self.queue.changes(since=0, poll_interval=0.02):
                if job.id == job_id and job.status is not JobStatus.QUEUED:
                    return job
        raise AssertionError(f"the change stream ended before job {job_id} started")

    def clip_messages(self) -> list[Message]:
        """Every posted clip in #general."""
        return [
            message
            for message in self.fake.channel_messages(self.fake.general)
            if any(custom_id.startswith("job:") for custom_id in message.custom_ids())
        ]
