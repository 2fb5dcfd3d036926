"""How long the local prompt rewriter takes: loading (first and cached), latency, tokens/s.

    python benchmarks/bench_rewrite.py                     # Gemma 3 270M from PyPI
    python benchmarks/bench_rewrite.py --model path/to/Qwen2.5-1.5B-Instruct --tokens 200

The first load prepares the model in a fresh folder (for Gemma: assemble the GGUF,
dequantise, save); the cached load reads that folder back, as every later start does.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.rewrite.guardrails import review
from pipeline.rewrite.local import LocalBackend, LocalModel, SamplingSettings

PROMPTS = (
    "a cat surfing",
    "a robot making pancakes in a tiny kitchen",
    "an astronaut riding a horse on mars",
)


@dataclass(frozen=True)
class Measurement:
    prompt: str
    seconds: float
    tokens: int
    verdict: str


def timed_load(name: str, models_dir: Path, device: str) -> tuple[LocalModel, float]:
    started = time.perf_counter()
    model = LocalModel.load(name, models_dir=models_dir, device=device)
    return model, time.perf_counter() - started


async def measure_rewrites(backend: LocalBackend, prompts: tuple[str, ...]) -> list[Measurement]:
    measurements = []
    for prompt in prompts:
        started = time.perf_counter()
        completion = await backend.complete(prompt, mode="t2v", seed=0)
        seconds = time.perf_counter() - started
        verdict = review(prompt, completion.text).rejected or "used"
        measurements.append(Measurement(prompt, seconds, completion.tokens or 0, verdict))
    await backend.aclose()
    return measurements


def report(first_s: float, cached_s: float, measurements: list[Measurement]) -> None:
    print(f"load, first (prepare + load): {first_s:6.1f} s")
    print(f"load, cached folder:          {cached_s:6.1f} s   ({first_s / cached_s:.0f}x faster)")
    print()
    print(f"{'prompt':44} {'seconds':>8} {'tokens':>7} {'tok/s':>6}  guardrails")
    for row in measurements:
        rate = row.tokens / row.seconds
        print(f"{row.prompt:44} {row.seconds:8.1f} {row.tokens:7d} {rate:6.1f}  {row.verdict}")
    total_tokens = sum(row.tokens for row in measurements)
    total_s = sum(row.seconds for row in measurements)
    print(
        f"{'mean':44} {total_s / len(measurements):8.1f} "
        f"{total_tokens / len(measurements):7.0f} {total_tokens / total_s:6.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma3-270m", help="model id or folder")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    parser.add_argument("--tokens", type=int, default=120, help="token cap per rewrite")
    parser.add_argument("--prompts", type=int, default=len(PROMPTS), help="how many prompts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rewrite-") as scratch:
        first, first_s = timed_load(args.model, Path(scratch), args.device)
        del first  # two copies of a larger model may not fit
        model, cached_s = timed_load(args.model, Path(scratch), args.device)
        backend = LocalBackend(
            args.model,
            models_dir=Path(scratch),
            loaded=model,
            sampling=SamplingSettings(max_new_tokens=args.tokens),
        )
        measurements = asyncio.run(measure_rewrites(backend, PROMPTS[: args.prompts]))
    report(first_s, cached_s, measurements)


if __name__ == "__main__":
    main()
