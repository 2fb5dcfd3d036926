"""What the output safety check costs per clip, on the CPU, beside the time a clip takes.

    python benchmarks/bench_safety.py               # 81 frames at 832x480, 8 / 12 / 16 sampled
    python benchmarks/bench_safety.py --runs 9

Encodes one clip of Wan 2.1's shape (81 frames at 832x480, 16 fps) with reelbot's own
encoder, then times what the worker does with every clip: decode the sampled frames (spread
from first to last) and the poster, and run each packaged classifier (NudeNet, open_nsfw) on
them through onnxruntime on the CPU. Prints the median of several runs per stage, the whole
check per clip (wall and CPU seconds: the CPU time does not grow when other work shares the
cores), and its share of a clip's generation on an H200 (about 36 s, the compute
floor for Wan 2.1 1.3B) and an RTX 4090 (about 261 s, Wan's published figure).
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.encode import ClipMetadata, EncodedClip, encode_mp4
from pipeline.safety import ClipScores, SafetyCheck, SafetyConfig
from pipeline.safety.sampling import read_picture, sample_clip

WIDTH, HEIGHT, FRAMES, FPS = 832, 480, 81, 16
CLIP_SECONDS = {"H200": 36.0, "RTX 4090": 261.0}


def moving_scene() -> np.ndarray:
    """A clip that compresses like a real one: a lit gradient with a bright disc moving
    across it and a little grain (pure noise would make the decoder's work unrealistic)."""
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = np.stack([xs / WIDTH * 180 + 40, ys / HEIGHT * 150 + 60, 200 - xs / WIDTH * 120], -1)
    frames = np.empty((FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8)
    for index in range(FRAMES):
        cx, cy = 100 + index * 8, 240 + 80 * np.sin(index / 10)
        disc = ((xs - cx) ** 2 + (ys - cy) ** 2 < 60**2)[..., None] * 80
        grain = rng.normal(0, 4, (HEIGHT, WIDTH, 1))
        frames[index] = np.clip(base + disc + grain, 0, 255).astype(np.uint8)
    return frames


def measured(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median wall seconds and mean CPU seconds of ``fn`` over ``runs`` calls, after one
    untimed call (onnxruntime's first run allocates; a worker pays that once, at warm-up).

    CPU seconds (this process's threads and its ffmpeg children) do not grow when other
    programs share the cores; wall seconds do."""
    fn()
    walls = []
    cpu_before = cpu_seconds()
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - start)
    return statistics.median(walls), (cpu_seconds() - cpu_before) / runs


def stages(
    check: SafetyCheck, clip: EncodedClip, count: int, runs: int
) -> dict[str, tuple[float, float]]:
    def sampled() -> list[np.ndarray]:
        frames = sample_clip(clip.path, count, total=clip.frames, size=(clip.width, clip.height))
        return [*frames, read_picture(clip.poster_path)]

    frames = sampled()
    timed = {f"decode {count} frames + poster": measured(sampled, runs)}
    for classifier in check.classifiers:
        score = functools.partial(classifier.score, frames)
        timed[f"{classifier.name} on {len(frames)} frames"] = measured(score, runs)
    timed[f"whole check, {count} frames + poster"] = measured(
        functools.partial(whole_check, check, clip), runs
    )
    return timed


def cpu_seconds() -> float:
    """CPU time of this process's threads and of its finished children (ffmpeg)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return sum(usage.ru_utime + usage.ru_stime for usage in (own, children))


def whole_check(check: SafetyCheck, clip: EncodedClip) -> ClipScores:
    size = (clip.width, clip.height)
    return check.check_clip(clip.path, poster=clip.poster_path, total_frames=clip.frames, size=size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per stage (median)")
    args = parser.parse_args()

    started = time.perf_counter()
    check = SafetyCheck.load(SafetyConfig())
    print(f"load both classifiers (once per worker): {time.perf_counter() - started:.2f} s")
    with tempfile.TemporaryDirectory() as folder:
        clip = encode_mp4(
            moving_scene(),
            FPS,
            Path(folder) / "clip.mp4",
            metadata=ClipMetadata(prompt="benchmark", seed=0, model="synthetic"),
        )
        print(f"clip: {FRAMES} frames at {WIDTH}x{HEIGHT}, {clip.size_bytes / 1e6:.1f} MB\n")
        print(f"| {'Stage':<40} | Wall s | CPU s |")
        print(f"|{'-' * 42}|--------|-------|")
        whole: dict[int, tuple[float, float]] = {}
        for count in (8, 12, 16):
            check.frames = count
            timed = stages(check, clip, count, args.runs)
            for stage, (wall, cpu) in timed.items():
                print(f"| {stage:<40} | {wall:6.3f} | {cpu:5.3f} |")
            whole[count] = timed[f"whole check, {count} frames + poster"]
    print(f"\nload average: {', '.join(f'{load:.1f}' for load in os.getloadavg())}")
    for count, (seconds, cpu) in whole.items():
        shares = ", ".join(
            f"{seconds / clip_s:.1%} of a clip on an {gpu}" for gpu, clip_s in CLIP_SECONDS.items()
        )
        print(f"{count} frames + poster: {seconds:.2f} s per clip, {cpu:.2f} CPU-s ({shares})")


if __name__ == "__main__":
    main()
