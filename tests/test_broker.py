"""More than one machine: remote workers take jobs from the bot's host through a real Redis.

The bot's host keeps the SQLite record, the fair order and the limits; a
``reelbot worker --broker`` here is a process of its own with its own data folder (no shared
disk, no SQLite), or, where a test needs no process of its own, an in-process one. Hosts die
(kill -9), come back late, get cancelled jobs, serve only some models; the broker goes away and
comes back. Every clip is posted once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import saq
from PIL import Image
from saq.job import Status

from jobqueue.broker.connection import Broker, worker_queue_name
from jobqueue.broker.dispatcher import ABORT_AGAIN_S, Dispatcher, abort_due
from jobqueue.broker.records import dispatch_key
from jobqueue.broker.remote_worker import BrokerLease, RemoteConfig, RemoteWorker
from jobqueue.broker.routing import Capability
from jobqueue.broker.wire import Outcome
from jobqueue.jobs import JobQueue, QueueLimits
from jobqueue.leases import LeaseState
from jobqueue.models import Job, JobKind, JobRequest, JobStatus, Stage
from jobqueue.worker import Worker
from tests.bot_harness import Reel, worker_config
from tests.broker_harness import (
    BROKER,
    MAX_TRANSFER_BYTES,
    dispatch_config,
    start_remote_worker,
    worker_data_dir,
)
from tests.postgres_server import PostgresServer
from tests.quick_jobs import small_clip
from tests.redis_server import RedisServer

LEASE_S = 3.0
WAIT_S = 300.0
LONG_STEPS = 50

StartWorker = Callable[..., subprocess.Popen[bytes]]
broker_mode = pytest.mark.parametrize("reel_mode", [BROKER], indirect=True)


@pytest.fixture
def start_worker(broker_url: str, tmp_path: Path, tiny_models_dir: Path) -> Iterator[StartWorker]:
    """``reelbot worker --broker`` processes, each in a data folder of its own."""
    started: list[subprocess.Popen[bytes]] = []

    def start(worker_id: str, **env: str) -> subprocess.Popen[bytes]:
        folder = worker_data_dir(tmp_path / "hosts" / worker_id, tiny_models_dir)
        process = start_remote_worker(broker_url, worker_id, folder, lease_seconds=LEASE_S, **env)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
async def dispatcher(reel: Reel, broker_url: str) -> AsyncIterator[Dispatcher]:
    """The bot host's dispatcher over ``reel``'s queue (workers come from ``start_worker``)."""
    config = dispatch_config(
        reel.settings.clips_dir, reel.settings.models_dir, lease_seconds=LEASE_S
    )
    async with Dispatcher(reel.queue, broker_url, config=config, moderation=reel.moderation) as d:
        yield d


async def eventually(predicate: Callable[[], object], *, within_s: float = WAIT_S) -> None:
    for _ in range(int(within_s / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("it did not happen in time")


async def job_change(queue: JobQueue, wanted: Callable[[Job], bool]) -> Job:
    async with asyncio.timeout(WAIT_S):
        async for job in queue.changes(since=0, poll_interval=0.05):
            if wanted(job):
                return job
    raise AssertionError("the change stream ended")


def generating(job_id: int) -> Callable[[Job], bool]:
    """The job's clip is being rendered (its steps reach the bot every few seconds only)."""
    return lambda job: job.id == job_id and job.stage is Stage.GENERATING


async def submit_long(reel: Reel, prompt: str) -> Job:
    """A clip that takes seconds even on a fast CPU (long enough to stop its host while it
    renders), asked for in #general as /create would."""
    fake = reel.fake
    return await reel.queue.submit(
        JobKind.CREATE,
        JobRequest(prompt=prompt, frames=81, steps=LONG_STEPS, hd=True, enhance=False),
        user_id=fake.alice.id,
        guild_id=fake.guild.id,
        channel_id=fake.general.id,
    )


def clips_of(reel: Reel, job_id: int) -> int:
    return sum(f"job:{job_id}:retry" in m.custom_ids() for m in reel.clip_messages())


def status_of(reel: Reel, job: Job, text: str) -> Callable[[], bool]:
    def shown() -> bool:
        return any(
            f"#{job.id} for" in m.content and text in m.content
            for m in reel.fake.channel_messages(reel.fake.general)
        )

    return shown


