"""``reelbot rewrite "a cat surfing"``: show what the prompt rewriter makes of an idea.

Uses the configured rewriter (REELBOT_REWRITER and friends) unless told otherwise, and prints
the user's prompt, the rewritten one, and why the original was kept when it was.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, cast

from bot.cli import EXIT_BAD_REQUEST, EXIT_INTERRUPTED, read_settings

if TYPE_CHECKING:
    from PIL import Image

    from jobqueue.settings import CoreSettings
    from pipeline.rewrite import RewriteMode, RewriterConfig, RewriteResult
    from pipeline.rewrite.config import BackendName


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "rewrite",
        help="rewrite a prompt into a detailed scene, as the worker does",
        description="Rewrite a short idea into a detailed video prompt and print both.",
    )
    parser.add_argument("prompt", help="the idea to rewrite")
    parser.add_argument(
        "--mode",
        choices=("t2v", "i2v"),
        default="t2v",
        help="t2v describes a whole scene; i2v only motion and camera (default: t2v)",
    )
    parser.add_argument("--seed", type=int, default=0, help="same seed, same rewrite (default: 0)")
    parser.add_argument(
        "--backend",
        choices=("local", "openai", "off"),
        help="who rewrites (default: REELBOT_REWRITER)",
    )
    parser.add_argument(
        "--model",
        help="model for that backend: a local model id or folder, or the endpoint's model name "
        "(default: REELBOT_REWRITER_MODEL or REELBOT_OPENAI_MODEL)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        help="seconds the rewrite may take (default: REELBOT_REWRITER_TIMEOUT_S)",
    )
    parser.add_argument(
        "--image",
        type=Path,
        help="the picture an i2v clip starts from; a vision-language model looks at it",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from jobqueue.settings import CoreSettings

    if not args.prompt.strip():
        sys.stderr.write('The prompt is empty; try reelbot rewrite "a cat surfing".\n')
        return EXIT_BAD_REQUEST
    image = None
    if args.image is not None:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(args.image) as opened:
                image = opened.convert("RGB")
        except (OSError, UnidentifiedImageError) as exc:
            sys.stderr.write(f"Cannot read the picture {args.image}: {exc}\n")
            return EXIT_BAD_REQUEST
    config = rewriter_config(read_settings(CoreSettings), backend=args.backend, model=args.model)
    if args.timeout is not None:
        config = dataclasses.replace(config, timeout_s=args.timeout)
    try:
        result = asyncio.run(
            rewrite_once(config, args.prompt, mode=args.mode, seed=args.seed, image=image)
        )
    except KeyboardInterrupt:
        sys.stderr.write("Stopped.\n")
        return EXIT_INTERRUPTED
    print_result(result, out=sys.stdout)
    return 0


def rewriter_config(
    settings: CoreSettings, *, backend: str | None = None, model: str | None = None
) -> RewriterConfig:
    """The rewriter the settings describe, with the command line's overrides."""
    chosen = cast("BackendName", backend or settings.rewriter)
    return dataclasses.replace(
        settings.rewriter_config(),
        backend=chosen,
        local_model=(model if chosen == "local" and model else settings.rewriter_model),
        openai_model=(model if chosen == "openai" and model else settings.openai_model),
    )


async def rewrite_once(
    config: RewriterConfig,
    prompt: str,
    *,
    mode: RewriteMode,
    seed: int,
    image: Image.Image | None = None,
) -> RewriteResult:
    from pipeline.rewrite import build_rewriter

    rewriter = build_rewriter(config)
    try:
        await rewriter.warm_up()
        return await rewriter.rewrite(prompt, mode=mode, seed=seed, image=image)
    finally:
        await rewriter.aclose()


def print_result(result: RewriteResult, *, out: TextIO) -> None:
    out.write(f"Original:  {result.original}\n")
    out.write(f"Rewritten: {result.rewritten}\n")
    if result.fallback_reason is not None:
        out.write(f"Not rewritten ({result.fallback_reason}): the original prompt is used.\n")
    if result.model is not None:
        source = "from the cache" if result.cached else f"{result.seconds:.1f} s"
        out.write(f"Rewriter:  {result.backend}, {result.model} ({source})\n")
