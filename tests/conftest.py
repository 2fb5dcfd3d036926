"""Shared pytest fixtures. Each area appends its own under a comment naming it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.settings import Settings
from bot.web.app import WebContext, make_app
from bot.web.server import WebServer, web_context
from jobqueue.db import Database
from jobqueue.jobs import JobQueue
from jobqueue.moderation import MIGRATIONS as MODERATION_MIGRATIONS
from jobqueue.moderation import Moderation
from jobqueue.worker import WorkerConfig
from pipeline.clip import ModelChoice
from pipeline.rewrite import PromptRewriter, RewriterConfig, build_rewriter
from pipeline.tiny import ensure_tiny_pipeline
from tests.bot_harness import Reel
from tests.broker_harness import BROKER, SINGLE_HOST
from tests.fakediscord import FakeDiscord
from tests.fakellm import serving
from tests.postgres_server import PostgresServer, missing_postgres
from tests.redis_server import RedisServer, missing_redis
from tests.web_browser import Browser, missing_browser, start_chromium

# --- pipeline (pipeline engineer) ---


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding the ``tiny``, ``tiny-i2v`` and ``tiny-flf2v`` pipelines, built
    once per session.

    It is ``<data dir>/models``: pass it as ``VideoGenerator(..., models_dir=tiny_models_dir)``,
    or set ``REELBOT_DATA_DIR`` to ``tiny_models_dir.parent`` so settings find the models
    (use presets ``tiny`` / ``tiny-i2v``). Treat it as read-only: it is shared by all tests.
    """
    models_dir = tmp_path_factory.mktemp("data") / "models"
    ensure_tiny_pipeline(models_dir, "t2v")
    ensure_tiny_pipeline(models_dir, "i2v")
    ensure_tiny_pipeline(models_dir, "flf2v")
    return models_dir


# --- fake Discord (fake-Discord engineer) ---
pytest_plugins = ["tests.fakediscord.fixtures"]


# --- prompt rewriting (rewriter engineer) ---


@dataclass
class ChatReply:
    """One scripted answer of ``FakeChatServer``; ``hang`` answers only at teardown."""

    status: int = 200
    body: str | None = None
    content: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


class FakeChatServer:
    """An OpenAI-compatible chat-completions endpoint speaking the real protocol over HTTP.

    Answers ``POST /v1/chat/completions`` from ``replies`` in order, then with a scene that
    keeps the user's words; records every request body and its headers.
    """

    def __init__(self) -> None:
        self.replies: list[ChatReply] = []
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.received = asyncio.Event()
        self.release = asyncio.Event()
        self.base_url = ""
        self.app = web.Application()
        self.app.router.add_post("/v1/chat/completions", self._complete)

    def script(self, *replies: ChatReply) -> None:
        self.replies.extend(replies)

    async def _complete(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        self.received.set()
        reply = self.replies.pop(0) if self.replies else ChatReply()
        if reply.hang:
            await self.release.wait()
        text = reply.body
        if text is None:
            user = body["messages"][-1]["content"]
            if not isinstance(user, str):  # text and image parts
                user = next(part["text"] for part in user if part["type"] == "text")
            content = reply.content if reply.content is not None else default_scene(user)
            text = json.dumps(
                {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 90, "completion_tokens": 42},
                }
            )
        return web.Response(
            status=reply.status,
            text=text,
            headers=reply.headers,
            content_type="application/json",
        )


def default_scene(idea: str) -> str:
    return (
        f"{idea[0].upper()}{idea[1:]}, seen at golden hour on a quiet coast. Warm light glints "
        "on the water. The camera glides slowly alongside at eye level. Soft film grain, "
        "natural colours, cinematic realism."
    )


@pytest.fixture
async def chat_server() -> AsyncIterator[FakeChatServer]:
    """A ``FakeChatServer`` on 127.0.0.1 at a free port; use ``chat_server.base_url``."""
    async with serving(FakeChatServer()) as server:
        yield server


@pytest.fixture
async def scene_writer(chat_server: FakeChatServer) -> AsyncIterator[PromptRewriter]:
    """The real rewriter, talking to ``chat_server`` (a fake OpenAI-compatible endpoint)."""
    rewriter = build_rewriter(
        RewriterConfig(
            backend="openai", openai_base_url=chat_server.base_url, openai_model="scene-writer"
        )
    )
    yield rewriter
    await rewriter.aclose()


# --- moderation (moderation engineer) ---


class ManualClock:
    """A clock tests move by hand: ``clock()`` is the time, ``clock.advance(s)`` moves it."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def moderation_db(tmp_path: Path) -> Iterator[Database]:
    """A real SQLite file with moderation's tables."""
    db = Database.open(tmp_path / "moderation.db", [MODERATION_MIGRATIONS])
    yield db
    db.close()


@pytest.fixture
def moderation(moderation_db: Database, clock: ManualClock) -> Moderation:
    """:class:`Moderation` with the shipped default blocklist and a hand-moved clock."""
    return Moderation(moderation_db, clock=clock)


