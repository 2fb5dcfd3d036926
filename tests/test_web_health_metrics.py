"""/metrics moves when a job runs (Prometheus' text format, read back with its own parser) and
/healthz turns unhealthy when the worker is killed or the bot loses Discord; both served the
way ``reelbot run`` serves them, beside the bot."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.client import ReelBot
from bot.web.metrics import fallback_reason
from bot.web.server import beside_bot
from jobqueue.broker.dispatcher import Dispatcher
from jobqueue.telemetry import Telemetry
from pipeline.clip import REWRITE_BLOCKED_NOTE
from pipeline.rewrite.config import RewriterConfig
from tests.bot_harness import CLIP_TIMEOUT_S, Reel
from tests.broker_harness import dispatch_config
from tests.conftest import ChatReply, FakeChatServer, Site
from tests.redis_server import RedisServer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Served:
    reel: Reel
    bot: ReelBot
    url: str

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.get(self.url + path) as response:
            return response.status, await response.text()

    async def metrics(self) -> Samples:
        return await scrape(self.url)

    async def health(self) -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as session, session.get(self.url + "/healthz") as got:
            return got.status, await got.json()


async def scrape(url: str) -> Samples:
    """/metrics, read with prometheus-client's own parser: each sample by name and labels."""
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def served(reel: Reel) -> AsyncIterator[Served]:
    """The bot connected to the fake Discord, with its web server as ``reelbot run`` runs it."""
    port = free_port()
    settings = reel.settings.model_copy(update={"web_port": port})
    async with reel.bot_running() as bot, beside_bot(settings, reel.queue, bot) as context:
        assert context is not None
        yield Served(reel, bot, f"http://127.0.0.1:{port}")


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_move_when_a_job_runs(served: Served) -> None:
    reel = served.reel
    before = await served.metrics()
    assert value(before, "reelbot_jobs_finished_total", status="done", kind="create") == 0
    async with reel.worker_running():
        _, job = await reel.create("a hot air balloon at dawn")
        await reel.delivered(job.id)
        after = await served.metrics()

    assert value(after, "reelbot_jobs_finished_total", status="done", kind="create") == 1
    assert value(after, "reelbot_jobs", status="done") == 1
    assert value(after, "reelbot_queue_depth") == 0
    assert value(after, "reelbot_workers_alive") == 1
    for stage in ("rewrite", "wait", "generate", "encode", "post"):
        assert value(after, "reelbot_stage_seconds_count", stage=stage) == 1, stage
    generated = value(after, "reelbot_stage_seconds_sum", stage="generate")
    assert 0 < generated < CLIP_TIMEOUT_S
    # /create was acknowledged, well within Discord's 3 seconds.
    assert value(after, "reelbot_ack_seconds_count") >= 1
    assert value(after, "reelbot_ack_seconds_bucket", le="3.0") == value(
        after, "reelbot_ack_seconds_count"
    )
    # A second scrape counts nothing twice.
    again = await served.metrics()
    assert value(again, "reelbot_jobs_finished_total", status="done", kind="create") == 1
    assert value(again, "reelbot_stage_seconds_count", stage="post") == 1


async def test_rewrite_fallbacks_are_counted_by_reason(
    served: Served, chat_server: FakeChatServer
) -> None:
    reel = served.reel
    chat_server.script(ChatReply(content=""), ChatReply())
    rewriter = RewriterConfig(
        backend="openai",
        openai_base_url=chat_server.base_url,
        openai_model="fake",
        openai_api="chat",
        openai_vision="off",
        timeout_s=30,
    )
    async with reel.worker_running(rewriter=rewriter):
        _, fallen_back = await reel.create("a snail racing a leaf", enhance=True)
        fallen_back = await reel.delivered(fallen_back.id)
        _, rewritten = await reel.create("a kite over the sea", enhance=True)
        await reel.delivered(rewritten.id)
    samples = await served.metrics()
    reason = fallback_reason(fallen_back.rewrite_note)
    assert reason == "empty answer", fallen_back.rewrite_note
    assert value(samples, "reelbot_rewrite_fallbacks_total", reason=reason) == 1
    assert (
        sum(v for (name, _), v in samples.items() if name == "reelbot_rewrite_fallbacks_total") == 1
    )


