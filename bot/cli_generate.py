"""``reelbot generate "prompt"``: one clip from the command line, without Discord or a queue.

The same pipeline the worker runs (presets, validation, the generator, the encoder), for
trying a model or a GPU. Prints the clip's path, its seed and where the time went.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from PIL import Image
    from tqdm import tqdm

    from jobqueue.settings import CoreSettings
    from pipeline.encode import EncodedClip
    from pipeline.generator import GenerationResult, VideoGenerator
    from pipeline.request import ClipRequest, ResolvedRequest
    from pipeline.rewrite import RewriteMode

log = logging.getLogger(__name__)

EXIT_FAILED = 1
EXIT_BAD_REQUEST = 2
EXIT_INTERRUPTED = 130


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="make one clip from a prompt",
        description="Make one clip from a prompt with the local video model, without Discord.",
    )
    parser.add_argument("prompt", help="what the clip should show")
    parser.add_argument(
        "--model",
        help="preset (wan2.1-t2v-1.3b, wan2.1-i2v-14b-480p, ltx-video, tiny, tiny-i2v), "
        "diffusers model id or local folder (default: REELBOT_MODEL, or REELBOT_I2V_MODEL "
        "with --image)",
    )
    parser.add_argument("--seed", type=int, help="random seed (default: a random one, printed)")
    parser.add_argument("--aspect", default="16:9", help="16:9, 9:16 or 1:1 (default: 16:9)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--frames", type=int, help="frame count (default: the model's)")
    length.add_argument("--duration", type=float, help="length in seconds")
    parser.add_argument("--fps", type=int, help="frames per second (default: the model's)")
    parser.add_argument("--steps", type=int, help="denoising steps (default: the model's)")
    parser.add_argument("--guidance", type=float, help="guidance scale (default: the model's)")
    parser.add_argument("--negative", default="", help="what the clip should avoid")
    parser.add_argument("--image", type=Path, help="start image, for image-to-video models")
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
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from jobqueue.settings import CoreSettings

    if not getattr(args, "verbose", False):
        _quiet_libraries()
    try:
        return generate_clip(args, CoreSettings(), out=sys.stdout, err=sys.stderr)
    except KeyboardInterrupt:
        sys.stderr.write("Stopped.\n")
        return EXIT_INTERRUPTED


def generate_clip(
    args: argparse.Namespace, settings: CoreSettings, *, out: TextIO, err: TextIO
) -> int:
    """Validate, load, generate, encode; user-caused failures become one line on ``err``."""
    from pipeline.encode import ClipTooLarge
    from pipeline.generator import InvalidRequest, ModelUnavailable, VideoGenerator
    from pipeline.presets import resolve_preset
    from pipeline.request import resolve_request

    model = args.model or (settings.i2v_model if args.image else settings.model)
    generator = VideoGenerator(
        resolve_preset(model),
        models_dir=settings.models_dir,
        device=settings.device,
        cpu_offload=settings.cpu_offload,
    )
    try:
        image = _open_image(args.image) if args.image else None
        request = resolve_request(generator.preset, _request_from(args), image=image)
    except (InvalidRequest, _UnreadableImage) as exc:
        err.write(f"{exc}\n")
        return EXIT_BAD_REQUEST
    original_prompt = request.prompt
    if args.enhance:
        request = _enhance(request, settings, out=out)
    try:
        load_s = generator.load()
        result = _generate_with_progress(generator, request)
    except ModelUnavailable as exc:
        log.debug("loading %s failed", model, exc_info=True)
        err.write(f"{exc}\n")
        return EXIT_FAILED
    output = args.output or Path(f"reelbot-{result.seed}.mp4")
    try:
        clip = _encode(result, original_prompt, request, output, settings.max_upload_bytes)
    except ClipTooLarge as exc:
        err.write(f"{str(exc).rstrip('.')}; the smallest attempt is at {exc.best.path}.\n")
        return EXIT_FAILED
    _report(out, clip, result, {"load": load_s, **result.timings, "encode": clip.seconds})
    return 0


class _UnreadableImage(Exception):
    pass


def _request_from(args: argparse.Namespace) -> ClipRequest:
    from pipeline.request import ClipRequest

    # The prompt as the user wrote it; --enhance replaces it after validation.
    return ClipRequest(
        prompt=args.prompt,
        negative_prompt=args.negative,
        aspect=args.aspect,
        frames=args.frames,
        duration_s=args.duration,
        fps=args.fps,
        seed=args.seed,
        steps=args.steps,
        guidance=args.guidance,
        hd=args.hd,
    )


def _open_image(path: Path) -> Image.Image:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.copy()
    except (OSError, UnidentifiedImageError) as exc:
        raise _UnreadableImage(f"Cannot read the start image {path}: {exc}.") from exc


def _generate_with_progress(
    generator: VideoGenerator, request: ResolvedRequest
) -> GenerationResult:
    from tqdm import tqdm

    bar: tqdm[None] | None = None

    def on_step(step: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc="denoising", unit="step", file=sys.stderr)
        bar.update(step - bar.n)

    try:
        return generator.generate(request, on_step=on_step)
    finally:
        if bar is not None:
            bar.close()


def _enhance(request: ResolvedRequest, settings: CoreSettings, *, out: TextIO) -> ResolvedRequest:
    """The request with the rewritten prompt; prints both prompts (the negative one is kept)."""
    from bot.cli_rewrite import print_result, rewrite_prompt

    mode: RewriteMode = "i2v" if request.start_image is not None else "t2v"
    rewrite = rewrite_prompt(settings, request.prompt, mode=mode, seed=request.seed)
    print_result(rewrite, out=out)
    return dataclasses.replace(request, prompt=rewrite.rewritten)


def _encode(
    result: GenerationResult,
    original_prompt: str,
    request: ResolvedRequest,
    output: Path,
    max_bytes: int,
) -> EncodedClip:
    from pipeline.encode import ClipMetadata, encode_mp4

    metadata = ClipMetadata(
        prompt=original_prompt,
        seed=result.seed,
        model=result.model,
        rewritten_prompt=request.prompt if request.prompt != original_prompt else None,
    )
    return encode_mp4(result.frames, result.fps, output, metadata=metadata, max_bytes=max_bytes)


def _report(
    out: TextIO, clip: EncodedClip, result: GenerationResult, timings: dict[str, float]
) -> None:
    from pipeline.encode import format_bytes

    out.write(f"clip: {clip.path.resolve()}\n")
    out.write(f"poster: {clip.poster_path.resolve()}\n")
    out.write(f"seed: {result.seed}\n")
    out.write(
        f"model: {result.model}, {clip.width}x{clip.height}, {clip.frames} frames at "
        f"{clip.fps} fps, {result.steps} steps, guidance {result.guidance:g}, "
        f"{format_bytes(clip.size_bytes)}\n"
    )
    out.write("time: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items()))
    out.write("\n")


def _quiet_libraries() -> None:
    """Keep the terminal to the progress bar and the result: library chatter goes to -v."""
    import diffusers
    import transformers

    logging.getLogger().setLevel(logging.WARNING)
    for library in (diffusers, transformers):
        library.utils.logging.set_verbosity_error()
        library.utils.logging.disable_progress_bar()
