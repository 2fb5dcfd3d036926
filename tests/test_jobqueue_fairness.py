"""Round-robin across users, then priority, then age; and the positions users are shown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jobqueue.jobs import JobQueue, QueueLimits
from jobqueue.models import Job, JobKind, JobRequest, JobResult

LEASE = 60.0


@pytest.fixture
async def job_queue(tmp_path: Path) -> AsyncIterator[JobQueue]:
    queue = await JobQueue.open(
        tmp_path / "reelbot.db", limits=QueueLimits(max_waiting_per_user=60)
    )
    yield queue
    await queue.close()


async def submit(queue: JobQueue, user_id: int, name: str, priority: int = 0) -> Job:
    return await queue.submit(
        JobKind.CREATE,
        JobRequest(prompt=name),
        user_id=user_id,
        guild_id=1,
        channel_id=2,
        priority=priority,
    )


async def run_one(queue: JobQueue) -> str | None:
    """Start and finish the next job, as a single worker would; return its prompt."""
    job = await queue.claim("worker", lease_seconds=LEASE)
    if job is None:
        return None
    done = JobResult(
        result_path="x.mp4", width=8, height=8, frames=1, fps=8, seed=1, model="tiny", steps=1
    )
    assert await queue.complete(job.id, "worker", done)
    return job.request.prompt


async def drain(queue: JobQueue) -> list[str]:
    order = []
    while (name := await run_one(queue)) is not None:
        order.append(name)
    return order


async def submit_mixed_backlog(queue: JobQueue) -> list[Job]:
    alice, bob, carol, dave = 1, 2, 3, 4
    return [
        await submit(queue, alice, "a1"),
        await submit(queue, alice, "a2"),
        await submit(queue, bob, "b1"),
        await submit(queue, alice, "a3"),
        await submit(queue, carol, "c1"),
        await submit(queue, bob, "b2"),
        await submit(queue, carol, "c2", priority=5),
        await submit(queue, alice, "a4"),
        await submit(queue, dave, "d1", priority=1),
    ]


# Everyone is new, so users go by their best job: carol's priority-5 c2, dave's priority-1
# d1, then alice and bob by age. From then on each round serves the user served longest ago.
MIXED_ORDER = ["c2", "d1", "a1", "b1", "c1", "a2", "b2", "a3", "a4"]


async def test_mixed_backlog_runs_in_the_fair_order(job_queue: JobQueue) -> None:
    await submit_mixed_backlog(job_queue)
    assert await drain(job_queue) == MIXED_ORDER


async def test_positions_predict_the_order(job_queue: JobQueue) -> None:
    jobs = await submit_mixed_backlog(job_queue)
    positions = {}
    for job in jobs:
        position = await job_queue.position(job.id)
        assert position is not None
        assert position.waiting_total == len(jobs)
        positions[job.request.prompt] = position.position
    assert sorted(positions, key=positions.__getitem__) == MIXED_ORDER
    assert sorted(positions.values()) == list(range(1, len(jobs) + 1))


async def test_one_busy_user_does_not_delay_ten_others(job_queue: JobQueue) -> None:
    for index in range(50):
        await submit(job_queue, 1, f"busy{index}")
    for user_id in range(10, 20):
        await submit(job_queue, user_id, f"user{user_id}")
    order = [await run_one(job_queue) for _ in range(12)]
    assert order == ["busy0", *(f"user{user_id}" for user_id in range(10, 20)), "busy1"]


async def test_a_newcomer_goes_before_users_already_served(job_queue: JobQueue) -> None:
    for index in range(3):
        await submit(job_queue, 1, f"a{index}")
        await submit(job_queue, 2, f"b{index}")
    assert [await run_one(job_queue) for _ in range(2)] == ["a0", "b0"]
    late = await submit(job_queue, 3, "late")
    position = await job_queue.position(late.id)
    assert position is not None
    assert position.position == 1
    assert await run_one(job_queue) == "late"


async def test_a_user_at_their_running_limit_waits(job_queue: JobQueue) -> None:
    await submit(job_queue, 1, "a1")
    await submit(job_queue, 1, "a2")
    await submit(job_queue, 2, "b1")
    first = await job_queue.claim("w1", lease_seconds=LEASE)
    second = await job_queue.claim("w2", lease_seconds=LEASE)
    assert first is not None
    assert second is not None
    assert [first.request.prompt, second.request.prompt] == ["a1", "b1"]
    assert await job_queue.claim("w3", lease_seconds=LEASE) is None

    await job_queue.set_limits(user_id=1, waiting=None, running=2, daily=None)
    third = await job_queue.claim("w3", lease_seconds=LEASE)
    assert third is not None
    assert third.request.prompt == "a2"


async def test_an_eta_appears_once_jobs_have_finished(job_queue: JobQueue) -> None:
    first = await submit(job_queue, 1, "first")
    position = await job_queue.position(first.id)
    assert position is not None
    assert position.eta_seconds is None
    await run_one(job_queue)
    await submit(job_queue, 2, "second")
    waiting = await submit(job_queue, 3, "third")
    position = await job_queue.position(waiting.id)
    assert position is not None
    assert position.position == 2
    assert position.eta_seconds is not None
    assert position.eta_seconds >= 0


async def test_a_cancelled_job_gives_its_place_to_the_users_next(job_queue: JobQueue) -> None:
    first = await submit(job_queue, 1, "a1")
    await submit(job_queue, 1, "a2")
    await submit(job_queue, 2, "b1")
    await job_queue.cancel(first.id, by_user_id=1)
    assert await drain(job_queue) == ["a2", "b1"]


async def test_a_job_back_from_a_dead_worker_keeps_its_owners_turn(job_queue: JobQueue) -> None:
    await submit(job_queue, 1, "a1")
    await submit(job_queue, 2, "b1")
    crashed = await job_queue.claim("dead", lease_seconds=0.0)
    assert crashed is not None
    assert crashed.request.prompt == "a1"
    # Alice was served when a1 started, so Bob goes next; then a1 runs again.
    assert await drain(job_queue) == ["b1", "a1"]
