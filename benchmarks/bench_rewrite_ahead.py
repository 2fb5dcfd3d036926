"""How long a GPU worker sits idle between clips when a rewrite takes a language model seconds.

    python benchmarks/bench_rewrite_ahead.py                      # 4 jobs, 2 s per rewrite
    python benchmarks/bench_rewrite_ahead.py --jobs 6 --rewrite-seconds 4 --steps 20

A real worker makes every clip on the tiny models (``--model``, on ``--device``), and the
rewriter is a stand-in that takes ``--rewrite-seconds`` per prompt (tests/scene_writing.py),
as a language model does on a busy machine. The same jobs run twice, each time submitted to a
worker. With ``--arrival queued`` (the default) they wait, as behind a clip being made, for
as long as writing their scenes takes before the worker starts: jobs wait like that whenever
clips take longer than rewrites (Wan's clips take minutes). With ``--arrival together`` they
reach an idle worker all at once. Rewriting happens:

- **in the worker** (``REELBOT_REWRITERS=0``): the worker rewrites each prompt when it takes
  the job;
- **ahead**: a scene writer beside the worker writes each scene while its job waits.

It times every generation (``VideoGenerator.generate``) and prints, per run, the worker's
idle gap between one generation's end and the next one's start (the clip's encoding, the
queue's bookkeeping and any wait for a prompt), the part of it spent waiting for a prompt,
how long the first clip waited for its own scene, and how many prompts the worker rewrote
itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The slow rewriter lives with the tests, which are not an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobqueue.jobs import JobQueue
from jobqueue.models import Job, JobKind, JobRequest
from jobqueue.scene_writer import SceneWriter, SceneWriterConfig
from jobqueue.worker import Worker, WorkerConfig
from pipeline.clip import ModelChoice
from pipeline.generator import VideoGenerator
from pipeline.rewrite import RewriterConfig
from pipeline.tiny import ensure_tiny_pipeline
from tests.scene_writing import SlowRewriter

PROMPTS = (
    "a red balloon over a city",
    "a kite on a windy hill",
    "a lighthouse at dusk",
    "a paper boat in the rain",
    "a fox crossing a snowy road",
    "a tide pool at low tide",
    "a hot air balloon at sunrise",
    "a cat surfing a small wave",
)


@dataclass(frozen=True)
class Run:
    name: str
    gaps: list[float]
    """Seconds between one generation's end and the next one's start."""
    prompt_waits: list[float]
    """Per clip after the first, seconds spent getting its prompt (the rewrite or the wait)."""
    first_wait: float
    worker_rewrites: int
    clip_seconds: float
    """The median generation's length."""


