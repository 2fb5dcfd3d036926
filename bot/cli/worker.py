"""``reelbot worker``: run a GPU worker alone, on the same queue as the bot."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from jobqueue.cli import add_worker_arguments

    parser = subparsers.add_parser(
        "worker",
        help="run a GPU worker on the job queue",
        description="Take jobs from the queue and make their clips, until stopped (Ctrl-C).",
    )
    add_worker_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from bot.cli import read_settings
    from jobqueue.cli import run_worker
    from jobqueue.settings import CoreSettings

    return run_worker(args, read_settings(CoreSettings), err=sys.stderr)
