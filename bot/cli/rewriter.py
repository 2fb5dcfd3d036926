"""``reelbot rewriter``: run a scene writer alone, on the same queue as the bot."""

from __future__ import annotations

import argparse
import sys

NOTHING_TO_WRITE = (
    "REELBOT_REWRITER is off: prompts are not rewritten, so there are no scenes to write."
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from jobqueue.scene_cli import add_scene_writer_arguments

    parser = subparsers.add_parser(
        "rewriter",
        help="run a scene writer on the job queue",
        description=(
            "Rewrite the prompts of waiting jobs into scenes before a GPU worker takes them,"
            " until stopped (Ctrl-C)."
        ),
    )
    add_scene_writer_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from bot.cli import EXIT_BAD_REQUEST, read_settings
    from jobqueue.scene_cli import run_scene_writer
    from jobqueue.settings import CoreSettings

    settings = read_settings(CoreSettings)
    if settings.rewriter == "off":
        sys.stderr.write(NOTHING_TO_WRITE + "\n")
        return EXIT_BAD_REQUEST
    return run_scene_writer(args, settings)
