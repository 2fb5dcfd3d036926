"""Running the bot for ``reelbot run``: queue, moderation, the Discord client, workers and
the web server.

The workers are child processes (``jobqueue.supervisor``): one that crashes is restarted
while the bot keeps answering. With ``REELBOT_BROKER_URL`` set, a dispatcher in this process
also sends jobs to workers on other hosts (``jobqueue.broker``). The token is checked with
Discord (``login``) before any worker starts, so a wrong token costs a second, not a model
load.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from contextlib import AbstractAsyncContextManager

import aiohttp
import discord
import yarl
from discord.gateway import DiscordWebSocket

from bot.client import make_bot
from bot.settings import Settings
from bot.web.server import beside_bot
from jobqueue.broker.dispatcher import DispatchConfig, Dispatcher
from jobqueue.jobs import JobQueue, QueueLimits
from jobqueue.moderation import Moderation
from jobqueue.supervisor import WorkerSupervisor

log = logging.getLogger(__name__)


def point_discord_at(settings: Settings) -> None:
    """Send REST calls and the gateway where settings say (a proxy, or a test server)."""
    discord.http.Route.BASE = settings.discord_api_base.rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


async def serve(settings: Settings, *, workers: bool = True) -> None:
    """Run until SIGINT/SIGTERM or until Discord closes the connection for good."""
    point_discord_at(settings)
    limits = QueueLimits(
        max_waiting_per_user=settings.max_waiting_per_user,
        max_running_per_user=settings.max_running_per_user,
        max_daily_per_user=settings.max_daily_per_user,
        max_queue=settings.max_queue,
    )
    queue = await JobQueue.open(
        settings.database_path, limits=limits, max_attempts=settings.max_attempts
    )
    try:
        async with aiohttp.ClientSession() as session:
            moderation = moderation_for(settings, queue)
            bot = make_bot(settings, queue=queue, moderation=moderation, session=session)
            async with bot:
                await bot.login(settings.discord_token)
                # Made (or the owner's checked) before any worker signs a clip with it.
                await asyncio.to_thread(settings.signing_identity().ensure)
                async with (
                    worker_processes(settings, enabled=workers),
                    remote_workers(settings, queue, moderation) as dispatcher,
                    beside_bot(settings, queue, bot, dispatcher=dispatcher),
                ):
                    await connect_until_stopped(bot)
    finally:
        await queue.close()


def moderation_for(settings: Settings, queue: JobQueue) -> Moderation:
    """Moderation on the queue's database, with the server owner's strike rules."""
    return Moderation(
        queue.db,
        strikes_for_ban=settings.strikes_for_ban,
        strike_window_s=settings.strike_window_hours * 3600,
        strike_ban_s=settings.strike_ban_hours * 3600,
    )


def worker_processes(settings: Settings, *, enabled: bool) -> AbstractAsyncContextManager[object]:
    return WorkerSupervisor(settings) if enabled else contextlib.nullcontext()


def remote_workers(
    settings: Settings, queue: JobQueue, moderation: Moderation
) -> AbstractAsyncContextManager[Dispatcher | None]:
    """The dispatcher to workers on other hosts, when a broker is configured."""
    if not settings.broker_url:
        return contextlib.nullcontext()
    config = DispatchConfig.from_settings(settings)
    return Dispatcher(queue, settings.broker_url, config=config, moderation=moderation)


async def connect_until_stopped(bot: discord.Client) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    connection = asyncio.create_task(bot.connect())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({connection, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if connection.done():
        stopping.cancel()
        connection.result()
        return
    log.info("stopping: closing the Discord connection and the workers")
    await bot.close()
    with contextlib.suppress(asyncio.CancelledError):
        await connection