async def test_two_remote_hosts_take_jobs_in_the_fair_order_within_limits(
    tmp_path: Path, broker_url: str, start_worker: StartWorker, tiny_models_dir: Path
) -> None:
    bot_dir = tmp_path / "bot"
    queue = await JobQueue.open(bot_dir / "reelbot.db", limits=QueueLimits(max_running_per_user=1))
    changes = queue.changes(since=0, poll_interval=0.02)
    waiting = {1: 3, 2: 2, 3: 1}
    for user_id, count in waiting.items():
        for index in range(count):
            await queue.submit(
                JobKind.CREATE,
                JobRequest(prompt=f"clip {index} of user {user_id}", enhance=False),
                user_id=user_id,
                guild_id=1,
                channel_id=2,
            )
    config = dispatch_config(bot_dir / "clips", tiny_models_dir, lease_seconds=LEASE_S)
    hosts = [start_worker("host-a"), start_worker("host-b")]
    started: list[Job] = []
    running: dict[int, int] = {}
    done: list[Job] = []
    try:
        async with Dispatcher(queue, broker_url, config=config), asyncio.timeout(WAIT_S):
            async for job in changes:
                if job.status is JobStatus.RUNNING and job.id not in running:
                    assert job.user_id not in running.values(), "a user's limit is one at once"
                    running[job.id] = job.user_id
                    started.append(job)
                elif job.status is JobStatus.DONE:
                    running.pop(job.id, None)
                    done.append(job)
                    if len(done) == sum(waiting.values()):
                        break
    finally:
        for host in hosts:
            host.send_signal(signal.SIGTERM)
        await queue.close()
    assert [host.wait(timeout=60) for host in hosts] == [0, 0]
    # Round-robin: every user with a job waiting is served once before anyone again.
    rounds = [started[:3], started[3:5], started[5:]]
    assert [sorted(job.user_id for job in turn) for turn in rounds] == [[1, 2, 3], [1, 2], [1]]
    assert {job.worker_id for job in done} == {"host-a", "host-b"}
    for job in done:
        assert job.result_path == str(bot_dir / "clips" / f"{job.id}.mp4")
        assert await asyncio.to_thread(Path(job.result_path).is_file)
    for host in ("host-a", "host-b"):
        folder = tmp_path / "hosts" / host
        assert not list(folder.rglob("*.db")), "a remote host has no database"
        assert not list(folder.rglob("*.mp4")), "a remote host keeps no clip once it is sent"


async def test_a_job_whose_host_is_killed_is_finished_by_another_and_posted_once(
    reel: Reel, dispatcher: Dispatcher, start_worker: StartWorker
) -> None:
    doomed = start_worker("doomed")
    async with reel.bot_running():
        job = await submit_long(reel, "a long pan across mountains")
        await job_change(reel.queue, generating(job.id))
        doomed.send_signal(signal.SIGKILL)
        assert doomed.wait() == -signal.SIGKILL
        survivor = start_worker("survivor")
        await reel.clip_message(job.id)
        finished = await reel.delivered(job.id)
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=60) == 0
    assert (finished.status, finished.attempts, finished.worker_id) == (
        JobStatus.DONE,
        2,
        "survivor",
    )
    assert clips_of(reel, job.id) == 1


