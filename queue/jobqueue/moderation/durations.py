"""Ban durations as moderators type them: 30m, 2h, 7d, 1w, 1d12h, or permanent."""

from __future__ import annotations

import re

from jobqueue.moderation.models import InvalidDuration

PERMANENT_WORDS = frozenset({"permanent", "perm", "forever", "never"})
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_DURATION_S = 10 * 365 * 86400

_PART = re.compile(r"(\d+)\s*([smhdw])")
_WHOLE = re.compile(r"(?:\d+\s*[smhdw]\s*)+")


def parse_duration(text: str) -> float | None:
    """Seconds, or ``None`` for a permanent ban; :class:`InvalidDuration` for anything else."""
    cleaned = text.strip().lower()
    if cleaned in PERMANENT_WORDS:
        return None
    if not _WHOLE.fullmatch(cleaned):
        raise InvalidDuration(
            f"{text.strip()!r} is not a duration; use something like 30m, 2h, 7d or permanent."
        )
    seconds = sum(int(amount) * UNIT_SECONDS[unit] for amount, unit in _PART.findall(cleaned))
    if seconds <= 0:
        raise InvalidDuration("A ban must last at least one second; use unban to lift one.")
    if seconds > MAX_DURATION_S:
        raise InvalidDuration("A ban longer than ten years should be permanent.")
    return float(seconds)


def format_duration(seconds: float | None) -> str:
    """``2h 30m``, ``7d``, or ``permanent``: the largest two units, rounded down."""
    if seconds is None:
        return "permanent"
    remaining = max(int(seconds), 0)
    parts: list[str] = []
    for unit in ("d", "h", "m", "s"):
        amount, remaining = divmod(remaining, UNIT_SECONDS[unit])
        if amount:
            parts.append(f"{amount}{unit}")
    return " ".join(parts[:2]) or "0s"
