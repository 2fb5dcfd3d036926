"""The rewriters the worker uses: a backend behind a timeout, the guardrails and a cache."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from .base import BackendError, PromptRewriter, RewriteMode, RewriteResult, TextBackend
from .cache import CachedRewrite, CacheKey, RewriteCache, image_digest
from .config import RewriterConfig
from .guardrails import OutputLimits, gives_instructions, review

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)


class GuardedRewriter:
    """Asks ``backend`` for a rewrite and falls back to the user's prompt on any trouble.

    The timeout covers generation only: loading a model happens once per process (call
    ``warm_up`` at start-up) and may take longer than one rewrite should; asking an endpoint
    which API it speaks takes at most ``QUESTION_TIMEOUT_S`` and, if left unanswered, is not
    asked again for minutes (see ``openai_compat``). A picture is passed on only to a backend
    that shows it to its model, and then it is part of the cache key.
    """

    def __init__(
        self,
        backend: TextBackend,
        *,
        timeout_s: float,
        cache: RewriteCache | None = None,
        limits: OutputLimits | None = None,
    ) -> None:
        self._backend = backend
        self._timeout_s = timeout_s
        self._cache = cache
        self._limits = limits or OutputLimits()

    @property
    def backend(self) -> TextBackend:
        return self._backend

    async def warm_up(self) -> float:
        try:
            return await self._backend.warm_up()
        except BackendError as exc:
            log.warning("Rewriter not ready: %s", exc.reason)
            return 0.0

    async def rewrite(
        self,
        prompt: str,
        *,
        mode: RewriteMode = "t2v",
        seed: int = 0,
        image: Image.Image | None = None,
    ) -> RewriteResult:
        started = time.perf_counter()
        idea = " ".join(prompt.split())
        if not idea:
            return self._fallback(prompt, "empty prompt", started)
        if gives_instructions(idea):
            # Whatever the model would answer, it would follow the prompt, not rewrite it.
            return self._fallback(prompt, "the prompt gives the rewriter instructions", started)
        try:
            # First, so that the key names the model that answers (a fallback may replace it).
            await self._backend.warm_up()
        except BackendError as exc:
            return self._fallback(prompt, exc.reason, started)
        shown = image if image is not None and self._backend.sees_images else None
        key = CacheKey(
            self._backend.name, self._backend.model, idea, mode, seed, image_digest(shown)
        )
        hit = self._cache.get(key) if self._cache is not None else None
        if hit is not None:
            return self._from_cache(prompt, hit, started)
        try:
            async with asyncio.timeout(self._timeout_s):
                completion = await self._backend.complete(idea, mode=mode, seed=seed, image=shown)
        except TimeoutError:
            return self._fallback(prompt, "timeout", started)
        except BackendError as exc:
            return self._fallback(prompt, exc.reason, started)
        verdict = review(idea, completion.text, self._limits)
        if verdict.rejected is not None:
            log.info("Rejected rewrite (%s): %r", verdict.rejected, completion.text[:300])
            self._remember(key, CachedRewrite(prompt, False, verdict.rejected))
            return self._fallback(prompt, verdict.rejected, started)
        self._remember(key, CachedRewrite(verdict.text, True, None))
        return self._result(prompt, verdict.text, None, started, cached=False)

    async def aclose(self) -> None:
        await self._backend.aclose()

    def _remember(self, key: CacheKey, entry: CachedRewrite) -> None:
        # Only answers the model gave are cached: a timeout or an outage may pass.
        if self._cache is not None:
            self._cache.put(key, entry)

    def _from_cache(self, prompt: str, hit: CachedRewrite, started: float) -> RewriteResult:
        rewritten = hit.rewritten if hit.enhanced else prompt
        return self._result(prompt, rewritten, hit.fallback_reason, started, cached=True)

    def _fallback(self, prompt: str, reason: str, started: float) -> RewriteResult:
        log.info("Using the user's own prompt: %s", reason)
        return self._result(prompt, prompt, reason, started, cached=False)

    def _result(
        self, prompt: str, rewritten: str, reason: str | None, started: float, *, cached: bool
    ) -> RewriteResult:
        return RewriteResult(
            original=prompt,
            rewritten=rewritten,
            enhanced=reason is None,
            fallback_reason=reason,
            backend=self._backend.name,
            model=self._backend.model,
            seconds=time.perf_counter() - started,
            cached=cached,
        )


class DisabledRewriter:
    """The ``off`` backend: every prompt passes through as the user wrote it."""

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
        return RewriteResult(
            original=prompt,
            rewritten=prompt,
            enhanced=False,
            fallback_reason="disabled",
            backend="off",
            model=None,
            seconds=0.0,
            cached=False,
        )

    async def aclose(self) -> None:
        return None


def build_rewriter(config: RewriterConfig) -> PromptRewriter:
    """The configured rewriter, with guardrails and a cache; the model loads on first use."""
    if config.backend == "off":
        return DisabledRewriter()
    cache_dir = config.cache_dir / "rewrites" if config.cache_dir is not None else None
    return GuardedRewriter(
        build_backend(config), timeout_s=config.timeout_s, cache=RewriteCache(directory=cache_dir)
    )


def build_backend(config: RewriterConfig) -> TextBackend:
    if config.backend == "openai":
        from .openai_compat import OpenAICompatBackend

        return OpenAICompatBackend(
            base_url=config.openai_base_url,
            model=config.openai_model,
            api_key=config.openai_api_key,
            api=config.openai_api,
            vision=config.openai_vision,
            request_timeout_s=config.timeout_s,
            max_tokens=config.max_new_tokens,
        )
    # Imported here so that processes not running a local model never import torch.
    from .local import LocalBackend, SamplingSettings

    return LocalBackend(
        config.local_model,
        models_dir=config.models_dir,
        device=config.device,
        sampling=SamplingSettings(max_new_tokens=config.max_new_tokens),
    )
