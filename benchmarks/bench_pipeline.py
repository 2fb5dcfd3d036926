"""Where a clip's time goes: load, each denoising step, VAE decode, MP4 encode.

    python benchmarks/bench_pipeline.py            # CPU: tiny preset at 832x480, 81 frames
    python benchmarks/bench_pipeline.py --steps 3  # more steps

On the CPU it runs the tiny random Wan pipeline at Wan 2.1's real shape, through the same
VideoGenerator and encoder the worker uses. With CUDA it also builds the real Wan 2.1 T2V 1.3B
transformer and VAE from their configs with random weights (nothing is downloaded), in bf16,
and reports seconds per step and peak GPU memory for reelbot beside plain diffusers with the
same settings (and reelbot with model CPU offload, the 8 GB card setting).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from pipeline.encode import ClipMetadata, encode_mp4
from pipeline.generator import VideoGenerator
from pipeline.presets import PRESETS, resolve_preset
from pipeline.request import ClipRequest, resolve_request

PROMPT = "a red balloon floating over a city at sunset, cinematic"


@dataclass
class StepClock:
    """Timestamps of each finished denoising step, from diffusers' step callback."""

    started: float = field(default_factory=time.perf_counter)
    ticks: list[float] = field(default_factory=list)

    def __call__(self, step: int, total: int) -> None:
        self.ticks.append(time.perf_counter())

    @property
    def first_step(self) -> float:
        """Includes prompt encoding and warm-up."""
        return self.ticks[0] - self.started

    @property
    def per_step(self) -> float:
        """Median of the later steps: the steady cost of one step."""
        gaps = [later - earlier for earlier, later in zip(self.ticks, self.ticks[1:], strict=False)]
        return statistics.median(gaps) if gaps else self.first_step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time each stage of making a clip.")
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--steps", type=int, default=2, help="tiny CPU steps")
    parser.add_argument("--gpu-steps", type=int, default=5, help="Wan 1.3B CUDA steps")
    parser.add_argument("--size", default="832x480", help="WIDTHxHEIGHT")
    parser.add_argument("--skip-cpu", action="store_true", help="only the CUDA comparison")
    args = parser.parse_args(argv)
    width, height = (int(part) for part in args.size.split("x"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    with tempfile.TemporaryDirectory(prefix="reelbot-bench-") as scratch:
        if not args.skip_cpu:
            bench_tiny_cpu(Path(scratch), width, height, args.frames, args.steps)
        if torch.cuda.is_available():
            bench_wan_cuda(Path(scratch), width, height, args.frames, args.gpu_steps)
        else:
            print("\nNo CUDA device: skipped the Wan 2.1 1.3B bf16 comparison.")
    return 0


def bench_tiny_cpu(scratch: Path, width: int, height: int, frames: int, steps: int) -> None:
    print(f"\n== tiny preset on the CPU: {width}x{height}, {frames} frames, {steps} steps ==")
    models_dir = scratch / "models"
    started = time.perf_counter()
    # Building happens once per machine; loading is what every worker start pays.
    VideoGenerator(PRESETS["tiny"], models_dir=models_dir, device="cpu").load()
    build_s = time.perf_counter() - started
    preset = replace(PRESETS["tiny"], sizes={"16:9": (width, height)})
    generator = VideoGenerator(preset, models_dir=models_dir, device="cpu")
    load_s = generator.load()
    clock = StepClock()
    asked = ClipRequest(PROMPT, frames=frames, steps=steps, seed=0)
    result = generator.generate(resolve_request(preset, asked), on_step=clock)
    clip = encode_mp4(
        result.frames,
        result.fps,
        scratch / "tiny.mp4",
        metadata=ClipMetadata(PROMPT, result.seed, result.model),
    )
    rows = [
        ("build (first use only)", build_s),
        ("load (from_pretrained)", load_s),
        ("first step (+ prompt encoding)", clock.first_step),
        ("per step, after the first", clock.per_step),
        ("VAE decode", result.timings["decode"]),
        (f"MP4 encode ({clip.size_bytes / 1e6:.1f} MB, CRF {clip.quality})", clip.seconds),
    ]
    for name, seconds in rows:
        print(f"{name:<36} {seconds:8.2f} s")


@dataclass
class GpuRun:
    name: str
    per_step: float
    first_step: float
    decode: float
    peak_gib: float


def bench_wan_cuda(scratch: Path, width: int, height: int, frames: int, steps: int) -> None:
    print(
        f"\n== Wan 2.1 T2V 1.3B architecture, random weights, bf16 on "
        f"{torch.cuda.get_device_name()}: {width}x{height}, {frames} frames, {steps} steps, "
        "guidance 5 =="
    )
    folder = save_random_wan(scratch / "wan-1.3b-random")
    runs = [
        run_plain_diffusers(folder, width, height, frames, steps),
        run_reelbot(folder, scratch, (width, height), frames, steps, cpu_offload=False),
        run_reelbot(folder, scratch, (width, height), frames, steps, cpu_offload=True),
    ]
    print(f"{'':<28} {'s/step':>8} {'1st step':>9} {'decode':>8} {'peak GiB':>9}")
    for run in runs:
        print(
            f"{run.name:<28} {run.per_step:8.2f} {run.first_step:9.2f} {run.decode:8.2f} "
            f"{run.peak_gib:9.1f}"
        )
    print(f"reelbot / plain diffusers, s/step: {runs[1].per_step / runs[0].per_step:.3f}")


def save_random_wan(folder: Path) -> Path:
    """Wan 1.3B's transformer and VAE from their configs with random weights, saved as a
    diffusers folder (the text side is the tiny one: it runs once per clip, outside the steps
    measured here)."""
    from pipeline.tiny import WAN_1_3B_TRANSFORMER, build_random_wan

    with torch.device("cuda"):
        pipe = build_random_wan(WAN_1_3B_TRANSFORMER, wan_vae=True)
    # Saved in fp32 like Wan's published weights; loading casts to bf16.
    pipe.save_pretrained(folder)
    return folder


def _measure(name: str, run: Callable[[StepClock], float]) -> GpuRun:
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    clock = StepClock()
    decode = run(clock)
    torch.cuda.synchronize()
    return GpuRun(
        name=name,
        per_step=clock.per_step,
        first_step=clock.first_step,
        decode=decode,
        peak_gib=torch.cuda.max_memory_allocated() / 2**30,
    )


def run_plain_diffusers(folder: Path, width: int, height: int, frames: int, steps: int) -> GpuRun:
    from diffusers import WanPipeline

    pipe = WanPipeline.from_pretrained(
        folder, dtype={"default": torch.bfloat16, "vae": torch.float32}
    ).to("cuda")
    pipe.set_progress_bar_config(disable=True)

    def run(clock: StepClock) -> float:
        def on_step_end(
            pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]
        ) -> dict[str, Any]:
            torch.cuda.synchronize()
            clock(step + 1, steps)
            return {}

        pipe(
            prompt=PROMPT,
            width=width,
            height=height,
            num_frames=frames,
            num_inference_steps=steps,
            guidance_scale=5.0,
            generator=torch.Generator("cpu").manual_seed(0),
            output_type="np",
            callback_on_step_end=on_step_end,
        )
        torch.cuda.synchronize()
        return time.perf_counter() - clock.ticks[-1]

    return _measure("plain diffusers", run)


def run_reelbot(
    folder: Path,
    scratch: Path,
    size: tuple[int, int],
    frames: int,
    steps: int,
    *,
    cpu_offload: bool,
) -> GpuRun:
    preset = replace(resolve_preset(str(folder)), sizes={"16:9": size})
    generator = VideoGenerator(preset, models_dir=scratch, device="cuda", cpu_offload=cpu_offload)
    generator.load()

    def run(clock: StepClock) -> float:
        def on_step(step: int, total: int) -> None:
            torch.cuda.synchronize()
            clock(step, total)

        asked = ClipRequest(PROMPT, frames=frames, steps=steps, seed=0)
        result = generator.generate(resolve_request(preset, asked), on_step=on_step)
        return result.timings["decode"]

    name = "reelbot + CPU offload" if cpu_offload else "reelbot VideoGenerator"
    return _measure(name, run)


if __name__ == "__main__":
    sys.exit(main())
