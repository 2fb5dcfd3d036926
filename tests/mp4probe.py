"""Reading an MP4 back the way a player would: through the ffmpeg binary imageio-ffmpeg ships."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg

_VIDEO_STREAM = re.compile(
    r"Video: (?P<codec>\w+).*?, (?P<pix_fmt>\w+)(?:\([^)]*\))?, (?P<width>\d+)x(?P<height>\d+)"
)


@dataclass
class Mp4Info:
    codec: str
    pix_fmt: str
    width: int
    height: int
    frames: int
    fps: float
    moov_before_mdat: bool


def probe_mp4(path: Path) -> Mp4Info:
    """Codec, pixel format and size from ffmpeg's stream line; frames by decoding them all."""
    result = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = _VIDEO_STREAM.search(result.stderr)
    assert match, result.stderr
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    reader = imageio_ffmpeg.read_frames(str(path))
    fps = float(next(reader)["fps"])
    reader.close()
    data = path.read_bytes()
    return Mp4Info(
        codec=match["codec"],
        pix_fmt=match["pix_fmt"],
        width=int(match["width"]),
        height=int(match["height"]),
        frames=frames,
        fps=fps,
        moov_before_mdat=data.find(b"moov") < data.find(b"mdat"),
    )
