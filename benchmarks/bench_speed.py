"""What the speed levers, drafts and live previews cost, through reelbot's own VideoGenerator.

    python benchmarks/bench_speed.py              # CPU: a narrow Wan 2.1 1.3B, about 3 min
    python benchmarks/bench_speed.py --steps 20   # shorter schedules, for a quick look

The model is Wan 2.1 1.3B's transformer architecture (30 blocks, rotary positions, qk-norm,
cross-attention, its FFN ratio) with random weights. On the CPU it is narrowed to one head of
64 and run at 192x96, 81 frames: 1,512 tokens, where attention takes about the same share of
a forward (70 %) as in the real model at 832x480, so time ratios carry over. With CUDA it is
the full 1.3B in bf16 at 832x480, 81 frames, with Wan's own VAE, beside plain diffusers, and
the figures also go to a JSON file.

Printed: seconds per step without a step cache and with each cache (and the relative
difference of the final latents from the uncached run: a proxy for quality loss; random
weights say nothing about real quality), four drafts against one render (from token counts
and measured, in the same run), Render from a draft, the fast preset's step count, and what a
live preview costs the denoising loop.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.drafts import as_draft, draft_cost, draft_seeds, transformer_tokens
from pipeline.generator import GenerationResult, StartLatents, VideoGenerator
from pipeline.levers import SpeedLevers, StepCache
from pipeline.presets import PRESETS, WAN_T2V_1_3B_MAG_RATIOS, ModelPreset, resolve_preset
from pipeline.preview import PreviewOptions, encode_webp, project_to_rgb, tile
from pipeline.request import ClipRequest, ResolvedRequest, resolve_request
from pipeline.tiny import WAN_1_3B_TRANSFORMER, build_random_wan

PROMPT = "a red balloon floating over a city at sunset, cinematic"
# One head of 64 and Wan's FFN ratio (8960 / 1536): at 1,512 tokens attention is ~70 % of a
# forward, as for the full model at 32,760 tokens.
CPU_TRANSFORMER = {
    **WAN_1_3B_TRANSFORMER,
    "num_attention_heads": 1,
    "attention_head_dim": 64,
    "ffn_dim": 373,
}
CPU_SIZE = (192, 96)
GPU_SIZE = (832, 480)
FRAMES = 81
CACHES: tuple[StepCache, ...] = ("first-block", "taylorseer", "mag")
PREVIEW_STEPS = 6


@dataclass
class Run:
    """One measured run: seconds per step (the mean after the first, which includes prompt
    encoding and any compilation), the first step, the whole call, peak GPU memory."""

    name: str
    steps: int
    per_step: float
    first_step: float
    seconds: float
    peak_gib: float = 0.0
    latent_difference: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


class Bench:
    def __init__(
        self, folder: Path, device: str, size: tuple[int, int], steps: int, repeats: int
    ) -> None:
        self.folder = folder
        self.device = device
        self.size = size
        self.steps = steps
        self.repeats = repeats
        base = resolve_preset(str(folder))
        self.preset = replace(
            base,
            name="bench",
            sizes={"16:9": size},
            default_frames=FRAMES,
            steps=steps,
            mag_ratios=WAN_T2V_1_3B_MAG_RATIOS,
            levers=SpeedLevers(),
        )

    def request(self, preset: ModelPreset, **asked: Any) -> ResolvedRequest:
        return resolve_request(preset, ClipRequest(PROMPT, seed=0, frames=FRAMES, **asked))

    def generator(self, **levers: Any) -> VideoGenerator:
        preset = replace(self.preset, levers=SpeedLevers(**levers))
        generator = VideoGenerator(preset, models_dir=self.folder.parent, device=self.device)
        generator.load()
        return generator

    def timed(self, name: str, make: Any, *, steps: int) -> tuple[Run, list[GenerationResult]]:
        """Run ``make(on_step)`` ``repeats`` times and keep the fastest (other work on a
        shared machine only ever slows a run down); the first step is the first run's (it
        includes compiling). Step times come from the step callback."""
        best: Run | None = None
        for _ in range(self.repeats):
            run, results = self._timed_once(name, make, steps=steps)
            if best is None:
                best = run
            elif run.per_step < best.per_step:
                best = replace(run, first_step=best.first_step)
        assert best is not None
        return best, results

    def _timed_once(
        self, name: str, make: Any, *, steps: int
    ) -> tuple[Run, list[GenerationResult]]:
        ticks: list[float] = []

        def on_step(step: int, total: int) -> None:
            if self.device == "cuda":
                torch.cuda.synchronize()
            ticks.append(time.perf_counter())

        if self.device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        results = make(on_step)
        seconds = time.perf_counter() - started
        later = (ticks[-1] - ticks[0]) / (len(ticks) - 1) if len(ticks) > 1 else 0.0
        peak = torch.cuda.max_memory_allocated() / 2**30 if self.device == "cuda" else 0.0
        run = Run(name, steps, later or ticks[0] - started, ticks[0] - started, seconds, peak)
        return run, results


def latent_difference(result: GenerationResult, reference: GenerationResult) -> float:
    assert result.latents is not None
    assert reference.latents is not None
    return float(
        np.linalg.norm(result.latents - reference.latents) / np.linalg.norm(reference.latents)
    )


def bench_caches(bench: Bench) -> list[Run]:
    runs: list[Run] = []
    reference: GenerationResult | None = None
    for cache in ("off", *CACHES):
        generator = bench.generator(step_cache=cache)
        request = bench.request(generator.preset)
        run, (result,) = bench.timed(
            f"step cache: {cache}",
            lambda on_step, g=generator, r=request: [g.generate(r, on_step=on_step)],
            steps=request.steps,
        )
        if reference is None:
            reference = result
        else:
            run.latent_difference = latent_difference(result, reference)
        runs.append(run)
        print_run(run, runs[0])
    return runs


def bench_compile(bench: Bench, uncached: Run) -> Run:
    generator = bench.generator(compile=True)
    request = bench.request(generator.preset)
    run, _ = bench.timed(
        "compiled blocks",
        lambda on_step: [generator.generate(request, on_step=on_step)],
        steps=request.steps,
    )
    print_run(run, uncached)
    return run


def bench_plain_diffusers(bench: Bench) -> Run:
    """The same clip through diffusers alone, for the per-clip comparison."""
    from diffusers import WanPipeline

    pipe = WanPipeline.from_pretrained(
        bench.folder, dtype={"default": torch.bfloat16, "vae": torch.float32}
    ).to("cuda")
    pipe.set_progress_bar_config(disable=True)
    width, height = bench.size

    def make(on_step: Any) -> list[GenerationResult]:
        def on_step_end(_pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> Any:
            on_step(step + 1, bench.steps)
            return {}

        pipe(
            prompt=PROMPT,
            width=width,
            height=height,
            num_frames=FRAMES,
            num_inference_steps=bench.steps,
            guidance_scale=5.0,
            generator=torch.Generator("cpu").manual_seed(0),
            output_type="np",
            callback_on_step_end=on_step_end,
        )
        return []

    run, _ = bench.timed("plain diffusers", make, steps=bench.steps)
    return run


def bench_drafts(bench: Bench, uncached: Run) -> dict[str, float]:
    """Four drafts in one batch and a Render from one of them, against the full render."""
    generator = bench.generator()
    preset = generator.preset
    full = bench.request(preset)
    drafted = as_draft(preset, full)
    run, drafts = bench.timed(
        "four drafts",
        lambda on_step: generator.generate_batch(drafted, draft_seeds(0), on_step=on_step),
        steps=drafted.steps,
    )
    print_run(run, uncached)
    assert drafts[0].latents is not None
    start = StartLatents(torch.from_numpy(drafts[0].latents), preset.render_strength)
    render, _ = bench.timed(
        "render from draft 1",
        lambda on_step: [generator.generate(full, start=start, on_step=on_step)],
        steps=round(full.steps * preset.render_strength),
    )
    print_run(render, uncached)
    width, height = bench.size
    forwards = 2  # guidance: two forwards a step, drafts and render alike
    draft_tokens = transformer_tokens(drafted.width, drafted.height, FRAMES)
    full_tokens = transformer_tokens(width, height, FRAMES)
    return {
        "draft_tokens": draft_tokens,
        "render_tokens": full_tokens,
        "token_ratio": 4
        * drafted.steps
        * forwards
        * draft_tokens
        / (full.steps * forwards * full_tokens),
        "measured_ratio": run.per_step * drafted.steps / (uncached.per_step * full.steps),
        "wan_480p_compute_ratio": draft_cost(PRESETS["wan2.1-t2v-1.3b"]).compute_ratio,
        "render_ratio": render.per_step * render.steps / (uncached.per_step * full.steps),
    }


def bench_fast(bench: Bench, uncached: Run) -> dict[str, float]:
    """The fast preset's schedule (its LoRA cannot be downloaded here: random weights)."""
    fast = PRESETS["wan2.1-t2v-1.3b-fast"]
    preset = replace(
        bench.preset,
        steps=fast.steps,
        guidance=fast.guidance,
        flow_shift=fast.flow_shift,
        sampler=fast.sampler,
    )
    generator = VideoGenerator(preset, models_dir=bench.folder.parent, device=bench.device)
    generator.load()
    request = bench.request(preset)
    run, _ = bench.timed(
        "fast preset schedule",
        lambda on_step: [generator.generate(request, on_step=on_step)],
        steps=request.steps,
    )
    print_run(run, uncached)
    return {
        "steps": fast.steps,
        "guidance": fast.guidance,
        "ratio": run.per_step * fast.steps / (uncached.per_step * bench.steps),
    }


