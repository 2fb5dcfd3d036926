"""Frames to an MP4 that plays everywhere and fits an upload limit, and back.

H.264 (libx264) in yuv420p with the index at the front (``+faststart``) so Discord and
browsers start playing before the download ends. The prompt, seed and model go into the
file's metadata with a note that the clip is AI-generated, and a JPEG poster sits beside it.
An encode over the byte budget is redone at lower quality (a higher CRF), then at smaller
sizes, until it fits; ``ClipTooLarge`` says when even the smallest attempt does not.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from PIL import Image

from pipeline.errors import ClipFailed
from pipeline.text import clean_text

log = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_MAX_BYTES = 10 * MIB

# x264's constant rate factor: each +6 roughly halves the size. 20 looks clean on generated
# video; past 35 blocks show.
CRF_LADDER = (20, 25, 30, 35)
# When the ladder is not enough: smaller sizes, each tried at these CRFs.
SCALE_LADDER = (0.75, 0.5, 0.25)
SCALED_CRFS = (30, 35)
# Scaled sizes stay multiples of this (H.264 macroblocks; yuv420p needs at least even sizes).
SIZE_MULTIPLE = 16
POSTER_QUALITY = 90
METADATA_KEYS = ("title", "comment", "artist")
AI_NOTICE = "AI-generated with reelbot"


@dataclass
class ClipMetadata:
    """What the file says about itself."""

    prompt: str
    seed: int
    model: str
    rewritten_prompt: str | None = None

    def tags(self) -> dict[str, str]:
        comment = f"{AI_NOTICE}. Model: {self.model}. Seed: {self.seed}. Prompt: {self.prompt}"
        if self.rewritten_prompt and self.rewritten_prompt != self.prompt:
            comment += f" Rewritten prompt: {self.rewritten_prompt}"
        return {"title": self.prompt, "comment": comment, "artist": "reelbot"}


@dataclass
class EncodedClip:
    """An MP4 on disk. ``quality`` is the x264 CRF (lower is better, 0 when unknown);
    ``seconds`` is the time the encoding took."""

    path: Path
    poster_path: Path
    size_bytes: int
    width: int
    height: int
    frames: int
    fps: int
    quality: int
    seconds: float

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


class ClipTooLarge(ClipFailed):
    """No attempt fit the budget; ``best`` (the smallest) is kept on disk at its path."""

    def __init__(self, best: EncodedClip, max_bytes: int) -> None:
        super().__init__(
            f"The clip is {format_bytes(best.size_bytes)} even at {best.width}x{best.height} "
            f"and the lowest quality; the limit is {format_bytes(max_bytes)}."
        )
        self.best = best
        self.max_bytes = max_bytes


def format_bytes(size: int) -> str:
    """``9.6 KiB``, ``10.0 MiB``: how people read upload limits."""
    if size >= MIB:
        return f"{size / MIB:.1f} MiB"
    return f"{size / 1024:.1f} KiB"


@dataclass(frozen=True)
class EncodeAttempt:
    """One rung of the size ladder: encode at ``width`` × ``height`` with x264's ``crf``."""

    width: int
    height: int
    crf: int


def encode_mp4(
    frames: np.ndarray,
    fps: int,
    path: Path,
    *,
    metadata: ClipMetadata,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> EncodedClip:
    """Write ``frames`` ((F, H, W, 3) uint8) to ``path`` within ``max_bytes``, plus a poster
    at ``path`` with a .jpg suffix. Raises ClipTooLarge when nothing fits."""
    _check_frames(frames)
    return _encode_within(frames, fps, path, metadata.tags(), max_bytes)


def fit_clip(path: Path, max_bytes: int, *, out_path: Path) -> EncodedClip:
    """A copy of the MP4 at ``path`` at ``out_path`` that fits ``max_bytes``, re-encoded only
    when needed and keeping its metadata. Raises ClipTooLarge when nothing fits."""
    frames, fps = read_frames(path)
    if path.stat().st_size <= max_bytes:
        started = time.perf_counter()
        if path.resolve() != out_path.resolve():
            shutil.copyfile(path, out_path)
        poster = write_poster(frames, out_path)
        return _described(out_path, poster, frames, fps, _crf_of(out_path), started)
    return _encode_within(frames, fps, out_path, read_tags(path), max_bytes)


def read_frames(path: Path) -> tuple[np.ndarray, int]:
    """Every frame of the video at ``path`` as (F, H, W, 3) uint8, and its frame rate."""
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    frames = [np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3) for raw in reader]
    return np.stack(frames), round(meta["fps"])


def last_frame(path: Path) -> Image.Image:
    """The final frame of the video at ``path`` (where Extend continues from)."""
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    last = b""
    for raw in reader:
        last = raw
    if not last:
        raise ValueError(f"{path} has no frames")
    return Image.frombytes("RGB", (width, height), last)


def read_tags(path: Path) -> dict[str, str]:
    """The reelbot metadata tags (title, comment, artist) stored in the MP4 at ``path``."""
    result = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "ffmetadata", "-"],
        capture_output=True,
        check=True,
    )
    tags: dict[str, str] = {}
    for line in _ffmetadata_lines(result.stdout.decode("utf-8", errors="replace")):
        key, _, value = line.partition("=")
        if key in METADATA_KEYS:
            tags[key] = value
    return tags


