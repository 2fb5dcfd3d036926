"""The bot's side of the queue: submit, look up, cancel, limits, pause, the change stream."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from jobqueue.jobs import (
    JobNotFound,
    JobQueue,
    LeaseState,
    LimitExceeded,
    NotAllowed,
    QueueError,
    QueueLimits,
    QueuePaused,
)
from jobqueue.models import Job, JobKind, JobRequest, JobResult, JobStatus, Stage

ALICE, BOB, MOD = 101, 202, 909
LEASE = 2.0


async def submit(
    queue: JobQueue, user_id: int = ALICE, prompt: str = "a red balloon", **kwargs: object
) -> Job:
    return await queue.submit(
        JobKind.CREATE,
        JobRequest(prompt=prompt),
        user_id=user_id,
        guild_id=1,
        channel_id=2,
        **kwargs,  # type: ignore[arg-type]
    )


def result_for(job: Job) -> JobResult:
    return JobResult(
        result_path=f"data/clips/{job.id}.mp4",
        width=64,
        height=48,
        frames=9,
        fps=8,
        seed=7,
        model="tiny",
        steps=2,
        rewritten_prompt="A red balloon drifts over a city at dusk.",
    )


async def test_a_job_goes_from_queued_to_done(job_queue: JobQueue) -> None:
    job = await submit(job_queue)
    assert job.status is JobStatus.QUEUED
    assert job.stage is Stage.WAITING
    assert job.request.prompt == "a red balloon"

    claimed = await job_queue.claim("w1", lease_seconds=LEASE)
    assert claimed is not None
    assert (claimed.id, claimed.status, claimed.worker_id, claimed.attempts) == (
        job.id,
        JobStatus.RUNNING,
        "w1",
        1,
    )
    state = await job_queue.report_progress(
        job.id, "w1", lease_seconds=LEASE, stage=Stage.GENERATING, step=1, total_steps=2
    )
    assert state is LeaseState.HELD
    running = await job_queue.get(job.id)
    assert running is not None
    assert (running.stage, running.percent) == (Stage.GENERATING, 50)

    assert await job_queue.complete(job.id, "w1", result_for(job))
    done = await job_queue.get(job.id)
    assert done is not None
    assert done.status is JobStatus.DONE
    assert (done.result_path, done.width, done.height, done.frames, done.fps) == (
        f"data/clips/{job.id}.mp4",
        64,
        48,
        9,
        8,
    )
    assert (done.seed, done.model, done.percent) == (7, "tiny", 100)
    assert done.rewritten_prompt == "A red balloon drifts over a city at dusk."
    assert done.finished_at is not None
    assert done.elapsed is not None


async def test_the_same_interaction_twice_makes_one_job(job_queue: JobQueue) -> None:
    first = await submit(job_queue, idempotency_key="interaction-1")
    again = await submit(job_queue, idempotency_key="interaction-1")
    other = await submit(job_queue, idempotency_key="interaction-2")
    assert again.id == first.id
    assert other.id != first.id
    assert len(await job_queue.user_jobs(ALICE)) == 2


async def test_a_duplicate_is_returned_even_at_the_limit(job_queue: JobQueue) -> None:
    await job_queue.set_limits(user_id=ALICE, waiting=1, running=None, daily=None)
    first = await submit(job_queue, idempotency_key="interaction-1")
    assert (await submit(job_queue, idempotency_key="interaction-1")).id == first.id


async def test_concurrent_duplicates_make_one_job(job_queue: JobQueue) -> None:
    jobs = await asyncio.gather(*(submit(job_queue, idempotency_key="same") for _ in range(5)))
    assert len({job.id for job in jobs}) == 1


async def test_waiting_limit_says_what_to_do(job_queue: JobQueue) -> None:
    for _ in range(5):
        await submit(job_queue)
    with pytest.raises(LimitExceeded) as refused:
        await submit(job_queue)
    assert str(refused.value) == (
        "You already have 5 clips waiting; wait for one to finish or /cancel one."
    )
    await submit(job_queue, user_id=BOB)


async def test_a_started_job_no_longer_counts_as_waiting(job_queue: JobQueue) -> None:
    await job_queue.set_limits(user_id=None, waiting=1, running=None, daily=None)
    await submit(job_queue)
    await job_queue.claim("w1", lease_seconds=LEASE)
    await submit(job_queue)


async def test_daily_limit(job_queue: JobQueue) -> None:
    await job_queue.set_limits(user_id=None, waiting=None, running=None, daily=2)
    first = await submit(job_queue)
    await submit(job_queue)
    with pytest.raises(
        LimitExceeded, match="limit of 2 clips a day; you can make another in 24 hours"
    ):
        await submit(job_queue)
    await job_queue.cancel(first.id, by_user_id=ALICE)
    await submit(job_queue)


async def test_queue_wide_cap(tmp_path: Path) -> None:
    queue = await JobQueue.open(tmp_path / "cap.db", limits=QueueLimits(max_queue=3))
    try:
        for user_id in (1, 2, 3):
            await submit(queue, user_id=user_id)
        with pytest.raises(LimitExceeded, match=r"The queue is full \(3 clips waiting\)"):
            await submit(queue, user_id=4)
    finally:
        await queue.close()


async def test_limits_layer_user_over_server_over_defaults(job_queue: JobQueue) -> None:
    assert await job_queue.limits_for(ALICE) == QueueLimits()
    await job_queue.set_limits(user_id=None, waiting=3, running=None, daily=10)
    await job_queue.set_limits(user_id=ALICE, waiting=8, running=2, daily=None)
    alice = await job_queue.limits_for(ALICE)
    bob = await job_queue.limits_for(BOB)
    assert (alice.max_waiting_per_user, alice.max_running_per_user, alice.max_daily_per_user) == (
        8,
        2,
        10,
    )
    assert (bob.max_waiting_per_user, bob.max_running_per_user, bob.max_daily_per_user) == (
        3,
        1,
        10,
    )
    await job_queue.reset_limits(user_id=ALICE)
    assert (await job_queue.limits_for(ALICE)).max_waiting_per_user == 3


async def test_cancel_a_waiting_job(job_queue: JobQueue) -> None:
    job = await submit(job_queue)
    cancelled = await job_queue.cancel(job.id, by_user_id=ALICE)
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.error == "Cancelled by its owner."
    assert await job_queue.claim("w1", lease_seconds=LEASE) is None
    assert (await job_queue.cancel(job.id, by_user_id=ALICE)).status is JobStatus.CANCELLED


async def test_cancel_a_running_job_asks_its_worker_to_stop(job_queue: JobQueue) -> None:
    job = await submit(job_queue)
    await job_queue.claim("w1", lease_seconds=LEASE)
    requested = await job_queue.cancel(job.id, by_user_id=MOD, is_moderator=True)
    assert requested.status is JobStatus.RUNNING
    assert requested.cancel_requested
    assert await job_queue.heartbeat(job.id, "w1", lease_seconds=LEASE) is (
        LeaseState.CANCEL_REQUESTED
    )
    assert await job_queue.mark_cancelled(job.id, "w1")
    stopped = await job_queue.get(job.id)
    assert stopped is not None
    assert (stopped.status, stopped.error) == (JobStatus.CANCELLED, "Cancelled by a moderator.")


async def test_only_the_owner_or_a_moderator_may_cancel(job_queue: JobQueue) -> None:
    job = await submit(job_queue)
    with pytest.raises(NotAllowed):
        await job_queue.cancel(job.id, by_user_id=BOB)
    with pytest.raises(JobNotFound, match=r"There is no clip #999\."):
        await job_queue.cancel(999, by_user_id=ALICE)


async def test_a_finished_job_cannot_be_cancelled(job_queue: JobQueue) -> None:
    job = await submit(job_queue)
    await job_queue.claim("w1", lease_seconds=LEASE)
    await job_queue.complete(job.id, "w1", result_for(job))
    with pytest.raises(QueueError, match="already finished"):
        await job_queue.cancel(job.id, by_user_id=ALICE)


async def test_pause_refuses_and_holds_jobs_until_resumed(job_queue: JobQueue) -> None:
    job = await submit(job_queue)
    await job_queue.pause()
    assert await job_queue.is_paused()
    with pytest.raises(QueuePaused):
        await submit(job_queue, user_id=BOB)
    assert await job_queue.claim("w1", lease_seconds=LEASE) is None
    assert (await job_queue.stats()).paused
    await job_queue.resume()
    claimed = await job_queue.claim("w1", lease_seconds=LEASE)
    assert claimed is not None
    assert claimed.id == job.id


async def test_clear_cancels_waiting_jobs(job_queue: JobQueue) -> None:
    await submit(job_queue)
    await submit(job_queue)
    await submit(job_queue, user_id=BOB)
    assert await job_queue.clear(user_id=BOB) == 1
    assert await job_queue.clear() == 2
    assert (await job_queue.stats()).waiting == 0
    assert await job_queue.user_jobs(ALICE) == []
    cancelled = await job_queue.user_jobs(ALICE, active_only=False)
    assert [job.error for job in cancelled] == ["Cancelled: a moderator cleared the queue."] * 2


async def test_active_jobs_are_the_waiting_and_running_ones(job_queue: JobQueue) -> None:
    running = await submit(job_queue)
    await job_queue.claim("w1", lease_seconds=LEASE)
    waiting = await submit(job_queue, user_id=BOB)
    cancelled = await submit(job_queue, user_id=MOD)
    await job_queue.cancel(cancelled.id, by_user_id=MOD)
    assert [job.id for job in await job_queue.active_jobs()] == [running.id, waiting.id]


async def test_stats_count_today(job_queue: JobQueue) -> None:
    done = await submit(job_queue)
    await job_queue.claim("w1", lease_seconds=LEASE)
    await job_queue.complete(done.id, "w1", result_for(done))
    failed = await submit(job_queue)
    await job_queue.claim("w1", lease_seconds=LEASE)
    await job_queue.fail(failed.id, "w1", error="Out of memory.", error_detail="trace")
    await submit(job_queue)
    await job_queue.register_worker("w1", model="tiny")
    stats = await job_queue.stats()
    assert (stats.waiting, stats.running, stats.done_today, stats.failed_today) == (1, 0, 1, 1)
    assert stats.avg_seconds is not None
    assert [worker.worker_id for worker in stats.workers] == ["w1"]


async def test_delivery_is_recorded_once(job_queue: JobQueue) -> None:
    job = await submit(job_queue)
    await job_queue.claim("w1", lease_seconds=LEASE)
    await job_queue.complete(job.id, "w1", result_for(job))
    assert [pending.id for pending in await job_queue.undelivered_finished()] == [job.id]
    await job_queue.set_status_message(job.id, 555)
    assert await job_queue.mark_delivered(job.id, 777)
    assert not await job_queue.mark_delivered(job.id, 778)
    assert await job_queue.undelivered_finished() == []
    delivered = await job_queue.get(job.id)
    assert delivered is not None
    assert (delivered.status_message_id, delivered.result_message_id) == (555, 777)


async def test_a_stream_reports_changes_made_after_it_was_opened(job_queue: JobQueue) -> None:
    running = await submit(job_queue)
    await job_queue.claim("w1", lease_seconds=LEASE)
    untouched = await submit(job_queue, user_id=BOB)
    stream = job_queue.changes(poll_interval=0.01)
    await job_queue.report_progress(running.id, "w1", lease_seconds=LEASE, step=1, total_steps=2)
    await job_queue.complete(running.id, "w1", result_for(running))
    added = await submit(job_queue, user_id=MOD)

    first, second = await anext(stream), await anext(stream)
    # Changed twice before the first poll: reported once, as it is now.
    assert (first.id, first.status) == (running.id, JobStatus.DONE)
    assert (second.id, second.status) == (added.id, JobStatus.QUEUED)
    assert untouched.id not in (first.id, second.id)


async def test_changes_report_every_update_while_following(job_queue: JobQueue) -> None:
    job = await submit(job_queue)
    await job_queue.claim("w1", lease_seconds=LEASE)
    stream = job_queue.changes(poll_interval=0.01)
    received: list[int] = []

    async def follow() -> None:
        async for change in stream:
            received.append(change.step)
            if change.step == 20:
                return

    follower = asyncio.create_task(follow())
    for step in range(1, 21):
        await job_queue.report_progress(job.id, "w1", lease_seconds=LEASE, step=step)
        await asyncio.sleep(0)
    await asyncio.wait_for(follower, timeout=10)
    assert received == sorted(received)
    assert received[-1] == 20
