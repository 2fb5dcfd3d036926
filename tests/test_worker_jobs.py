"""A real worker on the tiny pipelines: clips made, progress reported, failures explained."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from jobqueue.jobs import JobQueue
from jobqueue.models import Job, JobKind, JobRequest, JobStatus, Stage
from jobqueue.worker import Worker, WorkerConfig
from pipeline.clip import OUT_OF_MEMORY
from pipeline.encode import read_frames, read_tags
from pipeline.generator import VideoGenerator

USER = 7
LEASE = 2.0


@pytest.fixture
def worker_config(worker_config: WorkerConfig) -> WorkerConfig:
    return replace(worker_config, lease_seconds=LEASE)


async def submit(
    queue: JobQueue,
    request: JobRequest,
    *,
    kind: JobKind = JobKind.CREATE,
    parent_id: int | None = None,
    user_id: int = USER,
) -> Job:
    return await queue.submit(
        kind, request, user_id=user_id, guild_id=1, channel_id=2, parent_id=parent_id
    )


async def run_burst(queue: JobQueue, config: WorkerConfig) -> Worker:
    worker = Worker(queue.db.path, config=config, worker_id="test-worker")
    await worker.run(burst=True)
    return worker


async def finished(queue: JobQueue, job_id: int) -> Job:
    job = await queue.get(job_id)
    assert job is not None
    return job


async def test_a_worker_makes_the_clip(job_queue: JobQueue, worker_config: WorkerConfig) -> None:
    job = await submit(job_queue, JobRequest(prompt="a red balloon over a city", seed=42))
    await run_burst(job_queue, worker_config)

    done = await finished(job_queue, job.id)
    assert done.status is JobStatus.DONE, done.error_detail
    clip = worker_config.clips_dir / f"{job.id}.mp4"
    assert done.result_path == str(clip)
    assert clip.exists()
    assert clip.with_suffix(".jpg").exists()
    frames, fps = read_frames(clip)
    assert frames.shape == (done.frames, done.height, done.width, 3)
    assert (done.width, done.height, done.frames, done.fps) == (112, 64, 9, 16)
    assert (fps, done.seed, done.model, done.attempts) == (16, 42, "tiny", 1)
    assert "a red balloon over a city" in read_tags(clip)["title"]
    assert {"rewrite", "load", "denoise", "decode", "encode"} <= done.timings.keys()
    assert list((worker_config.clips_dir / ".partial").iterdir()) == []


async def test_progress_arrives_in_order(job_queue: JobQueue, worker_config: WorkerConfig) -> None:
    stream = job_queue.changes(poll_interval=0.01)
    job = await submit(job_queue, JobRequest(prompt="waves on a beach", steps=4))
    worker = Worker(job_queue.db.path, config=worker_config, worker_id="test-worker")
    running = asyncio.create_task(worker.run())
    seen: list[tuple[JobStatus, Stage, int]] = []
    async for change in stream:
        if change.id == job.id:
            seen.append((change.status, change.stage, change.step))
            if change.status.is_terminal:
                break
    worker.stop()
    await running

    assert seen[-1][0] is JobStatus.DONE
    stage_order = [Stage.WAITING, Stage.REWRITING, Stage.GENERATING, Stage.ENCODING]
    stages = [stage_order.index(stage) for status, stage, _ in seen if status is JobStatus.RUNNING]
    assert stages == sorted(stages)
    assert Stage.GENERATING in {stage for _, stage, _ in seen}
    steps = [step for status, stage, step in seen if stage is Stage.GENERATING]
    assert steps == sorted(steps)
    assert steps[-1] == 4


async def test_a_bad_request_fails_with_a_sentence_and_the_worker_goes_on(
    job_queue: JobQueue, worker_config: WorkerConfig
) -> None:
    bad = await submit(job_queue, JobRequest(prompt="a cat", frames=6))
    good = await submit(job_queue, JobRequest(prompt="a dog"), user_id=USER + 1)
    worker = await run_burst(job_queue, worker_config)

    failed = await finished(job_queue, bad.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert failed.error.startswith("6 frames is not possible with tiny")
    assert (await finished(job_queue, good.id)).status is JobStatus.DONE
    assert worker.jobs_run == 2


async def test_out_of_memory_fails_the_job_and_the_worker_goes_on(
    job_queue: JobQueue, worker_config: WorkerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_generate = VideoGenerator.generate
    calls = 0

    def out_of_memory_once(self: VideoGenerator, *args: object, **kwargs: object) -> object:
        # A CPU cannot run out of GPU memory: raise what CUDA raises, on the first job only.
        nonlocal calls
        calls += 1
        if calls == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_generate(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(VideoGenerator, "generate", out_of_memory_once)
    first = await submit(job_queue, JobRequest(prompt="a huge crowd"))
    second = await submit(job_queue, JobRequest(prompt="a small boat"), user_id=USER + 1)
    await run_burst(job_queue, worker_config)

    failed = await finished(job_queue, first.id)
    assert (failed.status, failed.error) == (JobStatus.FAILED, OUT_OF_MEMORY)
    assert failed.error_detail is not None
    assert "out of memory" in failed.error_detail
    assert (await finished(job_queue, second.id)).status is JobStatus.DONE


async def test_animate_starts_from_the_uploaded_image(
    job_queue: JobQueue, worker_config: WorkerConfig, tmp_path: Path
) -> None:
    image_path = tmp_path / "uploads" / "start.png"
    image_path.parent.mkdir()
    Image.new("RGB", (120, 90), (200, 30, 30)).save(image_path)
    job = await submit(
        job_queue,
        JobRequest(prompt="the red square spins", image_path=str(image_path)),
        kind=JobKind.ANIMATE,
    )
    await run_burst(job_queue, worker_config)
    done = await finished(job_queue, job.id)
    assert done.status is JobStatus.DONE, done.error_detail
    assert done.model == "tiny-i2v"


async def test_animate_without_its_image_says_so(
    job_queue: JobQueue, worker_config: WorkerConfig, tmp_path: Path
) -> None:
    job = await submit(
        job_queue,
        JobRequest(prompt="spin", image_path=str(tmp_path / "gone.png")),
        kind=JobKind.ANIMATE,
    )
    await run_burst(job_queue, worker_config)
    failed = await finished(job_queue, job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error == "The start image for this clip could not be read; upload it again."


async def test_extend_continues_the_parent_clip(
    job_queue: JobQueue, worker_config: WorkerConfig
) -> None:
    parent = await submit(job_queue, JobRequest(prompt="a paper boat on a river", seed=1))
    await run_burst(job_queue, worker_config)
    parent_done = await finished(job_queue, parent.id)
    assert parent_done.result_path is not None
    parent_frames, _ = read_frames(Path(parent_done.result_path))

    extend = await submit(
        job_queue,
        JobRequest(prompt="a paper boat on a river", seed=2),
        kind=JobKind.EXTEND,
        parent_id=parent.id,
    )
    await run_burst(job_queue, worker_config)
    done = await finished(job_queue, extend.id)
    assert done.status is JobStatus.DONE, done.error_detail
    assert done.result_path is not None
    frames, _ = read_frames(Path(done.result_path))
    # The new part's first frame is the parent's last, so it is not repeated.
    assert done.frames == len(parent_frames) + 9 - 1
    assert len(frames) == done.frames
    difference = np.abs(frames[0].astype(int) - parent_frames[0].astype(int)).mean()
    assert difference < 8


async def test_cancelling_a_running_job_stops_it(
    job_queue: JobQueue, worker_config: WorkerConfig
) -> None:
    stream = job_queue.changes(poll_interval=0.01)
    job = await submit(job_queue, JobRequest(prompt="a long slow sunset", steps=50))
    worker = Worker(job_queue.db.path, config=worker_config, worker_id="test-worker")
    running = asyncio.create_task(worker.run())
    async for change in stream:
        if change.id == job.id and change.stage is Stage.GENERATING and change.step >= 1:
            await job_queue.cancel(job.id, by_user_id=USER)
        if change.id == job.id and change.status.is_terminal:
            break
    worker.stop()
    await running

    cancelled = await finished(job_queue, job.id)
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.step < 50
    assert not (worker_config.clips_dir / f"{job.id}.mp4").exists()


async def test_stopping_the_worker_returns_its_job_to_the_queue(
    job_queue: JobQueue, worker_config: WorkerConfig
) -> None:
    stream = job_queue.changes(poll_interval=0.01)
    job = await submit(job_queue, JobRequest(prompt="rain on a window", steps=50))
    worker = Worker(job_queue.db.path, config=worker_config, worker_id="test-worker")
    running = asyncio.create_task(worker.run())
    async for change in stream:
        if change.id == job.id and change.step >= 1:
            worker.stop()
            break
    await running

    waiting = await finished(job_queue, job.id)
    assert (waiting.status, waiting.attempts, waiting.worker_id) == (JobStatus.QUEUED, 0, None)