def _ffmetadata_lines(text: str) -> Iterator[str]:
    r"""Logical lines of ffmpeg's metadata format, unescaped (``\=``, ``\;``, ``\#``, ``\\``,
    and a backslash before a newline that belongs to the value)."""
    current: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            current.append(next(chars, ""))
        elif char == "\n":
            yield "".join(current)
            current = []
        else:
            current.append(char)
    if current:
        yield "".join(current)


def _check_frames(frames: np.ndarray) -> None:
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
        raise ValueError(f"expected (F, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")


def _encode_within(
    frames: np.ndarray, fps: int, path: Path, tags: Mapping[str, str], max_bytes: int
) -> EncodedClip:
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, got {max_bytes}")
    started = time.perf_counter()
    height, width = frames.shape[1:3]

    def encode(attempt: EncodeAttempt, out: Path) -> None:
        _write_mp4(frames, fps, out, attempt, tags)

    best = first_that_fits(encode_attempts(width, height), path, max_bytes, encode)
    poster = write_poster(frames, path)
    clip = _described(path, poster, frames, fps, best.crf, started)
    if clip.size_bytes > max_bytes:
        raise ClipTooLarge(clip, max_bytes)
    return clip


def encode_attempts(width: int, height: int) -> list[EncodeAttempt]:
    """The ladder for a ``width`` × ``height`` video, best first: full size at rising CRFs,
    then smaller sizes at high CRFs (for :func:`first_that_fits`)."""
    full = (_even(width), _even(height))
    attempts = [EncodeAttempt(*full, crf) for crf in CRF_LADDER]
    sizes_tried = {full}
    for scale in SCALE_LADDER:
        size = _scaled(width, height, scale)
        if size in sizes_tried:
            continue
        sizes_tried.add(size)
        attempts += [EncodeAttempt(*size, crf) for crf in SCALED_CRFS]
    return attempts


def _even(length: int) -> int:
    return max(2, length - length % 2)


def _scaled(width: int, height: int, scale: float) -> tuple[int, int]:
    def one(length: int) -> int:
        return max(SIZE_MULTIPLE, round(length * scale / SIZE_MULTIPLE) * SIZE_MULTIPLE)

    return one(width), one(height)


def first_that_fits(
    attempts: list[EncodeAttempt],
    path: Path,
    max_bytes: int,
    encode: Callable[[EncodeAttempt, Path], None],
) -> EncodeAttempt:
    """Encode attempts in order into ``path`` until one fits; else leave the smallest there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.stem}.attempt{path.suffix}")
    smallest: tuple[int, EncodeAttempt] | None = None
    try:
        for attempt in attempts:
            encode(attempt, scratch)
            size = scratch.stat().st_size
            log.debug("encoded %s: %d bytes (budget %d)", attempt, size, max_bytes)
            if smallest is None or size < smallest[0]:
                smallest = (size, attempt)
                scratch.replace(path)
            if size <= max_bytes:
                return attempt
            log.info("clip is %d bytes at %s, over %d; trying smaller", size, attempt, max_bytes)
    finally:
        scratch.unlink(missing_ok=True)
    assert smallest is not None
    return smallest[1]


def _write_mp4(
    frames: np.ndarray, fps: int, path: Path, attempt: EncodeAttempt, tags: Mapping[str, str]
) -> None:
    height, width = frames.shape[1:3]
    output_params = ["-crf", str(attempt.crf), "-movflags", "+faststart"]
    if (attempt.width, attempt.height) != (width, height):
        output_params += ["-vf", f"scale={attempt.width}:{attempt.height}:flags=lanczos"]
    for key, value in tags.items():
        output_params += ["-metadata", f"{key}={safe_tag(value)}"]
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=fps,
        codec="libx264",
        pix_fmt_in="rgb24",
        pix_fmt_out="yuv420p",
        quality=None,
        macro_block_size=1,
        output_params=output_params,
    )
    writer.send(None)
    try:
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
    finally:
        writer.close()


def safe_tag(value: str) -> str:
    """``value`` as ffmpeg's command line can carry it, whatever a user typed: no control
    characters (a NUL ends the argument, so Python refuses it) and no lone surrogates (they
    have no UTF-8 form)."""
    return clean_text(value).encode("utf-8", errors="replace").decode("utf-8")


def poster_beside(clip_path: Path) -> Path:
    """Where the encoder writes the poster of the clip at ``clip_path``."""
    return clip_path.with_suffix(".jpg")


def write_poster(frames: np.ndarray, clip_path: Path) -> Path:
    """Save the middle of ``frames`` as the poster beside ``clip_path`` (see
    :func:`poster_beside`): the most representative single picture of a short clip."""
    poster = poster_beside(clip_path)
    Image.fromarray(frames[len(frames) // 2]).save(poster, quality=POSTER_QUALITY)
    return poster


def _described(
    path: Path, poster: Path, frames: np.ndarray, fps: int, crf: int, started: float
) -> EncodedClip:
    width, height = _size_on_disk(path)
    return EncodedClip(
        path=path,
        poster_path=poster,
        size_bytes=path.stat().st_size,
        width=width,
        height=height,
        frames=len(frames),
        fps=fps,
        quality=crf,
        seconds=time.perf_counter() - started,
    )


def _size_on_disk(path: Path) -> tuple[int, int]:
    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        width, height = next(reader)["size"]
    finally:
        reader.close()
    return int(width), int(height)


def _crf_of(path: Path) -> int:
    """The CRF x264 recorded in the stream's settings string, 0 when it is not there."""
    match = re.search(rb"crf=(\d+)", path.read_bytes()[: 4 * MIB])
    return int(match.group(1)) if match else 0
