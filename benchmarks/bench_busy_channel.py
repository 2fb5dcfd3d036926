"""One busy channel under Discord's rate limits: how soon clips appear and requesters see
their place.

    python benchmarks/bench_busy_channel.py                   # both runs, about 3 minutes
    python benchmarks/bench_busy_channel.py --quick 0         # only the 30 two-second clips

The real bot, queue and moderation run against tests/fakediscord with its realistic limits
(5 sends and 5 edits per 5 s per channel, 1 reaction per 0.25 s, 5 edits per 2 s per
interaction token, 50 requests/s in all). The benchmark measures the bot, not a model: jobs
are completed directly through JobQueue (tests/quick_jobs.py, one small real MP4), so it
decides when each job is done.

1. ``--quick`` /create calls (100) from ``--users`` users (20) within a few seconds, a job
   finished every ``--quick-every`` seconds (0.25): the channel's send budget is the floor,
   and the run prints how close to it the last clip came.
2. ``--slow`` /create calls (30), a job finished every ``--slow-every`` seconds (2).
   Targets: p90 done -> posted under 3 s, every requester shown their place within 5 s, no
   clip lost or posted twice.

Each run prints job-done -> clip-posted latency (median, p90, max), requests and 429s per
route, and how soon each requester first saw their place in line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import discord
import yarl
from discord.gateway import DiscordWebSocket

# The fake Discord lives with the tests, which are not an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.client import ReelBot
from bot.settings import Settings
from jobqueue.jobs import JobQueue, QueueLimits
from jobqueue.models import Job
from jobqueue.moderation import Moderation
from tests.bot_harness import JOB_NUMBER
from tests.fakediscord import FakeDiscord, InteractionHandle, Message, User
from tests.fakediscord.ratelimits import REALISTIC
from tests.quick_jobs import QuickFinisher, small_clip

SEND_WINDOW = REALISTIC.send
TARGET_P90_S = 3.0
TARGET_PLACE_S = 5.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20, help="distinct requesters")
    parser.add_argument("--quick", type=int, default=100, help="/create calls in the quick run")
    parser.add_argument("--quick-every", type=float, default=0.25, help="s between quick jobs")
    parser.add_argument("--slow", type=int, default=30, help="/create calls in the slow run")
    parser.add_argument("--slow-every", type=float, default=2.0, help="s between slow jobs")
    return parser.parse_args()


@dataclass
class Run:
    """What one run saw, on the fake's clock."""

    jobs: list[Job]
    asked_at: dict[int, float]
    done_at: dict[int, float]
    handles: dict[int, InteractionHandle]
    began: float


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


def first_time(times: list[float], states: list[str], needle: str) -> float | None:
    """When a message first showed ``needle``: ``states`` are its versions, ``times`` theirs."""
    for at, state in zip(times, states, strict=True):
        if needle in state:
            return at
    return None


def versions(message: Message) -> tuple[list[float], list[str]]:
    states = [json.dumps(revision) for revision in message.revisions]
    current = json.dumps([message.content, message.components])
    return [message.created_at, *message.edit_times], [*states, current]


def clip_posted_at(fake: FakeDiscord, job_id: int) -> list[float]:
    """When each message carrying the job's clip (its buttons) appeared: one, if all is well."""
    marker = f"job:{job_id}:retry"
    found = []
    for message in fake.world.messages.values():
        at = first_time(*versions(message), marker)
        if at is not None and message.author.id == fake.bot_user.id:
            found.append(at)
    return found


def clips_in(fake: FakeDiscord) -> int:
    return sum(
        1
        for message in fake.channel_messages(fake.general)
        if any(custom_id.startswith("job:") for custom_id in message.custom_ids())
    )


def place_seen_at(handle: InteractionHandle) -> float | None:
    """When the requester's private reply first named their job (with its place in line)."""
    original = handle.original
    if original is None:
        return None
    times, states = versions(original)
    for at, state in zip(times, states, strict=True):
        if JOB_NUMBER.search(state) and ("in line" in state or "starting" in state):
            return at
    return None


async def run_channel(
    args: argparse.Namespace, folder: Path, *, calls: int, every: float, name: str
) -> None:
    fake = FakeDiscord(rate_limits=REALISTIC)
    await fake.start()
    discord.http.Route.BASE = fake.api_base
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    data_dir = folder / name
    data_dir.mkdir()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        discord_guild_ids=[fake.guild.id],
    )
    limits = QueueLimits(max_waiting_per_user=calls, max_queue=calls + 10)
    queue = await JobQueue.open(settings.database_path, limits=limits)
    finisher = QuickFinisher(queue, small_clip(data_dir))
    users = [fake.add_member(f"{name}-user{index}") for index in range(args.users)]
    bot = ReelBot(settings, queue=queue, moderation=Moderation(queue.db), guild_ready_timeout=0)
    try:
        async with fake.running(bot):
            run = await drive(fake, queue, finisher, users, calls=calls, every=every)
            await wait_for_clips(fake, run)
            report(name, fake, run, every=every)
    finally:
        await queue.close()
        await fake.stop()


