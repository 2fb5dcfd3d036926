"""What users type is cleaned once, the same way everywhere, and held to one set of limits."""

from __future__ import annotations

import pytest

from pipeline.errors import InvalidRequest
from pipeline.text import MAX_PROMPT_CHARS, checked_negative_prompt, checked_prompt, clean_text


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("a cat\u0000 with text", "a cat with text"),
        ("red \x1b[31mballoon\x07", "red [31mballoon"),
        ("over \u202ethe city\u202c", "over the city"),
        ("lone \ud800surrogate", "lone surrogate"),
        ("two\r\nlines\rhere", "two\nlines\nhere"),
        ("  tabs\tand emoji 🎈  ", "tabs\tand emoji 🎈"),
        ("été à Zürich, 東京の夜", "été à Zürich, 東京の夜"),
    ],
)
def test_control_characters_are_removed_and_the_rest_is_kept(typed: str, kept: str) -> None:
    assert clean_text(typed) == kept
    kept.encode("utf-8")  # SQLite, ffmpeg and Discord all take the result


def test_a_prompt_of_only_control_characters_is_empty() -> None:
    with pytest.raises(InvalidRequest, match="prompt is empty"):
        checked_prompt("\u0000\u202e \x1b ")


def test_an_over_long_prompt_is_refused_with_the_numbers() -> None:
    limit = f"6,000 characters long; the limit is {MAX_PROMPT_CHARS:,}"
    with pytest.raises(InvalidRequest, match=limit):
        checked_prompt("x" * 6000)


def test_an_empty_negative_prompt_means_none() -> None:
    assert checked_negative_prompt("  \u0000 ") == ""
