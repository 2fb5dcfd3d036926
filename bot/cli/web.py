"""``reelbot web``: the web gallery, /healthz and /metrics alone, over the bot's data folder."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import TYPE_CHECKING

from bot.cli import EXIT_BAD_REQUEST, EXIT_FAILED, read_settings

if TYPE_CHECKING:
    from bot.web.settings import WebSettings

log = logging.getLogger(__name__)

PORT_OFF = (
    "REELBOT_WEB_PORT is 0, which turns the web server off: give a port with --port or in .env."
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "web",
        help="serve the web gallery, /healthz and /metrics without the bot",
        description=(
            "Serve the gallery of public clips, /healthz and /metrics from the data folder the"
            " bot uses (REELBOT_DATA_DIR), until stopped (Ctrl-C)."
        ),
    )
    parser.add_argument("--host", help="address to listen on (default REELBOT_WEB_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (default REELBOT_WEB_PORT)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from bot.web.settings import WebSettings

    settings = read_settings(WebSettings)
    host = args.host or settings.web_host
    port = settings.web_port if args.port is None else args.port
    if port == 0:
        sys.stderr.write(PORT_OFF + "\n")
        return EXIT_BAD_REQUEST
    try:
        asyncio.run(serve(settings, host=host, port=port))
    except OSError as exc:
        sys.stderr.write(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.\n")
        return EXIT_FAILED
    return 0


async def serve(settings: WebSettings, *, host: str, port: int) -> None:
    from bot.web.app import make_app
    from bot.web.server import WebServer, web_context
    from jobqueue.jobs import JobQueue

    queue = await JobQueue.open(settings.database_path)
    try:
        context = web_context(settings, queue)
        async with WebServer(make_app(context), host=host, port=port) as server:
            log.info("serving the gallery at %s/", settings.public_url or server.url)
            await stopped()
    finally:
        await queue.close()


async def stopped() -> None:
    """Wait for Ctrl-C or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
