"""Running a worker from the command line: ``python -m jobqueue`` and ``reelbot worker``.

Both take the same options (added by :func:`add_worker_arguments`) and run
:func:`run_worker`: settings from the environment and ``.env``, then the options on top.
SIGTERM and Ctrl-C stop the worker cleanly: a running job goes back to the queue.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from jobqueue.settings import CoreSettings

if TYPE_CHECKING:
    from jobqueue.worker import Worker

log = logging.getLogger(__name__)

DEFAULT_LOG_LEVEL = "INFO"
EXIT_INTERRUPTED = 130
"""What a shell reports for a command stopped by Ctrl-C (128 + SIGINT)."""


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--burst", action="store_true", help="run the jobs waiting now, then exit")
    parser.add_argument(
        "--database", type=Path, help="SQLite file of the queue (default: REELBOT_DATABASE)"
    )
    parser.add_argument(
        "--model", help="text-to-video preset, model id or folder (default: REELBOT_MODEL)"
    )
    parser.add_argument(
        "--i2v-model",
        help="image-to-video model for Animate and Extend (default: REELBOT_I2V_MODEL)",
    )
    parser.add_argument("--worker-id", help="name shown in /queue (default: host-pid)")
    parser.add_argument(
        "--lease-seconds", type=float, help="seconds a claim lasts without a heartbeat"
    )


def settings_with_overrides(settings: CoreSettings, args: argparse.Namespace) -> CoreSettings:
    overrides = {
        "database": args.database,
        "model": args.model,
        "i2v_model": args.i2v_model,
        "lease_seconds": args.lease_seconds,
    }
    given = {name: value for name, value in overrides.items() if value is not None}
    return settings.model_copy(update=given)


def run_worker(args: argparse.Namespace, settings: CoreSettings, *, err: TextIO) -> int:
    """Run one worker until it is stopped (or, with ``--burst``, the queue is drained)."""
    from jobqueue.worker import Worker, WorkerConfig

    settings = settings_with_overrides(settings, args)
    config = WorkerConfig.from_settings(settings)
    worker = Worker(settings.database_path, config=config, worker_id=args.worker_id)
    try:
        asyncio.run(_run_until_signalled(worker, burst=args.burst))
    except KeyboardInterrupt:
        err.write("Stopped.\n")
        return EXIT_INTERRUPTED
    return 0


async def _run_until_signalled(worker: Worker, *, burst: bool) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.stop)
    await worker.run(burst=burst)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jobqueue", description="Run a reelbot GPU worker on the job queue."
    )
    add_worker_arguments(parser)
    args = parser.parse_args(argv)
    settings = CoreSettings()
    configure_logging(settings.log_level)
    return run_worker(args, settings, err=sys.stderr)


def configure_logging(level: str) -> None:
    """Log to stderr at ``level`` (a name such as DEBUG); an unknown name logs at INFO and
    says so."""
    known = isinstance(logging.getLevelName(level.upper()), int)
    logging.basicConfig(
        level=level.upper() if known else DEFAULT_LOG_LEVEL,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not known:
        log.warning(
            "REELBOT_LOG_LEVEL=%s is not a log level (DEBUG, INFO, WARNING, ERROR); using %s",
            level,
            DEFAULT_LOG_LEVEL,
        )