@contextlib.contextmanager
def timed_generations() -> Iterator[list[tuple[float, float]]]:
    """Every ``VideoGenerator.generate`` call's start and end, while the block runs."""
    spans: list[tuple[float, float]] = []
    original = VideoGenerator.generate

    def generate(self: VideoGenerator, *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return original(self, *args, **kwargs)
        finally:
            spans.append((started, time.monotonic()))

    VideoGenerator.generate = generate  # type: ignore[method-assign]
    try:
        yield spans
    finally:
        VideoGenerator.generate = original  # type: ignore[method-assign]


@contextlib.asynccontextmanager
async def running(task_of: Any, stop: Any) -> AsyncIterator[None]:
    task = asyncio.create_task(task_of)
    try:
        yield
    finally:
        stop()
        await task


async def one_run(name: str, args: argparse.Namespace, models_dir: Path, *, ahead: bool) -> Run:
    folder = Path(tempfile.mkdtemp(prefix="bench-rewrite-ahead-"))
    database = folder / "reelbot.db"
    queue = await JobQueue.open(database)
    models = ModelChoice(
        models_dir=models_dir, t2v_model=args.model, i2v_model="tiny-i2v", device=args.device
    )
    own = SlowRewriter(args.rewrite_seconds)
    worker = Worker(
        database,
        config=WorkerConfig(
            clips_dir=folder / "clips",
            models=models,
            poll_interval_s=0.05,
            progress_interval_s=0.5,
            rewriter_at_start=not ahead,
            scene_wait_s=args.rewrite_seconds * 10,
        ),
        worker_id="gpu",
        rewriter=own,
    )
    writer = SceneWriter(
        database,
        config=SceneWriterConfig(
            clips_dir=folder / "clips",
            models=models,
            rewriter=RewriterConfig(backend="off"),
            poll_interval_s=0.05,
        ),
        rewriter=SlowRewriter(args.rewrite_seconds),
        writer_id="scenes",
    )
    try:
        with timed_generations() as spans:
            async with running(writer.run(), writer.stop) if ahead else _nothing():
                if args.arrival == "queued":
                    # They wait as behind a clip being made, long enough to write their scenes.
                    jobs = await _submit_all(queue, args)
                    await asyncio.sleep(args.jobs * args.rewrite_seconds + 1.0)
                async with running(worker.run(), worker.stop):
                    if args.arrival == "together":
                        await _until_ready(queue)
                        jobs = await _submit_all(queue, args)
                    await _until_done(queue, jobs)
        done = [await queue.get(job.id) for job in jobs]
    finally:
        await queue.close()
    waits = [job.timings.get("rewrite", 0.0) for job in done if job is not None]
    ordered = sorted(spans)
    gaps = [after[0] - before[1] for before, after in itertools.pairwise(ordered)]
    clips = [end - start for start, end in ordered]
    return Run(name, gaps, waits[1:], waits[0], len(own.asked), statistics.median(clips))


@contextlib.asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield


async def _until_ready(queue: JobQueue) -> None:
    """Until the worker has loaded its model and waits for jobs."""
    async with asyncio.timeout(600):
        while not (await queue.stats()).workers:  # noqa: ASYNC110 (another process's news)
            await asyncio.sleep(0.05)


async def _submit_all(queue: JobQueue, args: argparse.Namespace) -> list[Job]:
    return [
        await queue.submit(
            JobKind.CREATE,
            JobRequest(prompt=PROMPTS[index % len(PROMPTS)], seed=index, steps=args.steps),
            user_id=1000 + index,
            guild_id=1,
            channel_id=2,
        )
        for index in range(args.jobs)
    ]


async def _until_done(queue: JobQueue, jobs: list[Job]) -> None:
    while True:
        current = [await queue.get(job.id) for job in jobs]
        if all(job is not None and job.status.is_terminal for job in current):
            return
        await asyncio.sleep(0.1)


def describe(run: Run) -> str:
    gaps = run.gaps or [0.0]
    waits = run.prompt_waits or [0.0]
    return (
        f"| {run.name} | {statistics.median(gaps):.2f} | {max(gaps):.2f} |"
        f" {statistics.median(waits):.2f} | {run.first_wait:.2f} | {run.worker_rewrites} |"
        f" {run.clip_seconds:.2f} |"
    )


async def main(args: argparse.Namespace) -> None:
    models_dir = Path(tempfile.mkdtemp(prefix="bench-models-"))
    ensure_tiny_pipeline(models_dir, "t2v")
    ensure_tiny_pipeline(models_dir, "i2v")
    runs = [
        await one_run("in the worker", args, models_dir, ahead=False),
        await one_run("ahead (1 scene writer)", args, models_dir, ahead=True),
    ]
    arrival = "waiting behind a busy worker" if args.arrival == "queued" else "arriving together"
    print(
        f"{args.jobs} jobs {arrival}, {args.model} model ({args.steps} steps, {args.device}),"
        f" a rewrite takes {args.rewrite_seconds:.1f} s"
    )
    print()
    print(
        "| Rewriting | idle between clips: median s | max s | waiting for a prompt: median s"
        " | first clip's wait s | prompts the worker rewrote | generating a clip: median s |"
    )
    print("|---|---|---|---|---|---|---|")
    for run in runs:
        print(describe(run))
    worker, ahead = (statistics.median(run.gaps or [0.0]) for run in runs)
    print()
    print(f"median idle gap, in the worker / ahead: {worker / max(ahead, 1e-9):.1f}x")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=4, help="jobs submitted at once (4)")
    parser.add_argument(
        "--rewrite-seconds", type=float, default=2.0, help="seconds per rewrite (2)"
    )
    parser.add_argument("--steps", type=int, default=10, help="denoising steps per clip (10)")
    parser.add_argument("--model", default="tiny", help="text-to-video model (tiny)")
    parser.add_argument("--device", default="cpu", help="where the model runs (cpu)")
    parser.add_argument(
        "--arrival",
        choices=("queued", "together"),
        default="queued",
        help="queued: the jobs wait for as long as writing their scenes takes, then the"
        " worker starts (default); together: they reach an idle worker at once",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
