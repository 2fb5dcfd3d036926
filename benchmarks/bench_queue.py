"""How fast the job queue is, and what a worker costs beyond the model itself.

    python benchmarks/bench_queue.py                 # defaults, about a minute on a laptop
    python benchmarks/bench_queue.py --jobs 5000 --waiting 10000 --users 1000 --tiny-jobs 5
    python benchmarks/bench_queue.py --broker-jobs 0 # without the broker (no redis-server)

1. Throughput: jobs submitted, claimed and completed through the JobQueue API on one SQLite
   file (the path the bot and workers use: async calls, the writer thread, IMMEDIATE
   transactions). Target: at least 1,000 jobs/s.
2. Picking the next job with ``--waiting`` jobs from ``--users`` users waiting: the fair
   scheduler's query alone, and a whole claim (requeue check, pick, lease). Target: < 5 ms.
3. A worker's overhead per job on the tiny preset: each job's time from claim to done,
   minus the model's own time (denoise and decode, as the generator measures them) and the
   MP4 encode: what is left is the worker's cost (claim, lease, heartbeats, progress
   writes, the moderation check, thread hand-offs, completion).
4. Dispatch through the broker: a real redis-server (Debian's) on a free port, the bot host's
   dispatcher, and ``--broker-workers`` remote worker processes whose clips take no time (a
   few bytes come back): jobs/s from submit to recorded done (target >= 500), and the
   latency the broker adds to one job, beside the same no-op job made by a worker on the
   SQLite file (target < 50 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The redis-server helper lives with the tests, which are not an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobqueue.broker.connection import Broker
from jobqueue.broker.dispatcher import DispatchConfig, Dispatcher
from jobqueue.broker.registry import registered_workers
from jobqueue.broker.remote_worker import RemoteConfig, RemoteWorker
from jobqueue.broker.routing import Capability
from jobqueue.broker.wire import Assignment, Outcome
from jobqueue.db import Database
from jobqueue.eta import request_key
from jobqueue.jobs import JobQueue, QueueLimits
from jobqueue.models import Job, JobKind, JobRequest, JobResult, JobStatus
from jobqueue.progress import JobTracker
from jobqueue.runs import JobRuns
from jobqueue.scheduling import pick_next
from jobqueue.store import count_in_status, next_version
from jobqueue.worker import Worker, WorkerConfig
from pipeline.clip import ClipMaker, MadeClip, ModelChoice
from pipeline.rewrite import PromptRewriter
from tests.redis_server import RedisServer

LEASE = 60.0
RESULT = JobResult(
    result_path="clip.mp4", width=832, height=480, frames=81, fps=16, seed=1, model="m", steps=30
)
ROOMY = QueueLimits(max_waiting_per_user=1_000_000, max_running_per_user=1, max_queue=10_000_000)


async def one_round(path: Path, jobs: int, users: int) -> tuple[float, float]:
    """Seconds to submit ``jobs`` jobs, then to claim and complete them all."""
    queue = await JobQueue.open(path, limits=ROOMY)
    try:
        started = time.perf_counter()
        for index in range(jobs):
            await queue.submit(
                JobKind.CREATE,
                JobRequest(prompt=f"clip {index}"),
                user_id=1 + index % users,
                guild_id=1,
                channel_id=2,
                idempotency_key=f"interaction-{index}",
            )
        submitted = time.perf_counter()
        completed = 0
        while (job := await queue.claim("bench", lease_seconds=LEASE)) is not None:
            await queue.complete(job.id, "bench", RESULT)
            completed += 1
        finished = time.perf_counter()
    finally:
        await queue.close()
    assert completed == jobs, f"only {completed} of {jobs} jobs completed"
    return submitted - started, finished - submitted


async def throughput(folder: Path, jobs: int, users: int, rounds: int) -> None:
    # Each round on a fresh file; the best round is the one least disturbed by whatever
    # else the machine was doing, the median says how much that mattered.
    results = [
        await one_round(folder / f"throughput-{index}.db", jobs, users) for index in range(rounds)
    ]
    submit = sorted(jobs / submit_s for submit_s, _ in results)
    run = sorted(jobs / run_s for _, run_s in results)
    total = sorted(jobs / (submit_s + run_s) for submit_s, run_s in results)
    print(
        f"throughput ({jobs} jobs from {users} users, one SQLite file; best / median of {rounds}):"
    )
    print(f"  submit                 {submit[-1]:6.0f} / {statistics.median(submit):6.0f} jobs/s")
    print(f"  claim + complete       {run[-1]:6.0f} / {statistics.median(run):6.0f} jobs/s")
    print(
        f"  submit+claim+complete  {total[-1]:6.0f} / {statistics.median(total):6.0f} jobs/s"
        "   (target >= 1000)"
    )


def fill_backlog(db: Database, waiting: int, users: int) -> None:
    """``waiting`` queued jobs from ``users`` users, half of whom have been served before."""

    def insert(conn_db: object) -> None:
        import sqlite_utils

        assert isinstance(conn_db, sqlite_utils.Database)
        now = time.time()
        version = next_version(conn_db)
        request = JobRequest(prompt="a backlog clip")
        rows = [
            (
                "create",
                "queued",
                request.to_json(),
                1 + index % users,
                index % 3,
                3,
                now + index * 1e-3,
                now + index * 1e-3,
                request_key(JobKind.CREATE, request),
                version + index,
            )
            for index in range(waiting)
        ]
        conn_db.conn.executemany(
            "INSERT INTO jobs (kind, status, request, user_id, priority, max_attempts,"
            " created_at, updated_at, request_key, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn_db.execute(
            "UPDATE queue_users SET served_seq = user_id, last_served_at = ? WHERE user_id % 2 = 0",
            [now],
        )

    db.write_sync(insert)


def timed_ms(fn: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return times


async def pick_time(folder: Path, waiting: int, users: int) -> None:
    queue = await JobQueue.open(folder / "backlog.db", limits=ROOMY)
    try:
        fill_backlog(queue.db, waiting, users)
        picks = timed_ms(
            lambda: queue.db.write_sync(lambda db: pick_next(db, server_running_limit=1)), 200
        )
        claims: list[float] = []
        claimed: list[Job] = []
        for _ in range(200):
            started = time.perf_counter()
            job = await queue.claim("bench", lease_seconds=LEASE)
            claims.append((time.perf_counter() - started) * 1000)
            assert job is not None
            claimed.append(job)
        waiting_job = max(job.id for job in claimed) + 1
        positions: list[float] = []
        for _ in range(20):
            started = time.perf_counter()
            await queue.position(waiting_job)
            positions.append((time.perf_counter() - started) * 1000)
    finally:
        await queue.close()
    print(f"next job with {waiting} waiting from {users} users:")
    print(f"  scheduler query        {_median_p95(picks)}   (target < 5 ms)")
    print(f"  whole claim            {_median_p95(claims)}")
    print(f"  position + ETA         {_median_p95(positions)}")


def _median_p95(times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(ordered):6.2f} ms, p95 {p95:6.2f} ms"


async def worker_jobs(folder: Path, models_dir: Path, count: int) -> list[Job]:
    """Run ``count`` tiny jobs through a burst worker; return them finished."""
    queue = await JobQueue.open(folder / "worker.db", limits=ROOMY)
    try:
        ids = [
            (
                await queue.submit(
                    JobKind.CREATE,
                    JobRequest(prompt=f"a paper boat, take {index}", seed=index),
                    user_id=1,
                    guild_id=1,
                    channel_id=2,
                )
            ).id
            for index in range(count)
        ]
        config = WorkerConfig(
            clips_dir=folder / "clips",
            models=ModelChoice(
                models_dir=models_dir, t2v_model="tiny", i2v_model="tiny-i2v", device="cpu"
            ),
            lease_seconds=LEASE,
        )
        await Worker(queue.db.path, config=config, worker_id="bench").run(burst=True)
        jobs = [await queue.get(job_id) for job_id in ids]
    finally:
        await queue.close()
    finished = [job for job in jobs if job is not None and job.status is JobStatus.DONE]
    assert len(finished) == count, "some benchmark jobs did not finish"
    return finished


async def worker_overhead(folder: Path, count: int) -> None:
    from pipeline.tiny import ensure_tiny_pipeline

    models_dir = folder / "models"
    ensure_tiny_pipeline(models_dir, "t2v")
    # The first job pays one-time costs (thread pools, first kernels, seeding the blocklist).
    jobs = (await worker_jobs(folder, models_dir, count + 1))[1:]
    walls, model, encode, overhead = [], [], [], []
    for job in jobs:
        assert job.started_at is not None
        assert job.finished_at is not None
        wall = job.finished_at - job.started_at
        model_s = job.timings["load"] + job.timings["denoise"] + job.timings["decode"]
        walls.append(wall)
        model.append(model_s)
        encode.append(job.timings["encode"])
        overhead.append(wall - model_s - job.timings["encode"])
    wall_median = statistics.median(walls)
    overhead_median = statistics.median(overhead)
    print(f"worker overhead per job (tiny preset, {count} jobs, CPU; medians):")
    print(f"  claim to done          {wall_median * 1000:8.1f} ms")
    print(f"  model (denoise+decode) {statistics.median(model) * 1000:8.1f} ms")
    print(f"  MP4 encode             {statistics.median(encode) * 1000:8.1f} ms")
    print(
        f"  worker overhead        {overhead_median * 1000:8.1f} ms"
        f" ({overhead_median / wall_median * 100:.1f} % of the job): claim, lease, progress"
        " writes, prompt check, threads, complete"
    )


# --- dispatch through the broker ---

NOOP_OUTCOME = Outcome(
    "done",
    clip=bytes(2048),
    poster=bytes(256),
    encoded={"size_bytes": 2048, "width": 832, "height": 480, "frames": 81, "fps": 16,
             "quality": 20, "seconds": 0.0},
    request={"model": "m", "prompt": "p", "negative_prompt": "", "aspect": "16:9", "width": 832,
             "height": 480, "frames": 81, "fps": 16, "seed": 1, "steps": 30, "guidance": 5.0,
             "hd": False},
    prompt={"text": "p", "rewritten": None, "note": None},
)  # fmt: skip
"""What a no-op job's worker sends back: a few bytes in place of a clip."""
MODELS = ModelChoice(models_dir=Path("models"), t2v_model="tiny", i2v_model="tiny-i2v")


