"""Rewrite ahead with a real worker on the tiny models: jobs that waited find their scene
written, so the worker goes from one clip to the next without waiting for a language model;
an edited scene is what the model renders."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from jobqueue.jobs import JobQueue
from jobqueue.models import Job, JobKind, JobRequest, JobStatus
from jobqueue.scene_writer import SceneWriter
from jobqueue.scenes import Scenes, SceneState
from jobqueue.worker import Worker, WorkerConfig
from pipeline.encode import read_frames, read_tags
from tests.fakellm import scene_for
from tests.scene_writing import SlowRewriter, scene_writer_running

USER = 7
SLOW_S = 2.0
"""A rewrite takes this long: far longer than the worker's own steps between two clips."""
WAIT_S = 120.0


@pytest.fixture
def worker_config(worker_config: WorkerConfig) -> WorkerConfig:
    return replace(worker_config, lease_seconds=10.0, rewriter_at_start=False, scene_wait_s=WAIT_S)


def scene_writer(
    queue: JobQueue, config: WorkerConfig, rewriter: SlowRewriter
) -> contextlib.AbstractAsyncContextManager[SceneWriter]:
    return scene_writer_running(
        queue.db.path, clips_dir=config.clips_dir, models=config.models, rewriter=rewriter
    )


async def submit(queue: JobQueue, prompt: str, *, seed: int | None = None) -> Job:
    return await queue.submit(
        JobKind.CREATE, JobRequest(prompt=prompt, seed=seed), user_id=USER, guild_id=1, channel_id=2
    )


async def written(scenes: Scenes, jobs: list[Job]) -> None:
    async with asyncio.timeout(WAIT_S):
        while True:
            found = await scenes.of_jobs([job.id for job in jobs])
            if len(found) == len(jobs) and all(scene.settled for scene in found.values()):
                return
            await asyncio.sleep(0.05)


async def finished(queue: JobQueue, jobs: list[Job]) -> list[Job]:
    done = [await queue.get(job.id) for job in jobs]
    assert all(job is not None and job.status is JobStatus.DONE for job in done), done
    return [job for job in done if job is not None]


def idle_gaps(jobs: list[Job]) -> list[float]:
    """Seconds the worker spent between one clip's end and the next clip's generation:
    from recording one job done to starting the next, plus the next one's wait for its
    prompt (its ``rewrite`` time)."""
    ordered = sorted(jobs, key=lambda job: job.started_at or 0.0)
    return [
        (after.started_at or 0.0) - (before.finished_at or 0.0) + after.timings["rewrite"]
        for before, after in itertools.pairwise(ordered)
    ]


async def test_waiting_jobs_run_back_to_back_with_their_scenes_and_an_edit(
    job_queue: JobQueue, worker_config: WorkerConfig
) -> None:
    scenes = Scenes(job_queue.db)
    # The last two ask for the same clip; only the second one's scene is edited.
    jobs = [
        await submit(job_queue, "a red balloon over a city"),
        await submit(job_queue, "a kite on a hill", seed=5),
        await submit(job_queue, "a kite on a hill", seed=5),
    ]
    edited = "A paper boat on a rain-soaked street, seen from above."
    async with scene_writer(job_queue, worker_config, SlowRewriter(SLOW_S)):
        await written(scenes, jobs)
        await scenes.edit(jobs[2].id, user_id=USER, text=edited)
        own = SlowRewriter(SLOW_S)
        worker = Worker(job_queue.db.path, config=worker_config, worker_id="gpu", rewriter=own)
        await worker.run(burst=True)

    done = await finished(job_queue, jobs)
    assert own.asked == []  # the worker never waited for a rewrite
    assert [job.rewritten_prompt for job in done] == [
        scene_for("a red balloon over a city"), scene_for("a kite on a hill"), edited,
    ]  # fmt: skip
    assert edited in read_tags(Path(done[2].result_path or ""))["comment"]
    unedited, _ = read_frames(Path(done[1].result_path or ""))
    rendered, _ = read_frames(Path(done[2].result_path or ""))
    assert not np.array_equal(unedited, rendered)  # same seed and prompt, another scene
    gaps = idle_gaps(done)
    # Far under one rewrite; benchmarks/bench_rewrite_ahead.py measures it (milliseconds).
    assert max(gaps) < SLOW_S / 2, gaps


async def test_a_job_reaching_an_idle_worker_waits_for_its_own_scene_once(
    job_queue: JobQueue, worker_config: WorkerConfig
) -> None:
    own = SlowRewriter(0.0)
    worker = Worker(job_queue.db.path, config=worker_config, worker_id="gpu", rewriter=own)
    writer_rewriter = SlowRewriter(SLOW_S / 2)
    async with scene_writer(job_queue, worker_config, writer_rewriter):
        running = asyncio.create_task(worker.run())
        try:
            job = await submit(job_queue, "a lighthouse at dusk")
            async with asyncio.timeout(WAIT_S):
                async for change in job_queue.changes(since=0, poll_interval=0.02):
                    if change.id == job.id and change.status.is_terminal:
                        break
        finally:
            worker.stop()
            await running

    (done,) = await finished(job_queue, [job])
    assert own.asked == []  # it waited for the writer rather than load a model of its own
    assert writer_rewriter.asked == ["a lighthouse at dusk"]
    assert done.rewritten_prompt == scene_for("a lighthouse at dusk")
    assert done.timings["rewrite"] >= SLOW_S / 2 * 0.9


async def test_without_a_scene_writer_the_worker_writes_the_scene_itself(
    job_queue: JobQueue, worker_config: WorkerConfig
) -> None:
    job = await submit(job_queue, "a tide pool")
    own = SlowRewriter(0.0)
    config = replace(worker_config, rewriter_at_start=True)
    await Worker(job_queue.db.path, config=config, worker_id="gpu", rewriter=own).run(burst=True)

    (done,) = await finished(job_queue, [job])
    assert own.asked == ["a tide pool"]
    assert done.rewritten_prompt == scene_for("a tide pool")
    scene = await Scenes(job_queue.db).get(job.id)
    assert scene is not None
    assert scene.state is SceneState.NOT_WANTED
