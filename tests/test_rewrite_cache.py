"""A retry with the same seed reuses the rewrite; other seeds and modes ask the model again."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from pipeline.rewrite import PromptRewriter, RewriteMode, RewriterConfig, build_rewriter
from pipeline.rewrite.cache import CachedRewrite, CacheKey, RewriteCache
from tests.conftest import ChatReply, FakeChatServer

RewriterFactory = Callable[..., PromptRewriter]


@pytest.fixture
async def make_rewriter(
    chat_server: FakeChatServer, tmp_path: Path
) -> AsyncIterator[RewriterFactory]:
    made: list[PromptRewriter] = []

    def make(*, timeout_s: float = 20.0) -> PromptRewriter:
        config = RewriterConfig(
            backend="openai",
            openai_base_url=chat_server.base_url,
            cache_dir=tmp_path / "cache",
            timeout_s=timeout_s,
        )
        rewriter = build_rewriter(config)
        made.append(rewriter)
        return rewriter

    yield make
    for rewriter in made:
        await rewriter.aclose()


async def test_the_same_request_is_answered_from_the_cache(
    chat_server: FakeChatServer, make_rewriter: RewriterFactory
) -> None:
    rewriter = make_rewriter()
    first = await rewriter.rewrite("a cat surfing", seed=3)
    second = await rewriter.rewrite("a cat surfing", seed=3)
    assert (first.cached, second.cached) == (False, True)
    assert second.rewritten == first.rewritten
    assert second.enhanced
    assert len(chat_server.requests) == 1


async def test_spacing_differences_share_an_entry(
    chat_server: FakeChatServer, make_rewriter: RewriterFactory
) -> None:
    rewriter = make_rewriter()
    await rewriter.rewrite("a cat surfing")
    result = await rewriter.rewrite("  a cat\n surfing ")
    assert result.cached
    assert result.original == "  a cat\n surfing "
    assert len(chat_server.requests) == 1


@pytest.mark.parametrize(
    ("prompt", "mode", "seed"),
    [("a cat surfing", "t2v", 4), ("a cat surfing", "i2v", 3), ("a dog surfing", "t2v", 3)],
)
async def test_another_seed_mode_or_prompt_is_not_cached(
    chat_server: FakeChatServer,
    make_rewriter: RewriterFactory,
    prompt: str,
    mode: RewriteMode,
    seed: int,
) -> None:
    rewriter = make_rewriter()
    await rewriter.rewrite("a cat surfing", mode="t2v", seed=3)
    result = await rewriter.rewrite(prompt, mode=mode, seed=seed)
    assert not result.cached
    assert len(chat_server.requests) == 2


async def test_the_disk_cache_survives_a_new_rewriter(
    chat_server: FakeChatServer, make_rewriter: RewriterFactory
) -> None:
    first = make_rewriter()
    made = await first.rewrite("a cat surfing", seed=3)
    await first.aclose()
    again = await make_rewriter().rewrite("a cat surfing", seed=3)
    assert again.cached
    assert again.rewritten == made.rewritten
    assert len(chat_server.requests) == 1


async def test_a_rejected_answer_is_cached_with_its_reason(
    chat_server: FakeChatServer, make_rewriter: RewriterFactory
) -> None:
    chat_server.script(ChatReply(content="A man cycles through green hills at noon."))
    rewriter = make_rewriter()
    await rewriter.rewrite("a cat surfing")
    result = await rewriter.rewrite("a cat surfing")
    assert result.cached
    assert (result.rewritten, result.fallback_reason) == ("a cat surfing", "lost the subject")


async def test_a_timeout_is_not_cached(
    chat_server: FakeChatServer, make_rewriter: RewriterFactory
) -> None:
    chat_server.script(ChatReply(hang=True))
    rewriter = make_rewriter(timeout_s=0.3)
    assert (await rewriter.rewrite("a cat surfing")).fallback_reason == "timeout"
    result = await rewriter.rewrite("a cat surfing")
    assert result.enhanced
    assert not result.cached


def test_the_memory_cache_keeps_the_most_recent_entries() -> None:
    cache = RewriteCache(capacity=2)
    keys = [CacheKey("openai", "m", f"idea {n}", "t2v", 0) for n in range(3)]
    for key in keys:
        cache.put(key, CachedRewrite(f"scene for {key.prompt}", True, None))
    cache.get(keys[1])
    assert cache.get(keys[0]) is None
    assert cache.get(keys[1]) is not None
    assert cache.get(keys[2]) is not None


def test_an_unreadable_cache_file_is_ignored(tmp_path: Path) -> None:
    key = CacheKey("openai", "m", "a cat surfing", "t2v", 0)
    RewriteCache(directory=tmp_path).put(key, CachedRewrite("A cat surfs.", True, None))
    for path in tmp_path.rglob("*.json"):
        path.write_text("{ broken")
    assert RewriteCache(directory=tmp_path).get(key) is None
