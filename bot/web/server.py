"""Running the web server: inside ``reelbot run`` beside the bot, or alone (``reelbot web``).

The server is built over the queue's database (:func:`web_context`) and listens until its
block ends (:class:`WebServer`). Inside the bot process it also reports whether the bot is
connected and how fast interactions are acknowledged: :func:`bot.replies.acknowledge`
dispatches :data:`~bot.replies.ACKNOWLEDGED` with the seconds it took, which the metrics hear.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from types import TracebackType

import discord
from aiohttp import web
from discord.ext import commands
from prometheus_client import CollectorRegistry

from bot.replies import ACKNOWLEDGED
from bot.web.app import WebContext, make_app
from bot.web.health import HealthCheck
from bot.web.metrics import ReelMetrics
from bot.web.settings import WebSettings
from jobqueue.broker.dispatcher import Dispatcher
from jobqueue.gallery import Gallery
from jobqueue.jobs import JobQueue
from jobqueue.telemetry import Telemetry

log = logging.getLogger(__name__)


def web_context(
    settings: WebSettings,
    queue: JobQueue,
    *,
    registry: CollectorRegistry | None = None,
    bot_connected: Callable[[], bool] | None = None,
    broker_reachable: Callable[[], bool] | None = None,
) -> WebContext:
    """What the server's handlers need, over ``queue``'s database."""
    telemetry = Telemetry(queue.db)
    return WebContext(
        gallery=Gallery(queue.db),
        health=HealthCheck(
            telemetry, bot_connected=bot_connected, broker_reachable=broker_reachable
        ),
        metrics=ReelMetrics(registry or CollectorRegistry(), telemetry),
        clips_dir=settings.clips_dir,
        public_url=settings.public_url,
        signing=settings.signing_identity(),
    )


class WebServer:
    """The application listening on ``host``:``port`` until the ``async with`` block ends."""

    def __init__(self, app: web.Application, *, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._runner = web.AppRunner(app, access_log=None)

    @property
    def url(self) -> str:
        """Where it listens (the real port, when it was asked for port 0)."""
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def __aenter__(self) -> WebServer:
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.host, self.port).start()
        except BaseException:
            await self._runner.cleanup()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._runner.cleanup()


@contextlib.asynccontextmanager
async def beside_bot(
    settings: WebSettings,
    queue: JobQueue,
    bot: commands.Bot,
    *,
    dispatcher: Dispatcher | None = None,
) -> AsyncIterator[WebContext | None]:
    """The web server of ``reelbot run``, when it is on; the bot runs on without it when it
    cannot listen (the log says why). With a ``dispatcher`` /healthz also checks its broker."""
    if not settings.web_enabled:
        yield None
        return
    context = web_context(
        settings,
        queue,
        bot_connected=lambda: bot.is_ready() and not bot.is_closed(),
        broker_reachable=(lambda: dispatcher.reachable) if dispatcher is not None else None,
    )

    async def acknowledged(interaction: discord.Interaction, seconds: float) -> None:
        context.metrics.observe_ack(seconds)

    server = WebServer(make_app(context), host=settings.web_host, port=settings.web_port)
    async with contextlib.AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(server)
        except OSError as exc:
            log.error(
                "the web server cannot listen on %s:%s (%s); the bot runs without it",
                settings.web_host,
                settings.web_port,
                exc,
            )
            yield None
            return
        bot.add_listener(acknowledged, f"on_{ACKNOWLEDGED}")
        stack.callback(bot.remove_listener, acknowledged, f"on_{ACKNOWLEDGED}")
        log.info("web gallery, /healthz and /metrics at %s", settings.public_url or server.url)
        yield context