class NoopRemoteWorker(RemoteWorker):
    """A remote worker whose clips take no time: what is left is the broker's cost."""

    async def _warm_up(self, maker: ClipMaker, rewriter: PromptRewriter) -> None:
        return None

    async def _outcome(
        self,
        saq_job: Any,
        assignment: Assignment,
        scratch: Path,
        maker: ClipMaker,
        rewriter: PromptRewriter,
    ) -> Outcome:
        return NOOP_OUTCOME


async def noop_worker_process(broker_url: str, worker_id: str) -> None:
    """Run one no-op remote worker until SIGTERM (the benchmark starts several)."""
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        config = RemoteConfig(
            WorkerConfig(clips_dir=Path(tmp), models=MODELS, lease_seconds=LEASE),
            Capability(),
            64 * 2**20,
        )
        worker = NoopRemoteWorker(broker_url, config=config, worker_id=worker_id)
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, worker.stop)
        await worker.run()


async def submit_noop(queue: JobQueue, count: int, users: int) -> None:
    for index in range(count):
        await queue.submit(
            JobKind.CREATE,
            JobRequest(prompt=f"no-op clip {index}", enhance=False),
            user_id=1 + index % users,
            guild_id=1,
            channel_id=2,
        )


async def all_done(queue: JobQueue, count: int, *, every_s: float = 0.005) -> None:
    """Once ``count`` jobs are done. Each look is a read on the dispatcher's process, whose CPU
    the throughput run measures: that run looks every 50 ms (1 % of its seconds)."""
    for _ in itertools.count():
        if await queue.db.read(lambda db: count_in_status(db, JobStatus.DONE)) >= count:
            return
        await asyncio.sleep(every_s)


