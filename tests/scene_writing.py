"""Writing scenes ahead in tests and benchmarks: a rewriter that takes its time, and a scene
writer in the test's own process.

:class:`SlowRewriter` is a :class:`pipeline.rewrite.PromptRewriter`: each rewrite sleeps
``delay_s``, as a language model on a busy machine does, then writes
:func:`tests.fakellm.scene_for` of the idea (or the text scripted for it), and it records what
it was asked: who asked for a rewrite, and whether a GPU waited for one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from jobqueue.scene_writer import SceneWriter, SceneWriterConfig
from pipeline.clip import ModelChoice
from pipeline.rewrite import RewriteMode, RewriterConfig, RewriteResult
from tests.fakellm import scene_for

if TYPE_CHECKING:
    from PIL import Image


class SlowRewriter:
    def __init__(self, delay_s: float, *, scripted: dict[str, str] | None = None) -> None:
        self.delay_s = delay_s
        self.scripted = scripted or {}
        self.asked: list[str] = []

    async def warm_up(self) -> float:
        return 0.0

    async def rewrite(
        self,
        prompt: str,
        *,
        mode: RewriteMode = "t2v",
        seed: int = 0,
        image: Image.Image | None = None,
    ) -> RewriteResult:
        self.asked.append(prompt)
        await asyncio.sleep(self.delay_s)
        return RewriteResult(
            original=prompt,
            rewritten=self.scripted.get(prompt, scene_for(prompt)),
            enhanced=True,
            fallback_reason=None,
            backend="slow test double",
            model="scene_for",
            seconds=self.delay_s,
            cached=False,
        )

    async def aclose(self) -> None:
        return None


@contextlib.asynccontextmanager
async def scene_writer_running(
    database: Path, *, clips_dir: Path, models: ModelChoice, rewriter: SlowRewriter
) -> AsyncIterator[SceneWriter]:
    """A scene writer on the queue at ``database`` with ``rewriter``, until the block ends."""
    writer = SceneWriter(
        database,
        config=SceneWriterConfig(
            clips_dir=clips_dir,
            models=models,
            rewriter=RewriterConfig(backend="off"),
            poll_interval_s=0.05,
        ),
        rewriter=rewriter,
        writer_id="test-scenes",
    )
    task = asyncio.create_task(writer.run())
    try:
        yield writer
    finally:
        writer.stop()
        await asyncio.wait_for(task, 120)
