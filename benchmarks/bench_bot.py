"""How fast the bot acknowledges /create while its worker is busy, through the fake Discord.

    python benchmarks/bench_bot.py                       # 200 calls from 50 users, ~1 minute
    python benchmarks/bench_bot.py --calls 500 --users 100 --rate 100

The real bot, queue and moderation run against tests/fakediscord (REST + gateway on
127.0.0.1); a worker process on the tiny model is kept busy with a long job the whole time.
Calls are sent at ``--rate`` per second from ``--users`` users. The fake measures each
acknowledgement from dispatch to the accepted callback, as Discord's 3 s deadline does.
Targets: p99 under 250 ms, no deadline missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import discord
import yarl
from discord.gateway import DiscordWebSocket

# The fake Discord lives with the tests, which are not an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.client import ReelBot
from bot.settings import Settings
from jobqueue.jobs import JobQueue, QueueLimits
from jobqueue.models import JobKind, JobRequest
from jobqueue.moderation import Moderation
from pipeline.tiny import ensure_tiny_pipeline
from tests.fakediscord import FakeDiscord, InteractionHandle, User

DEADLINE_S = 3.0
TARGET_P99_S = 0.250


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="/create calls to send")
    parser.add_argument("--users", type=int, default=50, help="distinct users sending them")
    parser.add_argument("--rate", type=float, default=50.0, help="calls per second")
    return parser.parse_args()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def start_busy_worker(settings: Settings, queue: JobQueue) -> asyncio.subprocess.Process:
    """A worker process, given a long job first so it is busy while the calls come in."""
    await queue.submit(
        JobKind.CREATE,
        JobRequest(prompt="a long clip that keeps the worker busy", frames=81, steps=50),
        user_id=1,
        guild_id=None,
        channel_id=None,
    )
    env = {
        **os.environ,
        "REELBOT_DATA_DIR": str(settings.data_dir),
        "REELBOT_MODEL": "tiny",
        "REELBOT_I2V_MODEL": "tiny-i2v",
        "REELBOT_REWRITER": "off",
        "REELBOT_DEVICE": "cpu",
    }
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jobqueue", env=env, stderr=asyncio.subprocess.DEVNULL
    )


async def wait_until_busy(queue: JobQueue) -> None:
    async for job in queue.changes(since=0, poll_interval=0.05):
        if job.user_id == 1 and job.step >= 1:
            return


async def send_calls(
    fake: FakeDiscord, users: list[User], calls: int, rate: float
) -> list[InteractionHandle]:
    handles = []
    started = time.perf_counter()
    for index in range(calls):
        await asyncio.sleep(max(0.0, started + index / rate - time.perf_counter()))
        user = users[index % len(users)]
        handles.append(await fake.invoke("create", {"prompt": f"clip {index}"}, user=user))
    return handles


async def measure(args: argparse.Namespace, data_dir: Path) -> None:
    ensure_tiny_pipeline(data_dir / "models", "t2v")
    fake = FakeDiscord()
    await fake.start()
    discord.http.Route.BASE = fake.api_base
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        discord_guild_ids=[fake.guild.id],
        model="tiny",
    )
    limits = QueueLimits(max_waiting_per_user=args.calls, max_queue=args.calls + 10)
    queue = await JobQueue.open(settings.database_path, limits=limits)
    worker = await start_busy_worker(settings, queue)
    users = [fake.add_member(f"user{index}") for index in range(args.users)]
    bot = ReelBot(settings, queue=queue, moderation=Moderation(queue.db), guild_ready_timeout=0)
    try:
        async with fake.running(bot):
            await asyncio.wait_for(wait_until_busy(queue), 120)
            began = time.perf_counter()
            handles = await send_calls(fake, users, args.calls, args.rate)
            sent_s = time.perf_counter() - began
            await asyncio.gather(*(h.response(timeout=60) for h in handles))
            answered_s = time.perf_counter() - began
            report(args, handles, sent_s, answered_s, busy=worker.returncode is None)
    finally:
        worker.send_signal(signal.SIGTERM)
        await worker.wait()
        await queue.close()
        await fake.stop()


def report(
    args: argparse.Namespace,
    handles: list[InteractionHandle],
    sent_s: float,
    answered_s: float,
    *,
    busy: bool,
) -> None:
    latencies = [h.ack_latency for h in handles if h.ack_latency is not None]
    missed = sum(
        1 for h in handles if h.ack_latency is None or h.ack_latency > DEADLINE_S or h.rejections
    )
    p99 = percentile(latencies, 0.99)
    print(
        f"{args.calls} /create calls from {args.users} users in {sent_s:.1f} s"
        f" ({args.calls / sent_s:.0f}/s), worker busy throughout: {busy}"
    )
    print(
        f"acknowledgement latency: median {statistics.median(latencies) * 1000:.1f} ms,"
        f" p99 {p99 * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )
    print(f"missed 3 s deadlines: {missed}")
    print(f"all private answers (job queued, place in line) in {answered_s:.1f} s")
    verdict = "met" if p99 < TARGET_P99_S and missed == 0 else "NOT met"
    print(f"target (p99 < {TARGET_P99_S * 1000:.0f} ms, none missed): {verdict}")


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-bot-") as folder:
        asyncio.run(measure(args, Path(folder)))


if __name__ == "__main__":
    main()
