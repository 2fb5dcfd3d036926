"""A text backend that passes every call on and keeps the raw answers and their durations."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pipeline.rewrite import Completion, RewriteMode, TextBackend

if TYPE_CHECKING:
    from PIL import Image


class RecordingBackend:
    """Wraps ``inner``; ``completions[i]`` took ``seconds[i]`` (a failed call adds neither)."""

    def __init__(self, inner: TextBackend) -> None:
        self.inner = inner
        self.completions: list[Completion] = []
        self.seconds: list[float] = []

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def model(self) -> str:
        return self.inner.model

    @property
    def sees_images(self) -> bool:
        return self.inner.sees_images

    async def warm_up(self) -> float:
        return await self.inner.warm_up()

    async def complete(
        self, prompt: str, *, mode: RewriteMode, seed: int, image: Image.Image | None = None
    ) -> Completion:
        started = time.perf_counter()
        completion = await self.inner.complete(prompt, mode=mode, seed=seed, image=image)
        self.seconds.append(time.perf_counter() - started)
        self.completions.append(completion)
        return completion

    async def complete_text(
        self, prompt: str, *, stop: tuple[str, ...], max_tokens: int, seed: int
    ) -> Completion:
        started = time.perf_counter()
        completion = await self.inner.complete_text(
            prompt, stop=stop, max_tokens=max_tokens, seed=seed
        )
        self.seconds.append(time.perf_counter() - started)
        self.completions.append(completion)
        return completion

    async def aclose(self) -> None:
        await self.inner.aclose()
