"""Jobs finished on cue, without a model: for tests and benchmarks that measure the bot.

A worker makes clips at its own pace; a test of the bot's delivery wants to say when each job
ends. :class:`QuickFinisher` claims the next job in the queue's fair order and completes it at
once with one small MP4 made here (a real H.264 file the fake Discord stores and serves), as
a worker would, through :class:`JobQueue`.
"""

from __future__ import annotations

from pathlib import Path

import imageio_ffmpeg
import numpy as np

from jobqueue.jobs import JobQueue
from jobqueue.models import Job, JobResult

WIDTH, HEIGHT, FRAMES, FPS = 64, 64, 9, 8


def small_clip(folder: Path) -> Path:
    """A 64x64, 9-frame H.264 MP4 in ``folder``."""
    path = folder / "quick.mp4"
    writer = imageio_ffmpeg.write_frames(
        str(path), (WIDTH, HEIGHT), fps=FPS, codec="libx264", macro_block_size=1
    )
    writer.send(None)
    for index in range(FRAMES):
        writer.send(np.full((HEIGHT, WIDTH, 3), index * 25, dtype=np.uint8).tobytes())
    writer.close()
    return path


class QuickFinisher:
    """Finishes queued jobs on demand, in the order a worker would take them."""

    def __init__(self, queue: JobQueue, clip: Path, *, worker_id: str = "quick") -> None:
        self.queue = queue
        self.clip = clip
        self.worker_id = worker_id

    async def finish_next(self) -> Job | None:
        """Claim and complete the next job; None when none may start."""
        job = await self.queue.claim(self.worker_id, lease_seconds=60.0)
        if job is None:
            return None
        result = JobResult(
            result_path=str(self.clip),
            width=WIDTH,
            height=HEIGHT,
            frames=FRAMES,
            fps=FPS,
            seed=job.request.seed or 1,
            model="quick",
            steps=1,
        )
        await self.queue.complete(job.id, self.worker_id, result)
        return job