async def wait_registered(broker_url: str, count: int) -> None:
    broker = await Broker(broker_url).open()
    try:
        for _ in itertools.count():
            if len(await registered_workers(broker.registry)) >= count:
                return
            await asyncio.sleep(0.1)
    finally:
        await broker.close()


def run_milliseconds(jobs: list[Job]) -> list[float]:
    """Claim to recorded done of each job."""
    return [
        (job.finished_at - job.started_at) * 1000
        for job in jobs
        if job.finished_at is not None and job.started_at is not None
    ]


async def broker_round(
    folder: Path, broker_url: str, jobs: int, users: int, workers: int
) -> tuple[float, list[Job]]:
    """Seconds from starting the dispatcher to ``jobs`` no-op jobs recorded done."""
    queue = await JobQueue.open(folder / "broker.db", limits=ROOMY)
    try:
        await submit_noop(queue, jobs, users)
        config = DispatchConfig(clips_dir=folder / "clips", models=MODELS, lease_seconds=LEASE)
        started = time.perf_counter()
        async with Dispatcher(queue, broker_url, config=config):
            await all_done(queue, jobs, every_s=0.05)
            elapsed = time.perf_counter() - started
        done = [
            job
            for user in range(1, users + 1)
            for job in await queue.user_jobs(user, active_only=False)
        ]
    finally:
        await queue.close()
    return elapsed, done


