"""Shots joined into one film: hard cuts or short crossfades, one H.264 MP4 and its poster.

ffmpeg (the binary imageio-ffmpeg ships) reads the shots straight from disk, so a minute of
video never sits in memory. Every shot is scaled, padded and retimed to the first shot's
size and frame rate (the filters that ``concat`` and ``xfade`` need), and the film is encoded
like any clip (:mod:`pipeline.encode`): yuv420p, index at the front, the same quality and size
ladder until it fits the upload limit, a JPEG poster beside it.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from pipeline.encode import (
    ClipMetadata,
    ClipTooLarge,
    EncodeAttempt,
    EncodedClip,
    encode_attempts,
    first_that_fits,
    read_tags,
    safe_tag,
    write_poster,
)
from pipeline.errors import ClipFailed

log = logging.getLogger(__name__)

# A crossfade longer than half the shortest shot would swallow that shot whole.
MAX_CROSSFADE_SHARE = 0.5
JOIN_FAILED = "The shots could not be joined into one film."


@dataclass(frozen=True)
class _Shot:
    path: Path
    width: int
    height: int
    fps: float
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


def join_clips(
    clips: Sequence[Path],
    output: Path,
    *,
    crossfade_s: float = 0.0,
    metadata: ClipMetadata | None = None,
    max_bytes: int,
) -> EncodedClip:
    """The ``clips`` one after another in ``output``: cuts when ``crossfade_s`` is 0, else each
    shot fades into the next over that many seconds (the film is that much shorter per join).
    ``metadata`` defaults to the first clip's tags. Raises ClipFailed with a sentence when a
    shot cannot be read or joined, ClipTooLarge when even the smallest encode is over
    ``max_bytes``."""
    if not clips:
        raise ValueError("join_clips needs at least one clip")
    if crossfade_s < 0:
        raise ValueError(f"crossfade_s must be 0 or more, got {crossfade_s}")
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, got {max_bytes}")
    started = time.perf_counter()
    shots = [_probed(path) for path in clips]
    fade = _usable_crossfade(crossfade_s, shots)
    tags = metadata.tags() if metadata is not None else read_tags(shots[0].path)
    first = shots[0]

    def encode(attempt: EncodeAttempt, out: Path) -> None:
        _run_ffmpeg(_join_command(shots, out, fade, attempt, tags))

    best = first_that_fits(encode_attempts(first.width, first.height), output, max_bytes, encode)
    frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(output))
    poster = write_poster(_frame_at(output, seconds / 2)[None], output)
    film = EncodedClip(
        path=output,
        poster_path=poster,
        size_bytes=output.stat().st_size,
        width=best.width,
        height=best.height,
        frames=frames,
        fps=round(first.fps),
        quality=best.crf,
        seconds=time.perf_counter() - started,
    )
    log.info(
        "joined %d shots into %s: %.1f s, %d bytes, crossfade %.2f s",
        len(shots),
        output,
        film.duration_s,
        film.size_bytes,
        fade,
    )
    if film.size_bytes > max_bytes:
        raise ClipTooLarge(film, max_bytes)
    return film


def _probed(path: Path) -> _Shot:
    """Size, frame rate and frame count of one shot, or ClipFailed naming which one."""
    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        try:
            meta = next(reader)
        finally:
            reader.close()
        frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    except (OSError, RuntimeError, StopIteration) as error:
        raise ClipFailed(
            f"{JOIN_FAILED} A shot ({path.name}) could not be read.",
            f"cannot probe {path}: {error}",
        ) from error
    width, height = meta["size"]
    if not frames or not meta["fps"]:
        raise ClipFailed(f"{JOIN_FAILED} A shot ({path.name}) has no frames.", f"{path}: {meta}")
    return _Shot(path, int(width), int(height), float(meta["fps"]), int(frames))


def _usable_crossfade(asked: float, shots: Sequence[_Shot]) -> float:
    if asked == 0 or len(shots) < 2:
        return 0.0
    limit = MAX_CROSSFADE_SHARE * min(shot.duration_s for shot in shots)
    if asked > limit:
        log.info("crossfade %.2f s is over half the shortest shot; using %.2f s", asked, limit)
        return limit
    return asked


def _join_command(
    shots: Sequence[_Shot], out: Path, fade: float, attempt: EncodeAttempt, tags: Mapping[str, str]
) -> list[str]:
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y"]
    for shot in shots:
        command += ["-i", str(shot.path)]
    command += ["-filter_complex", _filter_graph(shots, fade, attempt), "-map", "[film]", "-an"]
    command += ["-c:v", "libx264", "-crf", str(attempt.crf), "-pix_fmt", "yuv420p"]
    command += ["-movflags", "+faststart"]
    for key, value in tags.items():
        command += ["-metadata", f"{key}={safe_tag(value)}"]
    return [*command, "-f", "mp4", str(out)]


def _filter_graph(shots: Sequence[_Shot], fade: float, attempt: EncodeAttempt) -> str:
    """Each shot to the first one's size and rate (letterboxed, not stretched), then either
    ``concat`` or a chain of ``xfade`` whose offsets are where each fade starts in the film."""
    first = shots[0]
    width, height = first.width - first.width % 2, first.height - first.height % 2
    parts = [
        f"[{index}:v]scale={width}:{height}:force_original_aspect_ratio=decrease,"
        f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={first.fps:g},"
        f"format=yuv420p,settb=AVTB[s{index}]"
        for index in range(len(shots))
    ]
    if fade == 0:
        inputs = "".join(f"[s{index}]" for index in range(len(shots)))
        parts.append(f"{inputs}concat=n={len(shots)}:v=1:a=0[joined]")
    else:
        previous, film_length = "s0", shots[0].duration_s
        for index, shot in enumerate(shots[1:], start=1):
            offset = film_length - fade
            parts.append(
                f"[{previous}][s{index}]xfade=transition=fade:duration={fade:.4f}:"
                f"offset={offset:.4f}[x{index}]"
            )
            previous, film_length = f"x{index}", offset + shot.duration_s
        parts.append(f"[{previous}]null[joined]")
    scale = ""
    if (attempt.width, attempt.height) != (width, height):
        scale = f"scale={attempt.width}:{attempt.height}:flags=lanczos,"
    parts.append(f"[joined]{scale}format=yuv420p[film]")
    return ";".join(parts)


def _run_ffmpeg(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0:
        stderr = result.stderr.decode("utf-8", errors="replace").strip()
        raise ClipFailed(JOIN_FAILED, f"ffmpeg exited {result.returncode}: {stderr[-2000:]}")


def _frame_at(path: Path, seconds: float) -> np.ndarray:
    """One (H, W, 3) RGB frame of the video at ``path``, the one shown at ``seconds``."""
    reader = imageio_ffmpeg.read_frames(str(path), input_params=["-ss", f"{seconds:.3f}"])
    try:
        meta = next(reader)
        width, height = meta["size"]
        raw = next(reader)
    except StopIteration as exc:
        # Raised into asyncio.to_thread, a StopIteration never reaches the awaiting caller,
        # which would then wait for ever (the worker joining the film with it).
        raise ClipFailed(JOIN_FAILED, f"{path} has no frame at {seconds:.3f} s") from exc
    finally:
        reader.close()
    return np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)
