"""``reelbot storyboard "idea"``: a short film of several shots from the command line.

The language model (the rewriter's backend, ``REELBOT_REWRITER``) plans the shots
(:func:`pipeline.storyboard.write_plan`; ``--no-plan-model`` or a model in trouble: the simple
plan). Shot 1 is made from text with the text-to-video model, each next shot from the last
frame of the one before with the image-to-video model, so the film flows from shot to shot;
then :func:`pipeline.join.join_clips` joins them with cuts or crossfades. The shots stay in a
folder beside the film. Then the output safety check looks at every shot and prints the film's
verdict as the bot reaches it: the worst shot's, naming the shots (``--no-safety`` skips it).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bot.cli import EXIT_INTERRUPTED, read_settings

if TYPE_CHECKING:
    from jobqueue.settings import CoreSettings
    from pipeline.clip import ClipMaker, ModelChoice
    from pipeline.encode import ClipMetadata, EncodedClip
    from pipeline.request import ResolvedRequest
    from pipeline.rewrite import TextBackend
    from pipeline.storyboard import Plan

log = logging.getLogger(__name__)

TINY_I2V = "tiny-i2v"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from pipeline.storyboard import DEFAULT_SHOTS, MAX_SHOTS, MIN_SHOTS

    parser = subparsers.add_parser(
        "storyboard",
        help="make a short film of several shots from one idea",
        description="Plan shots from an idea with the language model, render each from the "
        "last frame of the one before, and join them into one film, without Discord.",
    )
    parser.add_argument("idea", help="what the film is about")
    parser.add_argument(
        "--model",
        help="text-to-video preset or model for the first shot (default: REELBOT_MODEL)",
    )
    parser.add_argument(
        "--i2v-model",
        help="image-to-video preset or model for the shots after the first (default: "
        f"REELBOT_I2V_MODEL; {TINY_I2V} with --model tiny)",
    )
    parser.add_argument(
        "--shots",
        type=int,
        default=DEFAULT_SHOTS,
        help=f"how many shots ({MIN_SHOTS}-{MAX_SHOTS}, default: {DEFAULT_SHOTS})",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        help="the longest a shot may last (default: the model's usual clip length)",
    )
    parser.add_argument(
        "--style", help="the look every shot shares, e.g. 'watercolour' or 'film noir'"
    )
    parser.add_argument(
        "--crossfade",
        type=float,
        metavar="S",
        help="fade each shot into the next over S seconds; 0: hard cuts "
        "(default: REELBOT_STORYBOARD_CROSSFADE_S, as for /storyboard)",
    )
    parser.add_argument("--aspect", help="16:9, 9:16 or 1:1 (default: 16:9)")
    parser.add_argument(
        "--seed", type=int, help="seed of the first shot; each next shot takes the next one"
    )
    parser.add_argument(
        "--no-plan-model",
        dest="plan_model",
        action="store_false",
        help="skip the language model: shoot the simple plan made from the idea",
    )
    parser.add_argument(
        "-o", "--output", type=Path, help="where to write the film (default: storyboard-<seed>.mp4)"
    )
    parser.add_argument(
        "--no-safety",
        dest="safety",
        action="store_false",
        help="skip the output safety check of the shots (default: print its verdict and scores)",
    )
    parser.set_defaults(handler=run, default_log_level="WARNING")


def run(args: argparse.Namespace) -> int:
    from bot.cli.terminal import quiet_libraries
    from jobqueue.settings import CoreSettings

    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        quiet_libraries()
    try:
        return make_film(args, read_settings(CoreSettings), out=sys.stdout, err=sys.stderr)
    except KeyboardInterrupt:
        sys.stderr.write("Stopped.\n")
        return EXIT_INTERRUPTED


@dataclass(frozen=True)
class _Models:
    first: str
    rest: str


def make_film(args: argparse.Namespace, settings: CoreSettings, *, out: TextIO, err: TextIO) -> int:
    """Plan, shoot and join; failures the user can act on become one line on ``err``."""
    from bot.cli.generate import report_failure
    from bot.cli.safety import report_safety, safety_verdict
    from pipeline.clip import ClipMaker
    from pipeline.errors import ClipFailed

    choice = settings.model_choice()
    models = _models_for(args, choice)
    try:
        seconds = _shot_seconds(args.seconds, models)
        maker = ClipMaker(choice, signing=settings.signing_identity(), preview=None)
        shots = asyncio.run(_plan_and_shoot(maker, args, models, seconds, settings, out=out))
    except ClipFailed as exc:
        return report_failure(exc, err)
    if args.safety:
        report_safety(out, safety_verdict(settings, shots))
    return 0


def _models_for(args: argparse.Namespace, choice: ModelChoice) -> _Models:
    from pipeline.presets import resolve_preset

    first = args.model or choice.model_for("t2v")
    if args.i2v_model:
        return _Models(first, args.i2v_model)
    # The tiny test model's partner is the tiny image-to-video model, whatever the settings say.
    rest = TINY_I2V if resolve_preset(first).is_tiny else choice.model_for("i2v")
    return _Models(first, rest)


def _shot_seconds(asked: float | None, models: _Models) -> float:
    """The longest shot: what was asked, within what both models can make in one clip (the
    bot's rule for /storyboard); by default the shorter of their usual clips."""
    from pipeline.errors import InvalidRequest
    from pipeline.presets import resolve_preset
    from pipeline.storyboard import shot_length_range

    first, rest = resolve_preset(models.first), resolve_preset(models.rest)
    shortest, longest = shot_length_range(first, rest)
    if asked is None:
        return min(longest, *(preset.default_frames / preset.fps for preset in (first, rest)))
    if not shortest <= asked <= longest:
        names = first.name if first.name == rest.name else f"{first.name} and {rest.name}"
        raise InvalidRequest(
            f"A shot of {asked:g} s is out of range for {names}; "
            f"choose {shortest:.1f} to {longest:.1f} seconds."
        )
    return asked


async def _plan_and_shoot(
    maker: ClipMaker,
    args: argparse.Namespace,
    models: _Models,
    seconds: float,
    settings: CoreSettings,
    *,
    out: TextIO,
) -> list[EncodedClip]:
    """The film's shots, once the film is written and printed."""
    from pipeline.errors import InvalidRequest
    from pipeline.join import join_clips
    from pipeline.provenance import ClipFacts, credit
    from pipeline.request import MAX_SEED
    from pipeline.storyboard import checked_shot_count

    checked_shot_count(args.shots)
    crossfade_s = settings.storyboard_crossfade_s if args.crossfade is None else args.crossfade
    if crossfade_s < 0:
        raise InvalidRequest(f"--crossfade is {crossfade_s:g} s; give 0 or more seconds.")
    seed = args.seed if args.seed is not None else secrets.randbelow(MAX_SEED + 1)
    started = time.perf_counter()
    plan = await _plan(args, seconds, seed, settings)
    planned_s = time.perf_counter() - started
    _print_plan(out, plan)
    output: Path = args.output or Path(f"storyboard-{seed}.mp4")
    shots = await _shoot(maker, plan, models, args, seed, output, settings.max_upload_bytes)
    shot_s = time.perf_counter() - started - planned_s
    film = await asyncio.to_thread(
        join_clips,
        [shot.path for shot in shots],
        output,
        crossfade_s=crossfade_s,
        metadata=_film_metadata(plan, seed, models),
        max_bytes=settings.max_upload_bytes,
    )
    if maker.signing is not None:
        facts = ClipFacts.of(model=models.first, seed=seed, prompt=plan.idea)
        film = await asyncio.to_thread(credit, film, facts, maker.signing)
    log.info("storyboard film %s: %d shots, %.1f s", film.path, len(shots), film.duration_s)
    _print_film(out, film, seed, models)
    out.write(f"time: plan {planned_s:.1f} s, shots {shot_s:.1f} s, join {film.seconds:.1f} s\n")
    return shots


async def _plan(
    args: argparse.Namespace, seconds: float, seed: int, settings: CoreSettings
) -> Plan:
    from pipeline.storyboard import fallback_plan, write_plan

    if not args.plan_model:
        return fallback_plan(
            args.idea,
            shots=args.shots,
            seconds=seconds,
            style=args.style,
            reason="--no-plan-model was given",
        )
    backend = _planning_backend(settings)
    try:
        return await write_plan(
            backend, args.idea, shots=args.shots, seconds=seconds, style=args.style, seed=seed
        )
    finally:
        if backend is not None:
            await backend.aclose()


def _planning_backend(settings: CoreSettings) -> TextBackend | None:
    """The rewriter's backend as configured; ``None`` when the rewriter is off."""
    from pipeline.rewrite.rewriter import build_backend

    config = settings.rewriter_config()
    return None if config.backend == "off" else build_backend(config)


async def _shoot(
    maker: ClipMaker,
    plan: Plan,
    models: _Models,
    args: argparse.Namespace,
    seed: int,
    output: Path,
    max_bytes: int,
) -> list[EncodedClip]:
    """Shot 1 from text, each next one from the previous shot's last frame."""
    from bot.cli.terminal import ProgressBar
    from pipeline.encode import last_frame
    from pipeline.presets import ASPECTS
    from pipeline.request import MAX_SEED, ClipRequest

    folder = output.with_name(f"{output.stem}-shots")
    folder.mkdir(parents=True, exist_ok=True)
    shots: list[EncodedClip] = []
    for index, shot in enumerate(plan.shots):
        start_image = None
        if shots:
            start_image = folder / f"shot-{index}-last-frame.png"
            last_frame(shots[-1].path).save(start_image)
        request = ClipRequest(
            prompt=plan.shot_prompt(index),
            aspect=args.aspect or ASPECTS[0],
            duration_s=shot.duration_s,
            camera=shot.camera,
            seed=(seed + index) % (MAX_SEED + 1),
        )
        path = folder / f"shot-{index + 1}.mp4"
        progress = ProgressBar()
        try:
            made = await maker.make_clip(
                request,
                model=models.rest if start_image else models.first,
                output=_always(path),
                max_bytes=max_bytes,
                start_image=start_image,
                on_step=progress.step,
            )
        finally:
            progress.close()
        log.info("shot %d of %d: %s", index + 1, len(plan.shots), made.clip.path)
        shots.append(made.clip)
    return shots


def _always(path: Path) -> Callable[[ResolvedRequest], Path]:
    return lambda _request: path


def _film_metadata(plan: Plan, seed: int, models: _Models) -> ClipMetadata:
    from pipeline.encode import ClipMetadata

    return ClipMetadata(prompt=plan.idea, seed=seed, model=f"{models.first}, {models.rest}")


def _print_plan(out: TextIO, plan: Plan) -> None:
    if plan.note:
        out.write(f"note: {plan.note}\n")
    out.write(f"sheet: {plan.sheet}\n")
    for number, shot in enumerate(plan.shots, start=1):
        camera = f", {shot.camera}" if shot.camera else ""
        out.write(f"shot {number} ({shot.duration_s:.1f} s{camera}): {shot.scene}\n")
    log.info("storyboard plan: %s", plan.to_json())
    out.flush()


def _print_film(out: TextIO, film: EncodedClip, seed: int, models: _Models) -> None:
    from pipeline.encode import format_bytes

    out.write(f"film: {film.path.resolve()}\n")
    out.write(f"poster: {film.poster_path.resolve()}\n")
    out.write(f"shots: {film.path.resolve().with_name(f'{film.path.stem}-shots')}\n")
    out.write(f"seed: {seed}\n")
    out.write(
        f"models: {models.first}, {models.rest}; {film.width}x{film.height}, "
        f"{film.duration_s:.1f} s at {film.fps} fps, {format_bytes(film.size_bytes)}\n"
    )
