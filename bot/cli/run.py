"""``reelbot run``: the Discord bot, with its GPU worker processes beside it."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bot.cli import EXIT_BAD_REQUEST, EXIT_FAILED, read_settings
from bot.settings import Settings

NO_TOKEN = (
    "DISCORD_TOKEN is not set: put your bot's token in .env"
    ' (see "Setting up the Discord application" in the README).'
)
BAD_TOKEN = (
    "Discord rejected DISCORD_TOKEN: copy the token again from the Bot tab of the developer"
    " portal into .env."
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the Discord bot and its GPU workers",
        description="Connect to Discord and make clips; settings come from .env.",
    )
    parser.add_argument(
        "--no-workers",
        action="store_true",
        help="run the bot alone (start workers elsewhere with `reelbot worker`)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = read_settings(Settings)
    if not settings.discord_token.strip():
        sys.stderr.write(NO_TOKEN + "\n")
        return EXIT_BAD_REQUEST
    # discord and torch load here, not at import: `reelbot --help` stays instant.
    import aiohttp
    import discord

    from bot.runner import serve
    from pipeline.provenance import ProvenanceError

    try:
        asyncio.run(serve(settings, workers=not args.no_workers))
    except discord.LoginFailure:
        sys.stderr.write(BAD_TOKEN + "\n")
        return EXIT_FAILED
    except aiohttp.ClientConnectionError as exc:
        sys.stderr.write(f"Could not reach Discord at {settings.discord_api_base}: {exc}.\n")
        return EXIT_FAILED
    except ProvenanceError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_BAD_REQUEST
    return 0
