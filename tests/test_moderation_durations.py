"""Ban durations as moderators type them."""

from __future__ import annotations

import pytest

from jobqueue.moderation import InvalidDuration, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("2h", 7200), ("7d", 604800), ("1w", 604800), ("1d12h", 129600), (" 90S ", 90)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["permanent", "Perm", "forever"])
def test_permanent(text: str) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize("text", ["", "soon", "2", "h2", "-1h", "0m", "99999w"])
def test_nonsense_is_refused_with_a_sentence(text: str) -> None:
    with pytest.raises(InvalidDuration, match=r"\.$"):
        parse_duration(text)


def test_format() -> None:
    assert format_duration(None) == "permanent"
    assert format_duration(9000) == "2h 30m"
    assert format_duration(604800) == "7d"
