"""What checking a prompt against the blocklist costs, against the time a clip takes.

    python benchmarks/bench_moderation.py              # the shipped list, 2 000 checks a case
    python benchmarks/bench_moderation.py --rules 500  # plus 500 extra admin terms

Checks short, long (2 000 characters, a rewrite's length), disguised (fullwidth, dotted,
leetspeak, zero-width and stretched letters: several readings; not on the list) and blocked
prompts with the default blocklist, compiled once as the bot does, and prints microseconds
per check. Also times compiling the list (done again only after a blocklist change).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

from jobqueue.moderation import Blocklist, BlockRule, load_default_blocklist

CASES = {
    "short": "a red balloon drifting over a city at sunset, cinematic",
    "long": " ".join(["a slow dolly shot of a lighthouse on a cliff, waves, golden light"] * 30),
    "disguised": "a ｗ.ｏ.ｍ.ｂ.ａ.ｔ in the gr4ss, l o o k i n g at a w\u200bombat",
    "blocked": "a sexy 12yo on a beach",
}


def rules(extra: int) -> list[BlockRule]:
    specs = load_default_blocklist()
    found = [
        BlockRule(index + 1, 1, spec.kind, spec.pattern, spec.category, "default", None, 0.0)
        for index, spec in enumerate(specs)
    ]
    for number in range(extra):
        found.append(
            BlockRule(len(found) + 1, 1, "term", f"term{number}x", "extra", "admin", None, 0.0)
        )
    return found


def per_call_us(fn: Callable[[], object], count: int) -> float:
    """Median of five runs of ``count`` calls, in microseconds per call."""
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(count):
            fn()
        runs.append((time.perf_counter() - start) / count * 1e6)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", type=int, default=0, help="extra admin terms")
    parser.add_argument("--count", type=int, default=2000, help="checks per case and run")
    args = parser.parse_args()
    all_rules = rules(args.rules)
    compile_us = per_call_us(lambda: Blocklist(all_rules), 20)
    blocklist = Blocklist(all_rules)
    print(f"{len(all_rules)} rules; compiling the list: {compile_us / 1000:.2f} ms")
    for name, prompt in CASES.items():
        us = per_call_us(functools.partial(blocklist.first_match, prompt), args.count)
        hit = blocklist.first_match(prompt)
        print(
            f"{name:>10} ({len(prompt):>4} chars): {us:8.1f} µs per check, hit: {hit is not None}"
        )


if __name__ == "__main__":
    main()
