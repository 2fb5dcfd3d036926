"""Characters that look like Latin letters, mapped to the letter they imitate.

NFKD already folds fullwidth forms (ａ), mathematical letters (𝐚, 𝔞), circled letters (ⓐ)
and superscripts; this table covers what it leaves: Cyrillic, Greek and Armenian
lookalikes, small capitals, Latin letters with built-in strokes that are not decomposable
(ł, ø), and the enclosed letters used in "fancy text" generators. Entries are
case-specific because a capital and its small letter can imitate different Latin letters
(Greek Μ looks like M, μ like u), so the table is applied before casefolding.

Leetspeak (digits and symbols standing for letters) is separate, in ``LEET``: digits are
meaningful in prompts ("12 year old"), so the matcher looks at the text with and without it.
"""

from __future__ import annotations

from collections.abc import Mapping

_LOOKALIKES: dict[str, str] = {
    # Cyrillic capitals
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P",
    "С": "C", "Т": "T", "Х": "X", "У": "Y", "Ү": "Y", "І": "I", "Ӏ": "I", "Ј": "J",
    "Ѕ": "S", "Ԛ": "Q", "Ԝ": "W", "Һ": "H", "Ь": "b",
    # Cyrillic small letters
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "ү": "y", "х": "x", "і": "i", "ӏ": "l", "ј": "j",
    "ѕ": "s", "һ": "h", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ь": "b", "п": "n", "г": "r",
    "ш": "w",
    # Greek capitals
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
    "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    # Greek small letters
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "μ": "u",
    "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c",
    "ϳ": "j",
    # Armenian
    "օ": "o", "ս": "u", "ո": "n", "հ": "h", "ց": "g", "զ": "q",
    # Latin letters NFKD leaves alone
    "ı": "i", "ȷ": "j", "ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D",
    "ħ": "h", "ŧ": "t", "ƀ": "b", "ɑ": "a", "ɡ": "g", "ɩ": "i", "ʋ": "u", "ɣ": "y",
    # Small capitals
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ғ": "f", "ɢ": "g", "ʜ": "h",
    "ɪ": "i", "ᴊ": "j", "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p",
    "ǫ": "q", "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y",
    "ᴢ": "z",
}  # fmt: skip


def _enclosed_letters() -> dict[str, str]:
    """Negative circled/squared letters and regional indicators: 🅰, 🅐, 🇦 have no NFKD form."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    table: dict[str, str] = {}
    for first in (0x1F150, 0x1F170, 0x1F1E6):
        for offset, letter in enumerate(letters):
            table[chr(first + offset)] = letter
    return table


LOOKALIKES: Mapping[str, str] = {**_LOOKALIKES, **_enclosed_letters()}

LEET: Mapping[str, str] = {
    "0": "o",
    "3": "e",
    "4": "a",
    "5": "s",
    "7": "t",
    "@": "a",
    "$": "s",
    "!": "i",
}
"""Unambiguous leetspeak. "1" and "|" stand for either i or l: see ``LEET_AMBIGUOUS``."""

LEET_AMBIGUOUS: tuple[str, ...] = ("1", "|")
"""Characters read once as "i" and once as "l" (two views of the text)."""

INVISIBLE: frozenset[str] = frozenset(
    {
        "\u034f",  # combining grapheme joiner
        "\u115f",  # Hangul choseong filler
        "\u1160",  # Hangul jungseong filler
        "\u2800",  # braille pattern blank
        "\u3164",  # Hangul filler
        "\uffa0",  # halfwidth Hangul filler
    }
)
"""Blank-looking characters that are letters or symbols, not format controls (category Cf)."""