async def broker_latency(folder: Path, broker_url: str, count: int) -> list[Job]:
    """``count`` no-op jobs one at a time through one remote worker (the others idle)."""
    queue = await JobQueue.open(folder / "latency.db", limits=ROOMY)
    try:
        config = DispatchConfig(clips_dir=folder / "clips", models=MODELS, lease_seconds=LEASE)
        async with Dispatcher(queue, broker_url, config=config):
            for index in range(count):
                await submit_noop(queue, 1, 1)
                await all_done(queue, index + 1)
        return await queue.user_jobs(1, active_only=False)
    finally:
        await queue.close()


async def local_latency(folder: Path, count: int) -> list[Job]:
    """The same no-op jobs made by a worker on the SQLite file: claim, run, record."""
    queue = await JobQueue.open(folder / "local.db", limits=ROOMY)
    runs = JobRuns(
        queue, "local", clips_dir=folder / "clips", lease_seconds=LEASE,
        progress_interval_s=2.0, guard=None,
    )  # fmt: skip

    async def noop(job: Job, tracker: JobTracker, partial: Path) -> MadeClip:
        return await asyncio.to_thread(NOOP_OUTCOME.made_at, partial)

    try:
        await submit_noop(queue, count, 1)
        while (job := await queue.claim("local", lease_seconds=LEASE)) is not None:
            await runs.run(job, noop)
        return await queue.user_jobs(1, active_only=False)
    finally:
        await queue.close()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far (Linux's /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def broker_dispatch(folder: Path, jobs: int, users: int, workers: int) -> None:
    (folder / "redis").mkdir()
    server = RedisServer(folder / "redis")
    server.start()
    assert server.process is not None
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--noop-worker",
            server.url,
            f"noop-{index}",
            stderr=asyncio.subprocess.DEVNULL,
        )
        for index in range(workers)
    ]
    pids = {"dispatcher": os.getpid(), "redis": server.process.pid}
    pids.update({f"worker {index}": process.pid for index, process in enumerate(processes)})
    try:
        await wait_registered(server.url, workers)
        # A warm-up round: connections, scripts, the blocklist seeded, imports.
        await broker_round(folder / "warm", server.url, 50, 5, workers)
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        elapsed, done = await broker_round(folder / "round", server.url, jobs, users, workers)
        used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
        sequential = (await broker_latency(folder / "one", server.url, 101))[1:]
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            await asyncio.wait_for(process.wait(), 60)
        server.stop()
    local = (await local_latency(folder / "local", 101))[1:]
    broker_run = run_milliseconds(sequential)
    local_run = run_milliseconds(local)
    waited = [(job.started_at - job.created_at) * 1000 for job in sequential if job.started_at]
    added = statistics.median(broker_run) - statistics.median(local_run)
    per_job = {
        "the dispatcher": used["dispatcher"],
        "the workers": sum(seconds for name, seconds in used.items() if name.startswith("worker")),
        "redis-server": used["redis"],
    }
    split = ", ".join(f"{name} {seconds / jobs * 1000:.2f}" for name, seconds in per_job.items())
    print(f"dispatch through Redis (no-op clips, {workers} remote worker processes):")
    print(f"  {jobs} jobs from {users} users   {jobs / elapsed:6.0f} jobs/s   (target >= 500)")
    print(f"  CPU per job (ms)       {split}")
    print(f"  claim to done, remote  {_median_p95(broker_run)}   (one job at a time)")
    print(f"  claim to done, local   {_median_p95(local_run)}   (a worker on the SQLite file)")
    print(f"  latency the broker adds {added:6.1f} ms (medians; target < 50 ms)")
    print(f"  submit to claim        {_median_p95(waited)}   (the dispatcher's poll)")
    assert len(done) == jobs


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=2000, help="jobs for the throughput run")
    parser.add_argument("--waiting", type=int, default=10_000, help="backlog for the pick time")
    parser.add_argument("--users", type=int, default=1000, help="users in the backlog")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the throughput run")
    parser.add_argument("--tiny-jobs", type=int, default=8, help="jobs for the overhead run")
    parser.add_argument("--broker-jobs", type=int, default=2000, help="jobs through the broker")
    parser.add_argument("--broker-workers", type=int, default=4, help="remote worker processes")
    parser.add_argument("--noop-worker", nargs=2, metavar=("URL", "ID"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.noop_worker:
        await noop_worker_process(*args.noop_worker)
        return
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as tmp:
        folder = Path(tmp)
        await throughput(folder, args.jobs, args.users // 10 or 1, args.rounds)
        await pick_time(folder, args.waiting, args.users)
        if args.broker_jobs > 0:
            await broker_dispatch(folder, args.broker_jobs, 100, args.broker_workers)
        if args.tiny_jobs > 0:
            await worker_overhead(folder, args.tiny_jobs)


if __name__ == "__main__":
    asyncio.run(main())
