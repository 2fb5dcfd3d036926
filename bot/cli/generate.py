"""``reelbot generate "prompt"``: one clip from the command line, without Discord or a queue.

The same pipeline calls the worker makes (:meth:`pipeline.clip.ClipMaker.make_clip`, and
:meth:`~pipeline.clip.ClipMaker.make_drafts` for ``--drafts`` and ``--vary``), for trying a
model or a GPU. Prints the clip's path, its seed and where the time went, then what the output
safety check finds in it (the worker's classifiers and thresholds; ``--no-safety`` skips it).
The clip is written whatever the verdict: it is the user's own terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bot.cli import EXIT_BAD_REQUEST, EXIT_FAILED, EXIT_INTERRUPTED, read_settings
from bot.cli.safety import report_safety, safety_verdict
from bot.cli.terminal import ProgressBar, quiet_libraries

if TYPE_CHECKING:
    from jobqueue.settings import CoreSettings
    from pipeline.clip import ClipMaker, MadeClip, MadeDrafts, StageChange
    from pipeline.errors import ClipFailed
    from pipeline.preview import PreviewOptions
    from pipeline.request import ClipRequest, ResolvedRequest
    from pipeline.rewrite import PromptRewriter

DRAFTS_KEEP_SHAPE = (
    "--from-draft keeps the draft's length and aspect; leave out --aspect, --frames and --duration."
)
ONE_KIND = "Give one of --drafts/--vary and --from-draft, not both."

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="make one clip from a prompt",
        description="Make one clip from a prompt with the local video model, without Discord.",
    )
    parser.add_argument("prompt", help="what the clip should show")
    parser.add_argument(
        "--model",
        help="preset (wan2.1-t2v-1.3b, wan2.1-t2v-1.3b-fast, wan2.1-i2v-14b-480p, "
        "wan2.1-flf2v-14b-720p, ltx-video, tiny, tiny-i2v, tiny-flf2v), "
        "diffusers model id or local folder (default: REELBOT_MODEL, or REELBOT_I2V_MODEL "
        "with --image)",
    )
    parser.add_argument("--seed", type=int, help="random seed (default: a random one, printed)")
    parser.add_argument("--aspect", help="16:9, 9:16 or 1:1 (default: 16:9)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--frames", type=int, help="frame count (default: the model's)")
    length.add_argument("--duration", type=float, help="length in seconds")
    parser.add_argument("--fps", type=int, help="frames per second (default: the model's)")
    parser.add_argument("--steps", type=int, help="denoising steps (default: the model's)")
    parser.add_argument("--guidance", type=float, help="guidance scale (default: the model's)")
    parser.add_argument("--negative", default="", help="what the clip should avoid")
    parser.add_argument("--image", type=Path, help="start image, for image-to-video models")
    ending = parser.add_mutually_exclusive_group()
    ending.add_argument(
        "--end-image",
        type=Path,
        help="picture the clip ends on, with --image (a first-last-frame model: "
        "REELBOT_END_FRAME_MODEL unless --model names one)",
    )
    ending.add_argument(
        "--loop", action="store_true", help="end on the start image: a seamless loop"
    )
    parser.add_argument("--hd", action="store_true", help="larger size and more steps")
    parser.add_argument(
        "--enhance",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="rewrite the prompt into a detailed scene first, with REELBOT_REWRITER (default: no)",
    )
    parser.add_argument(
        "-o", "--output", type=Path, help="where to write the MP4 (default: reelbot-<seed>.mp4)"
    )
    parser.add_argument(
        "--drafts",
        type=int,
        choices=range(1, 5),
        metavar="N",
        help="make N quick drafts (1-4) instead: a labelled grid at -o, each draft beside it "
        "(<name>-1.mp4, ...)",
    )
    parser.add_argument(
        "--vary",
        type=Path,
        metavar="DRAFT",
        help="make new drafts near the draft at DRAFT (four, or --drafts N)",
    )
    parser.add_argument(
        "--from-draft",
        type=Path,
        metavar="DRAFT",
        help="render the draft at DRAFT at full quality, keeping its composition and motion",
    )
    parser.add_argument(
        "--preview",
        type=Path,
        metavar="PATH",
        help="keep the latest live preview (an animated WebP) at PATH while it renders",
    )
    parser.add_argument(
        "--no-safety",
        dest="safety",
        action="store_false",
        help="skip the output safety check (default: print its verdict and scores)",
    )
    # The terminal is for the progress bar and the result; REELBOT_LOG_LEVEL or -v say more.
    parser.set_defaults(handler=run, default_log_level="WARNING")


def run(args: argparse.Namespace) -> int:
    from jobqueue.settings import CoreSettings

    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        quiet_libraries()
    try:
        return generate_clip(args, read_settings(CoreSettings), out=sys.stdout, err=sys.stderr)
    except KeyboardInterrupt:
        sys.stderr.write("Stopped.\n")
        return EXIT_INTERRUPTED


def generate_clip(
    args: argparse.Namespace, settings: CoreSettings, *, out: TextIO, err: TextIO
) -> int:
    """Make the clip; failures the user can act on become one line on ``err``."""
    from pipeline.clip import ClipMaker, MadeClip
    from pipeline.errors import ClipFailed, StartImageUnreadable

    if (args.drafts or args.vary) and args.from_draft:
        err.write(f"{ONE_KIND}\n")
        return EXIT_BAD_REQUEST
    if args.from_draft and (args.aspect or args.frames or args.duration):
        err.write(f"{DRAFTS_KEEP_SHAPE}\n")
        return EXIT_BAD_REQUEST
    models = settings.model_choice()
    end_frame = args.loop or args.end_image is not None
    model = args.model or models.model_for("i2v" if args.image else "t2v", end_frame=end_frame)
    preview = PreviewFile(args.preview) if args.preview else None
    options = _preview_options(settings) if preview else None
    try:
        maker = ClipMaker(models, signing=settings.signing_identity(), preview=options)
        made = asyncio.run(_make(maker, args, model, settings, out=out, preview=preview))
    except StartImageUnreadable as exc:
        err.write(f"Cannot read the {exc.which} {exc.path}: {exc.reason}.\n")
        return EXIT_BAD_REQUEST
    except ClipFailed as exc:
        return report_failure(exc, err)
    if isinstance(made, MadeClip):
        _report(out, made)
        checked = made.clip
    else:
        _report_drafts(out, made, args.prompt)
        checked = made.grid
    if args.safety:
        report_safety(out, safety_verdict(settings, [checked]))
    if preview is not None and not preview.written:
        err.write(f"no preview was written: {preview.why_none(made.request.model)}\n")
    return 0


def report_failure(exc: ClipFailed, err: TextIO) -> int:
    """One line on ``err`` saying why the clip was not made, and the exit code: 2 for a
    request to change, 1 otherwise."""
    from pipeline.encode import ClipTooLarge
    from pipeline.errors import InvalidRequest

    if isinstance(exc, InvalidRequest):
        err.write(f"{exc}\n")
        return EXIT_BAD_REQUEST
    if isinstance(exc, ClipTooLarge):
        err.write(f"{str(exc).rstrip('.')}; the smallest attempt is at {exc.best.path}.\n")
        return EXIT_FAILED
    log.debug("making the clip failed: %s", exc.detail)
    err.write(f"{exc}\n")
    return EXIT_FAILED


async def _make(
    maker: ClipMaker,
    args: argparse.Namespace,
    model: str,
    settings: CoreSettings,
    *,
    out: TextIO,
    preview: PreviewFile | None,
) -> MadeClip | MadeDrafts:
    from bot.cli.rewrite import print_result

    rewriter = _rewriter(settings) if args.enhance else None
    progress = ProgressBar()

    async def on_stage(change: StageChange) -> None:
        if change.prompt is not None and change.prompt.rewrite is not None:
            print_result(change.prompt.rewrite, out=out)
        if preview is not None and change.total_steps:
            preview.steps = change.total_steps

    try:
        if args.drafts or args.vary:
            return await maker.make_drafts(
                _request_from(args),
                model=model,
                output=lambda request: _output_path(args, request),
                max_bytes=settings.max_upload_bytes,
                near=args.vary,
                count=args.drafts or 4,
                start_image=args.image,
                rewriter=rewriter,
                on_stage=on_stage,
                on_step=progress.step,
                on_preview=preview,
            )
        return await maker.make_clip(
            _request_from(args),
            model=model,
            output=lambda request: _output_path(args, request),
            max_bytes=settings.max_upload_bytes,
            start_image=args.image,
            end_image=args.end_image,
            rewriter=rewriter,
            from_draft=args.from_draft,
            on_stage=on_stage,
            on_step=progress.step,
            on_preview=preview,
        )
    finally:
        progress.close()
        if rewriter is not None:
            await rewriter.aclose()


def _rewriter(settings: CoreSettings) -> PromptRewriter:
    from pipeline.rewrite import build_rewriter

    return build_rewriter(settings.rewriter_config())


def _preview_options(settings: CoreSettings) -> PreviewOptions:
    """Previews after every step but the last, as fast as they encode: a file spends no
    channel's budget, and the every-few-steps of a bot would show nothing of a run of two
    steps (the tiny model's). Asked for with --preview even where the setting turns them off."""
    from pipeline.preview import DEFAULT_PREVIEW

    configured = settings.preview_options() or DEFAULT_PREVIEW
    return replace(configured, every_steps=1, min_seconds=0.0)


class PreviewFile:
    """The ``on_preview`` of --preview: writes each preview over the last at ``path`` (whole
    files only: a viewer never sees half a preview) and counts them, so a run that made none
    can say why."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.written = 0
        self.steps = 0
        """Steps the run takes, once it generates."""

    def __call__(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.partial")
        partial.write_bytes(data)
        partial.replace(self.path)
        self.written += 1

    def why_none(self, model: str) -> str:
        """Why a run that asked for previews wrote none."""
        if self.steps <= 1:
            return (
                "the run took one step, and previews are made between steps "
                "(more --steps give some)"
            )
        return f"{model} has no live preview (only models with Wan's latent layout have one)"


def _request_from(args: argparse.Namespace) -> ClipRequest:
    from pipeline.presets import ASPECTS
    from pipeline.request import ClipRequest

    return ClipRequest(
        prompt=args.prompt,
        negative_prompt=args.negative,
        aspect=args.aspect or ASPECTS[0],
        frames=args.frames,
        duration_s=args.duration,
        fps=args.fps,
        seed=args.seed,
        steps=args.steps,
        guidance=args.guidance,
        hd=args.hd,
        loop=args.loop,
    )


def _output_path(args: argparse.Namespace, request: ResolvedRequest) -> Path:
    output: Path = args.output or Path(f"reelbot-{request.seed}.mp4")
    return output


def _report(out: TextIO, made: MadeClip) -> None:
    from pipeline.encode import format_bytes

    clip, request = made.clip, made.request
    out.write(f"clip: {clip.path.resolve()}\n")
    out.write(f"poster: {clip.poster_path.resolve()}\n")
    out.write(f"seed: {request.seed}\n")
    out.write(
        f"model: {request.model}, {clip.width}x{clip.height}, {clip.frames} frames at "
        f"{clip.fps} fps, {request.steps} steps, guidance {request.guidance:g}, "
        f"{format_bytes(clip.size_bytes)}\n"
    )
    _report_time(out, made.timings, rewritten=made.prompt.rewrite is not None)


def _report_drafts(out: TextIO, made: MadeDrafts, prompt: str) -> None:
    from pipeline.encode import format_bytes

    request, first = made.request, made.drafts[0]
    out.write(f"grid: {made.grid.path.resolve()}\n")
    for number, (draft, seed) in enumerate(zip(made.drafts, made.seeds, strict=True), start=1):
        out.write(f"draft {number}: {draft.path.resolve()} (seed {seed})\n")
    out.write(f"seed: {request.seed}\n")
    out.write(
        f"model: {request.model}, {len(made.drafts)} drafts of {first.width}x{first.height}, "
        f"{first.frames} frames at {first.fps} fps, guidance {request.guidance:g}, grid "
        f"{format_bytes(made.grid.size_bytes)}\n"
    )
    _report_time(out, made.timings, rewritten=made.prompt.rewrite is not None)
    command = [
        "reelbot",
        "generate",
        "--model",
        request.model,
        "--from-draft",
        str(first.path.resolve()),
    ]
    out.write(f"render one: {shlex.join([*command, prompt])}\n")


def _report_time(out: TextIO, timings: dict[str, float], *, rewritten: bool) -> None:
    if not rewritten:
        timings = {name: seconds for name, seconds in timings.items() if name != "rewrite"}
    out.write("time: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items()))
    out.write("\n")