@pytest.fixture
async def admin_reel(
    reel_settings: Settings, fake_discord: FakeDiscord, clock: ManualClock
) -> AsyncIterator[Reel]:
    """:func:`reel` whose moderation runs on the hand-moved ``clock`` (bans that expire)."""
    queue = await JobQueue.open(reel_settings.database_path)
    try:
        yield Reel(fake_discord, reel_settings, queue, Moderation(queue.db, clock=clock))
    finally:
        await queue.close()


# --- bot (bot engineer) ---


@pytest.fixture
def reel_settings(data_dir: Path, fake_discord: FakeDiscord) -> Settings:
    """Settings for the bot under test: a fresh data dir that sees the tiny models."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        model="tiny",
        i2v_model="tiny-i2v",
        end_frame_model="tiny-flf2v",
        rewriter="off",
        discord_token=fake_discord.token,
        discord_api_base=fake_discord.api_base,
        discord_gateway_url=fake_discord.gateway_url,
        discord_guild_ids=[fake_discord.guild.id],
        progress_edit_seconds=0.3,
        # /create renders at once, as these tests expect; test_bot_drafts*.py turn drafts on.
        drafts=False,
    )


@pytest.fixture
async def reel(
    reel_settings: Settings,
    fake_discord: FakeDiscord,
    reel_mode: str,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Reel]:
    """The fake Discord plus reelbot's queue and moderation on a tmp SQLite file; start the
    bot and workers with ``reel.bot_running()`` / ``reel.worker_running()`` (workers on
    another host, through a real Redis, where the test runs in ``reel_mode`` broker)."""
    queue = await JobQueue.open(reel_settings.database_path)
    broker_url = request.getfixturevalue("broker_url") if reel_mode == BROKER else None
    try:
        yield Reel(fake_discord, reel_settings, queue, Moderation(queue.db), broker_url=broker_url)
    finally:
        await queue.close()


@pytest.fixture
async def running_reel(reel: Reel) -> AsyncIterator[Reel]:
    """:func:`reel` with the bot connected and one tiny-model worker running."""
    async with reel.bot_running(), reel.worker_running():
        yield reel


# --- queue ---


@pytest.fixture
def data_dir(tmp_path: Path, tiny_models_dir: Path) -> Path:
    """A fresh data folder whose models/ is the session's tiny models."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "models").symlink_to(tiny_models_dir, target_is_directory=True)
    return data


@pytest.fixture
def worker_config(tmp_path: Path, tiny_models_dir: Path) -> WorkerConfig:
    """A worker on the tiny models with its clips in this test's folder: polling fast,
    progress written at every step, a 5 s lease, no rewriter and no output safety check
    (a test file overrides it with ``dataclasses.replace`` for what it needs)."""
    return WorkerConfig(
        clips_dir=tmp_path / "clips",
        models=ModelChoice(
            models_dir=tiny_models_dir, t2v_model="tiny", i2v_model="tiny-i2v", device="cpu"
        ),
        lease_seconds=5.0,
        progress_interval_s=0.0,
        poll_interval_s=0.05,
    )


@pytest.fixture
async def job_queue(tmp_path: Path) -> AsyncIterator[JobQueue]:
    """A JobQueue with default limits on a fresh SQLite file."""
    queue = await JobQueue.open(tmp_path / "reelbot.db")
    yield queue
    await queue.close()


# --- web gallery (web engineer) ---


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless chromium, started once per session (it takes a second or two)."""
    problem = missing_browser()
    if problem is not None:
        pytest.fail(problem)
    driver = start_chromium()
    try:
        yield Browser(driver)
    finally:
        driver.quit()


@dataclass
class Site:
    """The web server under test, over a :class:`Reel`'s data folder and queue."""

    url: str
    context: WebContext


@pytest.fixture
async def site(reel: Reel) -> AsyncIterator[Site]:
    """reelbot's web server on 127.0.0.1:<free port>, over ``reel``'s database and clips."""
    context = web_context(reel.settings, reel.queue)
    async with WebServer(make_app(context), host="127.0.0.1", port=0) as server:
        yield Site(server.url, context)


# --- more than one machine (broker engineer) ---


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a free port in a temp folder, started once per session."""
    problem = missing_redis()
    if problem is not None:
        pytest.fail(problem)
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster on a free port, started once per session (for SAQ's
    Postgres queue)."""
    problem = missing_postgres()
    if problem is not None:
        pytest.fail(problem)
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def broker_url(redis_server: RedisServer) -> str:
    """The session's Redis as a broker, emptied for this test (and running again if a test
    took it away)."""
    if redis_server.process is None:
        redis_server.start()
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def reel_mode(request: pytest.FixtureRequest) -> str:
    """Where ``reel``'s workers run: beside the bot (``single-host``) unless a test is
    parametrized over ``BOTH_MODES`` (``indirect=True``)."""
    return str(getattr(request, "param", SINGLE_HOST))
