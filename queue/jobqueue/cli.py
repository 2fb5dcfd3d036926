"""Running a worker from the command line: ``python -m jobqueue`` and ``reelbot worker``.

Both take the same options (added by :func:`add_worker_arguments`) and run
:func:`run_worker`: settings from the environment and ``.env``, then the options on top.
SIGTERM and Ctrl-C stop the worker cleanly: a running job goes back to the queue. With
``--broker`` the worker runs on another host than the bot and takes its jobs through the
broker (:mod:`jobqueue.broker.remote_worker`); without it, from the bot's SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from jobqueue.settings import BadSetting, CoreSettings, read_settings

if TYPE_CHECKING:
    from jobqueue.broker.remote_worker import RemoteConfig

log = logging.getLogger(__name__)

DEFAULT_LOG_LEVEL = "INFO"
EXIT_INTERRUPTED = 130
"""What a shell reports for a command stopped by Ctrl-C (128 + SIGINT)."""
EXIT_BAD_REQUEST = 2
"""The command was asked for something it cannot do (a bad option or setting)."""
FROM_SETTINGS = "settings"
"""``--broker`` given without an address: the address is REELBOT_BROKER_URL."""


class Stoppable(Protocol):
    def stop(self) -> None: ...


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
    parser.add_argument(
        "--broker",
        nargs="?",
        const=FROM_SETTINGS,
        metavar="URL",
        help="take jobs through this broker (redis://... or postgresql://...) from a bot on"
        " another host; alone, the address in REELBOT_BROKER_URL",
    )
    parser.add_argument(
        "--models",
        help="with --broker: models this worker serves, comma-separated"
        " (default: REELBOT_WORKER_MODELS, else --model and --i2v-model)",
    )
    parser.add_argument(
        "--max-size",
        metavar="WxHxF",
        help="with --broker: the largest clip it takes, width x height x frames"
        " (default: REELBOT_WORKER_MAX_SIZE, else any)",
    )


def settings_with_overrides(settings: CoreSettings, args: argparse.Namespace) -> CoreSettings:
    overrides = {
        "database": args.database,
        "model": args.model,
        "i2v_model": args.i2v_model,
        "lease_seconds": args.lease_seconds,
        "worker_models": getattr(args, "models", None),
        "worker_max_size": getattr(args, "max_size", None),
    }
    given = {name: value for name, value in overrides.items() if value is not None}
    return settings.model_validate({**settings.model_dump(), **given})


def run_worker(args: argparse.Namespace, settings: CoreSettings, *, err: TextIO) -> int:
    """Run one worker until it is stopped (or, with ``--burst``, the queue is drained)."""
    from pydantic import ValidationError

    try:
        settings = settings_with_overrides(settings, args)
    except ValidationError as exc:
        err.write(f"{exc.errors()[0]['msg']}.\n")
        return EXIT_BAD_REQUEST
    if getattr(args, "broker", None) is not None:
        return _run_remote_worker(args, settings, err=err)
    from jobqueue.worker import Worker, WorkerConfig

    config = WorkerConfig.from_settings(settings)
    worker = Worker(settings.database_path, config=config, worker_id=args.worker_id)
    return _until_stopped(worker, worker.run(burst=args.burst), err=err)


def _run_remote_worker(args: argparse.Namespace, settings: CoreSettings, *, err: TextIO) -> int:
    url = settings.broker_url if args.broker == FROM_SETTINGS else args.broker.strip()
    if not url:
        err.write("--broker needs an address (redis://host:6379/0), or REELBOT_BROKER_URL.\n")
        return EXIT_BAD_REQUEST
    if args.burst or args.database is not None:
        err.write("--burst and --database work on the bot's host only, not with --broker.\n")
        return EXIT_BAD_REQUEST
    try:
        url = type(settings).model_validate({**settings.model_dump(), "broker_url": url}).broker_url
    except ValueError:
        err.write(f"{url!r} is not a broker address: use redis://... or postgresql://...\n")
        return EXIT_BAD_REQUEST
    from jobqueue.broker.remote_worker import RemoteWorker

    worker = RemoteWorker(url, config=remote_config(settings), worker_id=args.worker_id)
    return _until_stopped(worker, worker.run(), err=err)


def remote_config(settings: CoreSettings) -> RemoteConfig:
    """A remote worker's settings: what it serves, its card, the broker's byte cap."""
    from jobqueue.broker.remote_worker import RemoteConfig, gpu_total_memory
    from jobqueue.broker.routing import Capability
    from jobqueue.settings import parse_video_size, split_list
    from jobqueue.worker import WorkerConfig

    models = split_list(settings.worker_models) or [
        settings.model,
        settings.i2v_model,
        *split_list(settings.end_frame_model),
    ]
    capability = Capability.serving(
        models,
        max_video_pixels=parse_video_size(settings.worker_max_size),
        gpu_total_bytes=gpu_total_memory(),
    )
    return RemoteConfig(
        worker=WorkerConfig.from_settings(settings),
        capability=capability,
        max_transfer_bytes=settings.broker_max_bytes,
    )


def _until_stopped(worker: Stoppable, running: Coroutine[Any, Any, None], *, err: TextIO) -> int:
    try:
        asyncio.run(_run_until_signalled(worker, running))
    except KeyboardInterrupt:
        err.write("Stopped.\n")
        return EXIT_INTERRUPTED
    return 0


async def _run_until_signalled(worker: Stoppable, running: Coroutine[Any, Any, None]) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.stop)
    await running


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jobqueue", description="Run a reelbot GPU worker on the job queue."
    )
    add_worker_arguments(parser)
    args = parser.parse_args(argv)
    settings = entry_point_settings(logger_name=__name__)
    if settings is None:
        return EXIT_BAD_REQUEST
    return run_worker(args, settings, err=sys.stderr)


def entry_point_settings(*, logger_name: str) -> CoreSettings | None:
    """The settings of a ``python -m`` entry point, with logging set up at their level; None
    after a bad setting is said in one sentence on stderr (the caller exits 2)."""
    try:
        settings = read_settings(CoreSettings)
    except BadSetting as bad:
        sys.stderr.write(f"{bad}\n")
        return None
    configure_logging(settings.log_level, logger_name=logger_name)
    return settings


def configure_logging(level: str, *, logger_name: str) -> None:
    """Log to stderr at ``level`` (a name such as DEBUG); an unknown name logs at INFO and
    says so under ``logger_name`` (the command's module, so the line names the command)."""
    known = isinstance(logging.getLevelName(level.upper()), int)
    logging.basicConfig(
        level=level.upper() if known else DEFAULT_LOG_LEVEL,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not known:
        logging.getLogger(logger_name).warning(
            "REELBOT_LOG_LEVEL=%s is not a log level (DEBUG, INFO, WARNING, ERROR); using %s",
            level,
            DEFAULT_LOG_LEVEL,
        )
