"""The ``reelbot`` command: run the bot and workers, run a worker or a scene writer, make a
clip or a storyboard film, rewrite a prompt, serve the web gallery, verify a clip's content
credentials.

Each subcommand lives in its own module here (``run``, ``worker``, ``rewriter``, ``generate``,
``storyboard``, ``rewrite``, ``web``, ``verify``) exposing ``add_parser(subparsers)``; heavy
imports (torch, discord) happen inside the handlers so ``reelbot --help`` stays instant. Every
subcommand logs at REELBOT_LOG_LEVEL (from the environment or ``.env``) unless ``-v`` asks for
debug messages.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from jobqueue.cli import DEFAULT_LOG_LEVEL, EXIT_BAD_REQUEST, EXIT_INTERRUPTED, configure_logging
from jobqueue.settings import BadSetting, read_settings

__all__ = [
    "EXIT_BAD_REQUEST",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "BadSetting",
    "build_parser",
    "log_level",
    "main",
    "read_settings",
]

SUBCOMMANDS = ("run", "worker", "rewriter", "generate", "storyboard", "rewrite", "web", "verify")
EXIT_FAILED = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reelbot", description="Self-hosted Discord bot that makes short video clips."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    # A subcommand whose output is for a person at a terminal sets a quieter default.
    parser.set_defaults(default_log_level=DEFAULT_LOG_LEVEL)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"bot.cli.{name}").add_parser(subparsers)
    return parser


def log_level(args: argparse.Namespace) -> str:
    """DEBUG with ``-v``; else REELBOT_LOG_LEVEL when it is set; else the command's default."""
    if args.verbose:
        return "DEBUG"
    return configured_log_level() or str(args.default_log_level)


def configured_log_level() -> str | None:
    """REELBOT_LOG_LEVEL from the environment or ``.env``, when it is set."""
    from jobqueue.settings import CoreSettings

    try:
        settings = CoreSettings()
    except ValidationError:
        # The command reads its settings again and names the bad one in a sentence.
        return None
    return settings.log_level if "log_level" in settings.model_fields_set else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(log_level(args), logger_name=args.handler.__module__)
    try:
        code: int = args.handler(args)
    except BadSetting as bad:
        sys.stderr.write(f"{bad}\n")
        return EXIT_BAD_REQUEST
    return code
