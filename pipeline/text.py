"""Text that users type, made safe once for every place it goes, and its length limits.

A prompt travels into the language model, the video model, Discord embeds and the MP4's
metadata on ffmpeg's command line (where a NUL byte raises). Control characters help none of
them and hurt some (NUL, ESC, BEL, a bidi override that reverses an embed), so they are
removed wherever text enters, by :func:`clean_text`, and :func:`checked_text` applies the one
definition of each limit that the bot, the queue and the pipeline all enforce.
"""

from __future__ import annotations

import re

from pipeline.errors import InvalidRequest

MAX_PROMPT_CHARS = 1500
MAX_NEGATIVE_CHARS = 1000

# C0 controls except tab and newline, DEL, C1 controls, the bidirectional embeddings,
# overrides, isolates and marks (U+061C, U+200E-U+200F, U+202A-U+202E, U+2066-U+2069), and
# lone surrogates, which JSON can carry but UTF-8 (SQLite, ffmpeg) cannot encode.
_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_LINE_BREAKS = re.compile("\r\n?|[\u2028\u2029\x85]")


def clean_text(text: str) -> str:
    """``text`` with line breaks as ``\\n``, control and bidi characters removed, trimmed."""
    return _CONTROL.sub("", _LINE_BREAKS.sub("\n", text)).strip()


def checked_text(text: str, what: str, *, limit: int, required: bool) -> str:
    """The cleaned ``text``; raises InvalidRequest naming ``what`` when empty or too long."""
    cleaned = clean_text(text)
    if required and not cleaned:
        raise InvalidRequest(f"The {what} is empty; describe the clip you want.")
    if len(cleaned) > limit:
        raise InvalidRequest(
            f"The {what} is {len(cleaned):,} characters long; the limit is {limit:,}."
        )
    return cleaned


def checked_prompt(text: str) -> str:
    """A prompt as the models get it; raises InvalidRequest when empty or too long."""
    return checked_text(text, "prompt", limit=MAX_PROMPT_CHARS, required=True)


def checked_negative_prompt(text: str) -> str:
    """A negative prompt (may be empty); raises InvalidRequest when too long."""
    return checked_text(text, "negative prompt", limit=MAX_NEGATIVE_CHARS, required=False)
