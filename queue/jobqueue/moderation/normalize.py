"""Text normalization for blocklist matching: every way a prompt can be read.

A prompt is folded once (:func:`fold`): invisible characters removed (zero-width spaces and
joiners, bidi controls, soft hyphens, Hangul fillers), NFKD with accents stripped, Cyrillic,
Greek and other lookalikes mapped to the Latin letter they imitate, then casefolded.
The folded text is then read in a few *views* (:func:`text_views`), each a list of tokens
(runs of letters and digits) with a note of how each token was separated from the next:

- the folded text as written (digits kept: "12 year old" must stay matchable);
- leetspeak read as letters (0->o, 3->e, 4->a, 5->s, 7->t, @->a, $->s, !->i), once with
  1 and | read as "i" and once as "l";
- each of those with runs of three or more of one letter shortened to one and to two
  ("seeexxx" -> "sex", "asssss" -> "ass").

Views that come out identical are kept once, so plain prompts are read once.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property

from jobqueue.moderation.confusables import INVISIBLE, LEET, LEET_AMBIGUOUS, LOOKALIKES

_TOKEN = re.compile(r"[^\W_]+")
_REPEATED_LETTER = re.compile(r"([^\W\d_])\1{2,}")
_DROPPED_CATEGORIES = frozenset({"Cf", "Mn", "Me"})
_LOOKALIKE_TABLE = str.maketrans(dict(LOOKALIKES))
_LEET_AS_I = str.maketrans({**LEET, **dict.fromkeys(LEET_AMBIGUOUS, "i")})
_LEET_AS_L = str.maketrans({**LEET, **dict.fromkeys(LEET_AMBIGUOUS, "l")})
_LEET_CHARACTERS = frozenset(LEET) | frozenset(LEET_AMBIGUOUS)


def fold(text: str) -> str:
    """Text as the matcher compares it: no invisible characters, accents, lookalikes or case."""
    visible = "".join(ch for ch in text if ch not in INVISIBLE)
    # Lookalikes are mapped before casefolding (the table is case-specific) and marks are
    # dropped after it, since casefolding can itself add one ("İ" -> "i" + dot above).
    latin = unicodedata.normalize("NFKD", visible).translate(_LOOKALIKE_TABLE).casefold()
    decomposed = unicodedata.normalize("NFKD", latin)
    bare = "".join(ch for ch in decomposed if unicodedata.category(ch) not in _DROPPED_CATEGORIES)
    # NFKC recomposes what NFKD split without marks, such as Hangul syllables.
    return unicodedata.normalize("NFKC", bare)


@dataclass(frozen=True)
class TextView:
    """One reading of a text: its tokens, and which neighbours only punctuation separated."""

    tokens: tuple[str, ...]
    tight: tuple[bool, ...]
    """``tight[k]``: tokens k and k+1 were separated by symbols only, with no space."""

    @classmethod
    def of(cls, folded: str) -> TextView:
        matches = list(_TOKEN.finditer(folded))
        tokens = tuple(match.group() for match in matches)
        tight = tuple(
            not any(ch.isspace() for ch in folded[left.end() : right.start()])
            for left, right in itertools.pairwise(matches)
        )
        return cls(tokens, tight)

    @cached_property
    def text(self) -> str:
        """The tokens separated by single spaces: what regular expressions see first."""
        return " ".join(self.tokens)

    @cached_property
    def joined(self) -> str:
        """:attr:`text` with split words glued back: "l.o.l.i" and "l o l i" read "loli".

        Regular expressions see this too. Tokens separated only by punctuation are joined,
        and so are runs of single letters separated by spaces.
        """
        if not self.tokens:
            return ""
        chunks = [self.tokens[0]]
        for index, token in enumerate(self.tokens[1:]):
            if self.joinable(index):
                chunks[-1] += token
            else:
                chunks.append(token)
        return " ".join(chunks)

    def joinable(self, index: int) -> bool:
        """Whether tokens ``index`` and ``index + 1`` are plausibly one word split apart."""
        return self.tight[index] or (
            len(self.tokens[index]) == 1 and len(self.tokens[index + 1]) == 1
        )


def text_views(text: str, *, shorten_repeats: bool = True) -> list[TextView]:
    """Every distinct reading of ``text`` (see the module docstring), the plain one first.

    Blocked terms are read without ``shorten_repeats``: a term such as "xxx" must not
    become "x" and match every lone x.
    """
    folded = fold(text)
    readings = [folded]
    if any(ch in _LEET_CHARACTERS for ch in folded):
        readings += [folded.translate(_LEET_AS_I), folded.translate(_LEET_AS_L)]
    for reading in list(readings) if shorten_repeats else ():
        if _REPEATED_LETTER.search(reading):
            readings.append(_REPEATED_LETTER.sub(r"\1", reading))
            readings.append(_REPEATED_LETTER.sub(r"\1\1", reading))
    views: dict[str, TextView] = {}
    for reading in readings:
        view = TextView.of(reading)
        views.setdefault(view.text + "\0" + view.joined, view)
    return list(views.values())
