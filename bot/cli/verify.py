"""``reelbot verify``: what a clip's content credentials (its C2PA manifest) say, and whether
they hold."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import ValidationError

from bot.cli import EXIT_BAD_REQUEST, EXIT_FAILED


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="check the content credentials (C2PA manifest) of clips",
        description=(
            "Print what each clip's signed C2PA manifest says (made by an AI model, the model,"
            " the seed, the prompt's SHA-256) and whether it holds. Exits 1 when a clip has no"
            " manifest or an invalid one (a changed file)."
        ),
    )
    parser.add_argument("clips", nargs="+", type=Path, metavar="CLIP", help="MP4 files")
    parser.add_argument("--json", action="store_true", help="print one JSON object per clip")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.provenance import verify_clip

    trust_anchor = own_trust_anchor()
    all_valid = True
    for path in args.clips:
        if not path.is_file():
            sys.stderr.write(f"{path}: no such file.\n")
            return EXIT_BAD_REQUEST
        report = verify_clip(path, trust_anchor=trust_anchor)
        all_valid = all_valid and report.valid
        if args.json:
            sys.stdout.write(json.dumps({"file": str(path), **report.as_dict()}) + "\n")
        else:
            lines = "".join(f"  {line}\n" for line in report.lines())
            sys.stdout.write(f"{path}\n{lines}")
    return 0 if all_valid else EXIT_FAILED


def own_trust_anchor() -> str | None:
    """The root certificate this reelbot signs with (from its settings), if there is one."""
    from jobqueue.settings import CoreSettings

    try:
        return CoreSettings().signing_identity().trust_anchor()
    except (ValidationError, OSError):
        return None