async def test_a_late_clip_from_a_host_thought_dead_is_thrown_away(
    reel: Reel,
    dispatcher: Dispatcher,
    start_worker: StartWorker,
    broker_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sleeper = start_worker("sleeper")
    async with reel.bot_running():
        job = await submit_long(reel, "a slow tide")
        await job_change(reel.queue, generating(job.id))
        # The host freezes (a swapping machine, a cut cable): its heartbeat stops.
        sleeper.send_signal(signal.SIGSTOP)
        await job_change(reel.queue, lambda j: j.id == job.id and j.status is JobStatus.QUEUED)
        other = start_worker("other")
        await reel.clip_message(job.id)
        finished = await reel.delivered(job.id)
        with caplog.at_level(logging.WARNING, logger="jobqueue.broker.dispatcher"):
            # Its finished clip for attempt 1 reaches the broker after all, as the host
            # would send it once back on the network.
            clip = await asyncio.to_thread(lambda: small_clip(tmp_path).read_bytes())
            await late_answer(broker_url, job.id, "sleeper", clip)
            await eventually(lambda: dispatcher.late_answers_discarded == 1)
        sleeper.send_signal(signal.SIGCONT)
        for host in (sleeper, other):
            host.send_signal(signal.SIGTERM)
            assert host.wait(timeout=60) == 0
    assert (finished.attempts, finished.worker_id) == (2, "other")
    after = await reel.queue.get(job.id)
    assert after is not None
    assert (after.status, after.worker_id, after.result_path) == (
        JobStatus.DONE,
        "other",
        finished.result_path,
    )
    assert clips_of(reel, job.id) == 1
    assert f"job {job.id}: discarded a late clip from worker sleeper" in caplog.text
    stale = await reel.queue.db.read(
        lambda db: db.execute(
            "SELECT COUNT(*) FROM broker_dispatches WHERE state = 'stale'"
        ).fetchone()[0]
    )
    assert stale == 0, "the late answer's attempt is forgotten once thrown away"


async def late_answer(broker_url: str, job_id: int, worker_id: str, clip: bytes) -> None:
    """Attempt 1's answer arrives: a finished clip, written through SAQ as its host does."""
    broker = await Broker(broker_url).open()
    try:
        queue = await broker.queue(worker_queue_name(worker_id))
        found = await queue.job(dispatch_key(job_id, 1))
        assert found is not None
        outcome = Outcome("done", clip=clip, poster=b"poster")
        await queue.finish(found, Status.COMPLETE, result=outcome.to_result(limit=2**20))
    finally:
        await broker.close()


@broker_mode
async def test_cancel_stops_a_remote_job_at_its_next_step(reel: Reel, broker_url: str) -> None:
    fake = reel.fake
    async with reel.bot_running(), reel.worker_running():
        job = await submit_long(reel, "a long slow dolly shot")
        running = await job_change(reel.queue, generating(job.id))
        handle = await fake.invoke("cancel", {"job": job.id}, user=fake.alice)
        await handle.response()
        cancelled = await job_change(
            reel.queue, lambda j: j.id == job.id and j.status is JobStatus.CANCELLED
        )
        await fake.wait_for(status_of(reel, job, "was cancelled"), timeout=WAIT_S)
        # The worker is free again at once: the next clip does not wait for the first.
        _, second = await reel.create("a quick one")
        await reel.clip_message(second.id)
    assert running.worker_id == "remote-worker-0"
    assert cancelled.finished_at is not None
    # SAQ's abort reached the worker, which stopped the job instead of finishing it.
    assert await saq_status(broker_url, "remote-worker-0", job.id) is Status.ABORTED
    assert clips_of(reel, job.id) == 0


async def test_a_remote_job_sees_its_abort_on_its_next_progress_write(broker_url: str) -> None:
    """The cancel does not depend on SAQ's task cancellation reaching the pipeline: one that
    lands in a broker call is lost, and the clip would render to its end."""
    broker = await Broker(broker_url).open()
    try:
        queue = await broker.queue(worker_queue_name("aborted-host"))
        job = await queue.enqueue("make_clip", key="reelbot-job-7-attempt-1")
        assert job is not None
        lease = BrokerLease(job)
        assert await lease.heartbeat(7, "aborted-host", lease_seconds=LEASE_S) is LeaseState.HELD
        await job.abort("cancelled from Discord")
        state = await lease.report_progress(
            7, "aborted-host", lease_seconds=LEASE_S, stage=Stage.GENERATING, step=3
        )
        assert state is LeaseState.CANCEL_REQUESTED
    finally:
        await broker.close()


async def saq_status(broker_url: str, worker_id: str, job_id: int) -> Status | None:
    broker = await Broker(broker_url).open()
    try:
        queue = await broker.queue(worker_queue_name(worker_id))
        found = await queue.job(dispatch_key(job_id, 1))
        return None if found is None else found.status
    finally:
        await broker.close()


async def test_a_job_no_worker_can_run_waits_says_so_and_fails_in_time(
    reel: Reel, broker_url: str, tmp_path: Path, tiny_models_dir: Path
) -> None:
    fake = reel.fake
    config = dataclasses.replace(
        dispatch_config(reel.settings.clips_dir, tiny_models_dir, lease_seconds=LEASE_S),
        unserved_wait_s=4.0,
    )
    only_i2v = RemoteWorker(
        broker_url,
        config=RemoteConfig(
            dataclasses.replace(
                worker_config(reel.settings),
                clips_dir=worker_data_dir(tmp_path / "i2v-host", tiny_models_dir) / "clips",
            ),
            Capability.serving(["tiny-i2v"]),
            MAX_TRANSFER_BYTES,
        ),
        worker_id="i2v-host",
    )
    async with (
        reel.bot_running(),
        Dispatcher(reel.queue, broker_url, config=config, moderation=reel.moderation),
        running(only_i2v),
    ):
        _, job = await reel.create("a red kite")
        await fake.wait_for(
            status_of(reel, job, "Waiting for a GPU worker that can make tiny clips."), timeout=30
        )
        await fake.wait_for(status_of(reel, job, "failed: No GPU worker here can make tiny"), 30)
        failed = await reel.queue.get(job.id)
        assert failed is not None
        assert failed.error == (
            "No GPU worker here can make tiny clips, and none came within 4 seconds; try another"
            " model or a smaller clip, or ask the server's owner."
        )
        # A worker beside the bot serves any model: the next job is made there.
        _, served = await reel.create("a blue kite")
        async with reel.worker_running():
            await reel.clip_message(served.id)
            stats = await admin_stats(reel)
    done = await reel.queue.get(served.id)
    assert done is not None
    assert (done.worker_id, done.wait_note) == ("test-worker-0", None)
    assert "i2v-host (remote, " in stats
    assert ": tiny-i2v · idle" in stats
    assert "test-worker-0 (local, " in stats
    assert ": any model · " in stats


async def admin_stats(reel: Reel) -> str:
    handle = await reel.fake.invoke("admin stats", {}, user=reel.fake.carol)
    embed = (await handle.response()).embeds[0]
    return str(next(field["value"] for field in embed["fields"] if field["name"] == "Workers"))


@broker_mode
async def test_the_broker_going_away_and_coming_back_loses_nothing(
    reel: Reel, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    fake = reel.fake
    async with reel.bot_running(), reel.worker_running(lease_seconds=LEASE_S):
        _, before = await reel.create("a clip before the outage")
        await reel.clip_message(before.id)
        redis_server.stop()
        with caplog.at_level(logging.WARNING, logger="jobqueue.broker.dispatcher"):
            _, first = await reel.create("a lantern", user=fake.alice)
            _, second = await reel.create("a lighthouse", user=fake.bob)
            for job in (first, second):
                await fake.wait_for(status_of(reel, job, "Waiting for a GPU worker."), 30)
        unreachable = [r for r in caplog.records if "is unreachable" in r.getMessage()]
        redis_server.start()
        for job in (first, second):
            await reel.clip_message(job.id)
            await reel.delivered(job.id)
    assert len(unreachable) == 1, "one line a minute while the broker is down"
    for job in (before, first, second):
        finished = await reel.queue.get(job.id)
        assert finished is not None
        assert (finished.status, finished.attempts) == (JobStatus.DONE, 1)
        assert clips_of(reel, job.id) == 1


async def test_a_restarted_bot_host_picks_up_the_job_its_worker_is_making(
    reel: Reel, broker_url: str, tmp_path: Path, tiny_models_dir: Path
) -> None:
    config = dispatch_config(reel.settings.clips_dir, tiny_models_dir, lease_seconds=LEASE_S)
    async with reel_remote(reel, broker_url, tmp_path, tiny_models_dir):
        async with Dispatcher(reel.queue, broker_url, config=config):
            job = await submit_long(reel, "a crane lifting a boat")
            await job_change(reel.queue, generating(job.id))
        # The bot host is down; the clip goes on being made elsewhere.
        async with Dispatcher(reel.queue, broker_url, config=config):
            done = await job_change(
                reel.queue, lambda j: j.id == job.id and j.status is JobStatus.DONE
            )
    assert (done.attempts, done.worker_id) == (1, "remote")
    assert await asyncio.to_thread(Path(done.result_path or "").is_file)


async def test_jobs_and_their_pictures_travel_through_postgres_too(
    reel: Reel, postgres_server: PostgresServer, tmp_path: Path, tiny_models_dir: Path
) -> None:
    url = postgres_server.url
    config = dispatch_config(reel.settings.clips_dir, tiny_models_dir, lease_seconds=LEASE_S)
    picture = await asyncio.to_thread(noise_picture, tmp_path / "start.png")
    requests = [
        (JobKind.CREATE, JobRequest(prompt="a red kite", enhance=False)),
        (JobKind.ANIMATE, JobRequest(prompt="it moves", image_path=str(picture), enhance=False)),
    ]
    jobs = [
        await reel.queue.submit(kind, request, user_id=user, guild_id=1, channel_id=2)
        for user, (kind, request) in enumerate(requests, start=1)
    ]
    async with (
        Dispatcher(reel.queue, url, config=config),
        reel_remote(reel, url, tmp_path, tiny_models_dir),
    ):
        for job in jobs:
            await job_change(reel.queue, lambda j, job=job: j.id == job.id and j.status.is_terminal)
    finished = [await reel.queue.get(job.id) for job in jobs]
    assert [(job.status, job.worker_id) for job in finished if job] == [
        (JobStatus.DONE, "remote"),
        (JobStatus.DONE, "remote"),
    ]


async def test_inputs_over_the_brokers_cap_fail_with_a_sentence(
    reel: Reel, broker_url: str, tmp_path: Path, tiny_models_dir: Path
) -> None:
    picture = await asyncio.to_thread(noise_picture, tmp_path / "big.png")
    config = dataclasses.replace(
        dispatch_config(reel.settings.clips_dir, tiny_models_dir, lease_seconds=LEASE_S),
        max_transfer_bytes=2**20,
    )
    job = await reel.queue.submit(
        JobKind.ANIMATE,
        JobRequest(prompt="the picture moves", image_path=str(picture), enhance=False),
        user_id=1,
        guild_id=1,
        channel_id=2,
    )
    async with (
        Dispatcher(reel.queue, broker_url, config=config),
        reel_remote(reel, broker_url, tmp_path, tiny_models_dir),
    ):
        failed = await job_change(
            reel.queue, lambda j: j.id == job.id and j.status is JobStatus.FAILED
        )
    size = (await asyncio.to_thread(picture.stat)).st_size / 2**20
    assert failed.error == (
        f"The start picture is {size:.1f} MB, more than the 1.0 MB this server sends between"
        " its machines; ask the server's owner to raise REELBOT_BROKER_MAX_BYTES."
    )


def noise_picture(path: Path) -> Path:
    """A 1024x1024 PNG of noise: about 3 MB that do not compress."""
    Image.frombytes("RGB", (1024, 1024), os.urandom(1024 * 1024 * 3)).save(path)
    return path


def reel_remote(
    reel: Reel, broker_url: str, tmp_path: Path, models_dir: Path
) -> contextlib.AbstractAsyncContextManager[RemoteWorker | Worker]:
    folder = worker_data_dir(tmp_path / "remote", models_dir)
    config = dataclasses.replace(worker_config(reel.settings), clips_dir=folder / "clips")
    capability = Capability.serving(["tiny", "tiny-i2v"])
    return running(
        RemoteWorker(
            broker_url,
            config=RemoteConfig(config, capability, MAX_TRANSFER_BYTES),
            worker_id="remote",
        )
    )


@contextlib.asynccontextmanager
async def running(worker: RemoteWorker | Worker) -> AsyncIterator[RemoteWorker | Worker]:
    """A remote (or local) worker in this process until the block ends."""
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, WAIT_S)


def test_a_cancel_undone_by_a_progress_write_is_sent_again() -> None:
    """SAQ's update writes the whole job back: an abort can be undone by the worker's next
    progress write, so a job still running a second after its abort is aborted again."""
    job = saq.Job("make_clip", key="reelbot-job-9-attempt-1", status=Status.ACTIVE)
    now = time.monotonic()
    assert abort_due(job, aborting=False, aborted_at=0.0)
    assert not abort_due(job, aborting=True, aborted_at=now), "not again at once"
    assert abort_due(job, aborting=True, aborted_at=now - ABORT_AGAIN_S)
    job.status = Status.ABORTING
    assert not abort_due(job, aborting=True, aborted_at=now - ABORT_AGAIN_S)