def bench_previews(bench: Bench) -> dict[str, float]:
    """A preview after every step: what the loop pays (projection and copy), and what
    encoding the WebP takes on its own thread."""
    generator = bench.generator()
    request = bench.request(generator.preset, steps=PREVIEW_STEPS)
    sizes: list[int] = []
    result = generator.generate(
        request,
        on_preview=lambda data: sizes.append(len(data)),
        preview=PreviewOptions(every_steps=1, min_seconds=0.0),
    )
    denoise, loop = result.timings["denoise"], result.timings["preview"]
    assert result.latents is not None
    frames = project_to_rgb(torch.from_numpy(result.latents)).numpy()
    started = time.perf_counter()
    encode_webp(tile(frames), width=PreviewOptions().width, frame_ms=250)
    return {
        "previews": len(sizes),
        "loop_ms_per_preview": 1000 * loop / max(1, len(sizes)),
        "loop_percent_of_step": 100 * loop / (denoise - loop),
        "encode_ms": 1000 * (time.perf_counter() - started),
        "webp_kib": float(np.mean(sizes)) / 1024 if sizes else 0.0,
    }


def print_run(run: Run, reference: Run) -> None:
    speedup = reference.per_step / run.per_step if run.per_step else 0.0
    difference = "" if run.latent_difference is None else f"{run.latent_difference:10.3f}"
    memory = f"{run.peak_gib:8.1f}" if run.peak_gib else ""
    print(
        f"{run.name:<24} {run.steps:>5} {run.per_step:9.3f} {speedup:7.2f}x "
        f"{run.first_step:9.2f} {run.seconds:9.1f} {difference:>10} {memory}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="What speed levers, drafts and previews cost.")
    parser.add_argument("--steps", type=int, default=50, help="steps of a full render")
    parser.add_argument("--json", type=Path, help="write the figures here (CUDA: by default)")
    parser.add_argument("--cpu", action="store_true", help="the CPU run even with CUDA")
    parser.add_argument(
        "--repeats", type=int, help="runs of each case, the fastest kept (CPU 2, CUDA 1)"
    )
    args = parser.parse_args(argv)
    on_gpu = torch.cuda.is_available() and not args.cpu
    device = "cuda" if on_gpu else "cpu"
    size = GPU_SIZE if on_gpu else CPU_SIZE
    config = WAN_1_3B_TRANSFORMER if on_gpu else CPU_TRANSFORMER
    tokens = transformer_tokens(*size, FRAMES)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {device}")
    print(
        f"Wan 2.1 1.3B architecture, random weights, {config['num_attention_heads']} x "
        f"{config['attention_head_dim']} wide, at {size[0]}x{size[1]}, {FRAMES} frames "
        f"({tokens:,} tokens), {args.steps} steps, guidance 5\n"
    )
    with tempfile.TemporaryDirectory(prefix="reelbot-speed-") as scratch:
        folder = Path(scratch) / "wan"
        with torch.device(device):
            build_random_wan(config, wan_vae=on_gpu).save_pretrained(folder)
        bench = Bench(folder, device, size, args.steps, args.repeats or (1 if on_gpu else 2))
        print(
            f"{'':<24} {'steps':>5} {'s/step':>9} {'speedup':>8} {'1st step':>9} "
            f"{'whole s':>9} {'latent diff':>10} {'peak GiB' if on_gpu else ''}"
        )
        runs = bench_caches(bench)
        uncached = runs[0]
        if on_gpu:
            runs.append(bench_compile(bench, uncached))
            plain = bench_plain_diffusers(bench)
            print_run(plain, uncached)
            runs.append(plain)
        drafts = bench_drafts(bench, uncached)
        fast = bench_fast(bench, uncached)
        previews = bench_previews(bench)
    report(drafts, fast, previews)
    output = args.json or (Path(f"bench-speed-{device}.json") if on_gpu else None)
    if output is not None:
        figures = {
            "device": torch.cuda.get_device_name() if on_gpu else "cpu",
            "size": list(size),
            "frames": FRAMES,
            "steps": args.steps,
            "runs": [asdict(run) for run in runs],
            "drafts": drafts,
            "fast": fast,
            "previews": previews,
        }
        output.write_text(json.dumps(figures, indent=2))
        print(f"\nfigures: {output}")
    return 0


def report(drafts: dict[str, float], fast: dict[str, float], previews: dict[str, float]) -> None:
    print(
        f"\nfour drafts against one render: {drafts['token_ratio']:.1%} by token count "
        f"({drafts['draft_tokens']:,} against {drafts['render_tokens']:,} tokens a forward), "
        f"{drafts['measured_ratio']:.1%} measured; Wan at 480p by the cost model "
        f"(attention by tokens squared): {drafts['wan_480p_compute_ratio']:.1%}"
    )
    print(f"render from a draft against a straight render: {drafts['render_ratio']:.1%} measured")
    print(
        f"fast preset: {fast['steps']:.0f} steps, guidance {fast['guidance']:g} (one forward "
        f"a step): {fast['ratio']:.1%} of a full render measured"
    )
    print(
        f"live preview: {previews['loop_ms_per_preview']:.1f} ms in the loop per preview "
        f"({previews['loop_percent_of_step']:.2f} % of the steps it followed); encoding it "
        f"off the loop {previews['encode_ms']:.0f} ms, {previews['webp_kib']:.0f} KiB"
    )


if __name__ == "__main__":
    sys.exit(main())