async def drive(
    fake: FakeDiscord,
    queue: JobQueue,
    finisher: QuickFinisher,
    users: list[User],
    *,
    calls: int,
    every: float,
) -> Run:
    clock = fake.world.clock
    began = clock.now()
    asked: list[tuple[float, InteractionHandle]] = []
    for index in range(calls):
        user = users[index % len(users)]
        at = clock.now()
        asked.append((at, await fake.invoke("create", {"prompt": f"clip {index}"}, user=user)))
        await asyncio.sleep(2.0 / calls)  # all of them within about two seconds
    handles: dict[int, InteractionHandle] = {}
    asked_at: dict[int, float] = {}
    for at, handle in asked:
        answer = await handle.response(timeout=30)
        match = JOB_NUMBER.search(answer.content)
        assert match is not None, answer.content
        handles[int(match.group(1))] = handle
        asked_at[int(match.group(1))] = at
    done_at: dict[int, float] = {}
    jobs = []
    while (job := await finisher.finish_next()) is not None:
        done_at[job.id] = clock.now()
        jobs.append(job)
        await asyncio.sleep(every)
    return Run(jobs, asked_at, done_at, handles, began)


async def wait_for_clips(fake: FakeDiscord, run: Run) -> None:
    # Checked on every change the fake sees: cheap, or it would slow the bot it measures.
    await fake.wait_for(lambda: clips_in(fake) >= len(run.jobs), timeout=600)
    await asyncio.sleep(SEND_WINDOW.per if SEND_WINDOW else 0)  # a duplicate would show by now


def report(name: str, fake: FakeDiscord, run: Run, *, every: float) -> None:
    posted = {job.id: clip_posted_at(fake, job.id) for job in run.jobs}
    lost = [job_id for job_id, times in posted.items() if not times]
    twice = [job_id for job_id, times in posted.items() if len(times) > 1]
    latency = [min(posted[j]) - run.done_at[j] for j in run.done_at if posted[j]]
    place = [
        (seen - run.asked_at[job_id]) if (seen := place_seen_at(handle)) is not None else math.inf
        for job_id, handle in run.handles.items()
    ]
    p90 = percentile(latency, 0.9)
    print(f"\n== {name}: {len(run.jobs)} clips, one finished every {every:g} s, one channel ==")
    print(
        f"job done -> clip posted: median {statistics.median(latency):.1f} s,"
        f" p90 {p90:.1f} s, max {max(latency):.1f} s"
    )
    print(f"clips lost: {len(lost)}, posted twice: {len(twice)}")
    print(
        f"requester first saw their place: median {statistics.median(place):.2f} s,"
        f" max {max(place):.2f} s, {sum(p <= TARGET_PLACE_S for p in place)} of {len(place)}"
        f" within {TARGET_PLACE_S:g} s"
    )
    print_floor(posted, run)
    stats = fake.rate_limits.stats(since=run.began)
    print("requests per route (served, 429s):")
    print(stats.summary())
    sends = stats.channels.get(fake.general.id, {})
    per_clip = sum(c.served for c in sends.values()) / max(1, len(run.jobs))
    print(f"channel writes per clip (all routes): {per_clip:.1f}")
    met = p90 < TARGET_P90_S and max(place) <= TARGET_PLACE_S and not lost and not twice
    print(f"target (p90 < {TARGET_P90_S:g} s, place within {TARGET_PLACE_S:g} s, none lost or"
          f" twice): {'met' if met else 'NOT met'}")  # fmt: skip


def print_floor(posted: dict[int, list[float]], run: Run) -> None:
    """The channel's send budget as a floor: N clips need N sends, 5 per 5 s after a burst."""
    if SEND_WINDOW is None:
        return
    first_done = min(run.done_at.values())
    last_posted = max(min(times) for times in posted.values() if times)
    windows = math.ceil(len(run.jobs) / SEND_WINDOW.limit) - 1
    floor = max(max(run.done_at.values()), first_done + windows * SEND_WINDOW.per) - first_done
    actual = last_posted - first_done
    print(
        f"last clip posted {actual:.1f} s after the first job was done; the send budget's"
        f" floor is {floor:.1f} s ({actual / floor:.2f}x the floor)"
    )


async def measure(args: argparse.Namespace, folder: Path) -> None:
    if args.quick:
        await run_channel(args, folder, calls=args.quick, every=args.quick_every, name="quick")
    if args.slow:
        await run_channel(args, folder, calls=args.slow, every=args.slow_every, name="slow")


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-busy-") as folder:
        asyncio.run(measure(args, Path(folder)))


if __name__ == "__main__":
    main()
