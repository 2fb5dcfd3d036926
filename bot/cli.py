"""The ``reelbot`` command: run the bot and workers, run a worker, make a clip, rewrite a prompt.

Each subcommand lives in its own module (``bot/cli_<name>.py``) exposing
``add_parser(subparsers)``; heavy imports (torch, discord) happen inside the handlers so
``reelbot --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

SUBCOMMANDS = ("cli_run", "cli_worker", "cli_generate", "cli_rewrite")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reelbot", description="Self-hosted Discord bot that makes short video clips."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"bot.{name}").add_parser(subparsers)
    return parser


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging("DEBUG" if args.verbose else "INFO")
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
