"""What the output safety check costs per clip, on the CPU, beside the time a clip takes.

    python benchmarks/bench_safety.py               # 81 frames at 832x480, 8 / 12 / 16 sampled
    python benchmarks/bench_safety.py --runs 9

Encodes one clip of Wan 2.1's shape (81 frames at 832x480, 16 fps) with reelbot's own
encoder, then times what the worker does with every clip: keep the sampled frames (spread
from first to last, shrunk) before encoding, or decode them from the file when they were not
kept (draft grids), read the poster, and run each packaged classifier (NudeNet, open_nsfw)
on them through onnxruntime on the CPU; and what it does with each live preview while the
clip renders (the classifiers on 4 frames of each clip it shows, each of four drafts on its
own). Prints the median and the fastest of several runs per stage, the whole check per clip
both ways (wall and CPU seconds: both grow when other work shares the cores, the wall time
most), and its share of a clip's generation on an H200 (about 36 s, the compute floor for
Wan 2.1 1.3B) and an RTX 4090 (about 261 s, Wan's published figure).
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
from typing import NamedTuple

import numpy as np
import torch

from jobqueue.safety import PREVIEW_FRAMES
from pipeline.encode import ClipMetadata, EncodedClip, encode_mp4
from pipeline.preview import DEFAULT_PREVIEW, project_to_rgb
from pipeline.safety import ClipScores, SafetyCheck, SafetyConfig
from pipeline.safety.sampling import keep_samples, read_picture, sample_clip

WIDTH, HEIGHT, FRAMES, FPS = 832, 480, 81, 16
CLIP_SECONDS = {"H200": 36.0, "RTX 4090": 261.0}
LATENT_FRAMES, LATENT_SCALE = 21, 8
"""Wan's VAE packs 81 frames into 21 latent frames, each an eighth of the width and height:
a preview of the clip has 21 frames of 104x60, four drafts' previews a 2x2 grid of theirs."""


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


class Timing(NamedTuple):
    """Seconds one call took: the median and the fastest of the runs (wall), and the mean
    CPU time."""

    wall: float
    best: float
    cpu: float

    def row(self, stage: str) -> str:
        return f"| {stage:<48} | {self.wall:6.3f} | {self.best:6.3f} | {self.cpu:5.3f} |"


def measured(fn: Callable[[], object], runs: int) -> Timing:
    """``fn`` timed over ``runs`` calls, after one untimed call (onnxruntime's first run
    allocates; a worker pays that once, at warm-up).

    CPU seconds (this process's threads and its ffmpeg children) grow less than wall seconds
    when other programs share the cores (onnxruntime's threads spin while they wait for each
    other); the fastest run is the one they disturbed least: the nearest to an idle machine."""
    fn()
    walls = []
    cpu_before = cpu_seconds()
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - start)
    return Timing(statistics.median(walls), min(walls), (cpu_seconds() - cpu_before) / runs)


def stages(check: SafetyCheck, clip: EncodedClip, count: int, runs: int) -> dict[str, Timing]:
    def sampled() -> list[np.ndarray]:
        frames = sample_clip(clip.path, count, total=clip.frames, size=(clip.width, clip.height))
        return [*frames, read_picture(clip.poster_path)]

    frames = sampled()
    timed = {f"decode {count} frames + poster": measured(sampled, runs)}
    for classifier in check.classifiers:
        score = functools.partial(classifier.score, frames)
        timed[f"{classifier.name} on {len(frames)} frames"] = measured(score, runs)
    timed[f"whole check, {count} frames from the file + poster"] = measured(
        functools.partial(whole_check, check, clip), runs
    )
    return timed


def kept_stages(
    check: SafetyCheck, clip: EncodedClip, scene: np.ndarray, count: int, runs: int
) -> dict[str, Timing]:
    """What the worker does when make_clip kept the sampled frames: keeping them (in the
    encoding thread, before ffmpeg) and the check on them and the poster."""
    keep = functools.partial(keep_samples, scene, count)
    kept = keep()
    checked = functools.partial(check.check_frames, kept, poster=clip.poster_path)
    return {
        f"keep {count} frames (make_clip, pre-encode)": measured(keep, runs),
        f"whole check, {count} kept frames + poster": measured(checked, runs),
    }


def preview_clips(drafts: int) -> np.ndarray:
    """One live preview's clips, as LivePreview hands them to its screen (before tiling):
    ``drafts`` Wan latents of the clip's shape projected to RGB."""
    height, width = HEIGHT // LATENT_SCALE, WIDTH // LATENT_SCALE
    latents = torch.randn(
        drafts, 16, LATENT_FRAMES, height, width, generator=torch.Generator().manual_seed(0)
    )
    return project_to_rgb(latents).numpy()


def preview_stages(check: SafetyCheck, runs: int) -> dict[str, Timing]:
    timed = {}
    for drafts, what in ((1, "a clip"), (4, "four drafts")):
        clips = preview_clips(drafts)
        checked = functools.partial(check.check_clips, clips, count=PREVIEW_FRAMES)
        name = f"one preview of {what}, {PREVIEW_FRAMES} frames of each"
        timed[name] = measured(checked, runs)
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
    scene = moving_scene()
    with tempfile.TemporaryDirectory() as folder:
        clip = encode_mp4(
            scene,
            FPS,
            Path(folder) / "clip.mp4",
            metadata=ClipMetadata(prompt="benchmark", seed=0, model="synthetic"),
        )
        print(f"clip: {FRAMES} frames at {WIDTH}x{HEIGHT}, {clip.size_bytes / 1e6:.1f} MB\n")
        print(f"| {'Stage':<48} | Wall s | Best s | CPU s |")
        print(f"|{'-' * 50}|--------|--------|-------|")
        from_file: dict[int, Timing] = {}
        in_memory: dict[int, Timing] = {}
        for count in (8, 12, 16):
            check.frames = count
            timed = stages(check, clip, count, args.runs)
            timed.update(kept_stages(check, clip, scene, count, args.runs))
            for stage, timing in timed.items():
                print(timing.row(stage))
            from_file[count] = timed[f"whole check, {count} frames from the file + poster"]
            in_memory[count] = timed[f"whole check, {count} kept frames + poster"]
        previews = preview_stages(check, args.runs)
        for stage, timing in previews.items():
            print(timing.row(stage))
    print(f"\nload average: {', '.join(f'{load:.1f}' for load in os.getloadavg())}")
    for count in from_file:
        read, kept = from_file[count], in_memory[count]
        shares = ", ".join(
            f"{kept.wall / clip_s:.1%} of a clip on an {gpu}"
            for gpu, clip_s in CLIP_SECONDS.items()
        )
        print(
            f"{count} frames + poster: kept {kept.wall:.2f} s (best {kept.best:.2f},"
            f" {kept.cpu:.2f} CPU-s), from the file {read.wall:.2f} s (best {read.best:.2f},"
            f" {read.cpu:.2f} CPU-s): x{read.cpu / kept.cpu:.1f} less CPU ({shares})"
        )
    every = DEFAULT_PREVIEW.min_seconds
    for stage, timing in previews.items():
        print(
            f"{stage}: {timing.wall:.3f} s, {timing.cpu:.3f} CPU-s:"
            f" {timing.cpu / every:.1%} of a core at one every {every:.0f} s"
        )


if __name__ == "__main__":
    main()
