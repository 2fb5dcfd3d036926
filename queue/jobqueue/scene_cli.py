"""Running a scene writer from the command line: ``python -m jobqueue.scene_cli`` (what
``reelbot run`` starts) and ``reelbot rewriter``.

Both take the options :func:`add_scene_writer_arguments` adds and run
:func:`run_scene_writer`; the writer (and the language model) is imported only then, so
building the parser stays instant. SIGTERM and Ctrl-C stop it: a scene being written goes back
to be written by the next writer.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from jobqueue.cli import EXIT_BAD_REQUEST, EXIT_INTERRUPTED, entry_point_settings
from jobqueue.settings import CoreSettings

if TYPE_CHECKING:
    from jobqueue.scene_writer import SceneWriter


def add_scene_writer_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--burst", action="store_true", help="write the scenes of the jobs waiting now, then exit"
    )
    parser.add_argument(
        "--database", type=Path, help="SQLite file of the queue (default: REELBOT_DATABASE)"
    )
    parser.add_argument("--writer-id", help="name in the log (default: scenes-host-pid)")


def run_scene_writer(args: argparse.Namespace, settings: CoreSettings) -> int:
    """Run one scene writer until it is stopped (or, with ``--burst``, no job needs a scene)."""
    from jobqueue.scene_writer import SceneWriter, SceneWriterConfig

    if args.database is not None:
        settings = settings.model_copy(update={"database": args.database})
    writer = SceneWriter(
        settings.database_path,
        config=SceneWriterConfig.from_settings(settings),
        writer_id=args.writer_id,
    )
    try:
        asyncio.run(_run_until_signalled(writer, burst=args.burst))
    except KeyboardInterrupt:
        sys.stderr.write("Stopped.\n")
        return EXIT_INTERRUPTED
    return 0


async def _run_until_signalled(writer: SceneWriter, *, burst: bool) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, writer.stop)
    await writer.run(burst=burst)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jobqueue.scene_cli",
        description="Write the scenes of waiting jobs with the configured prompt rewriter.",
    )
    add_scene_writer_arguments(parser)
    args = parser.parse_args(argv)
    settings = entry_point_settings(logger_name=__name__)
    if settings is None:
        return EXIT_BAD_REQUEST
    return run_scene_writer(args, settings)


if __name__ == "__main__":
    sys.exit(main())
