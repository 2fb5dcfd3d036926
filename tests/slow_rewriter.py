"""A prompt rewriter that takes its time, as a language model on a busy machine does.

:class:`SlowRewriter` is a :class:`pipeline.rewrite.PromptRewriter`: each rewrite sleeps
``delay_s`` and then writes :func:`tests.fakellm.scene_for` of the idea (or the text scripted
for that idea), and records what it was asked. Tests and the rewrite-ahead benchmark use it
to see who asked for a rewrite, and whether a GPU waited for one.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from pipeline.rewrite import RewriteMode, RewriteResult
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