def test_fallback_reasons_are_short_labels() -> None:
    assert fallback_reason(None) is None
    assert fallback_reason(REWRITE_BLOCKED_NOTE) == "blocked"
    assert (
        fallback_reason("Your prompt was used as written (timeout after 60 s).") == "timeout after"
    )
    assert (
        fallback_reason("Your prompt was used as written (lost the subject).") == "lost the subject"
    )


async def test_healthz_turns_unhealthy_when_the_worker_is_killed(served: Served) -> None:
    status, health = await served.health()
    assert status == 503
    assert health["checks"]["bot"]["ok"] is True
    assert health["checks"]["database"]["ok"] is True
    assert health["checks"]["workers"] == {"ok": False, "detail": "no worker is alive"}

    settings = served.reel.settings
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jobqueue", "--worker-id", "doomed",
        env={
            **os.environ,
            "REELBOT_DATA_DIR": str(settings.data_dir),
            "REELBOT_MODEL": "tiny",
            "REELBOT_DEVICE": "cpu",
            "REELBOT_REWRITER": "off",
        },
        cwd=settings.data_dir.parent,
    )  # fmt: skip
    try:
        # The worker registers once its models are loaded.
        async with asyncio.timeout(CLIP_TIMEOUT_S):
            while True:
                status, health = await served.health()
                if status == 200:
                    break
                await asyncio.sleep(0.2)
        assert health["status"] == "ok"
        assert health["checks"]["workers"]["detail"] == "1 alive: doomed"
    finally:
        worker.send_signal(signal.SIGKILL)
        await worker.wait()

    status, health = await served.health()
    assert (status, health["status"]) == (503, "unhealthy")
    assert health["checks"]["workers"] == {"ok": False, "detail": "no worker is alive"}

    await served.bot.close()
    status, health = await served.health()
    assert health["checks"]["bot"] == {"ok": False, "detail": "not connected to Discord"}


async def test_the_gpu_memory_each_worker_reports_is_exported(
    reel: Reel, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a worker on a GPU reports (no GPU here): PyTorch's allocator holds 7 GiB.
    monkeypatch.setattr("jobqueue.telemetry.gpu_memory_in_use", lambda: 7 * 2**30)
    await reel.queue.register_worker("gpu0", model="tiny")
    await Telemetry(reel.queue.db).report_gpu_memory("gpu0")
    samples = await scrape(site.url)
    assert value(samples, "reelbot_worker_gpu_memory_bytes", worker="gpu0") == 7 * 2**30
    assert value(samples, "reelbot_workers_alive") == 1

    await reel.queue.worker_stopped("gpu0")
    samples = await scrape(site.url)
    assert ("reelbot_worker_gpu_memory_bytes", frozenset({("worker", "gpu0")})) not in samples
    assert value(samples, "reelbot_workers_alive") == 0


async def test_healthz_says_when_the_broker_is_unreachable(reel: Reel, tmp_path: Path) -> None:
    """With remote workers, /healthz also says whether the dispatcher reaches the broker."""
    folder = tmp_path / "redis"
    folder.mkdir()
    redis = RedisServer(folder)
    redis.start()
    port = free_port()
    settings = reel.settings.model_copy(update={"web_port": port})
    config = dispatch_config(reel.settings.clips_dir, reel.settings.models_dir, lease_seconds=3.0)
    try:
        async with (
            reel.bot_running() as bot,
            Dispatcher(reel.queue, redis.url, config=config, moderation=reel.moderation) as d,
            beside_bot(settings, reel.queue, bot, dispatcher=d) as context,
        ):
            assert context is not None
            served = Served(reel, bot, f"http://127.0.0.1:{port}")
            reachable = await broker_check(served, ok=True)
            assert reachable == {"ok": True, "detail": "reachable"}
            redis.stop()
            unreachable = await broker_check(served, ok=False)
            assert unreachable["detail"] == "unreachable; jobs wait in the queue until it is back"
            assert (await served.health())[0] == 503
    finally:
        redis.stop()


async def broker_check(served: Served, *, ok: bool) -> dict[str, Any]:
    """/healthz's broker check once it says ``ok`` (the dispatcher polls every 20 ms)."""
    async with asyncio.timeout(30):
        while True:
            _, health = await served.health()
            check: dict[str, Any] = health["checks"]["broker"]
            if check["ok"] is ok:
                return check
            await asyncio.sleep(0.1)
