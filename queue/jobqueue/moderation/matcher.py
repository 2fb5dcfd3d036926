"""Matching prompts against a server's blocklist: plain terms and regular expressions.

Both sides are normalized the same way (:mod:`jobqueue.moderation.normalize`), so matching
ignores case, accents, lookalike letters, invisible characters and leetspeak. On top:

Plain terms match whole words, never inside a longer word: "ass" does not match "class",
and a multi-word term matches its words with any spaces or punctuation between them.
A term also matches when its letters were split apart, if the pieces joined spell exactly
the term and start and end on word edges, and each split is one of:

- punctuation without spaces: "lo.li", "s-e-x", "l_o_l_i";
- a space between two single letters: "s e x", "l o l i" (also inside a longer run,
  "draw a s e x scene");
- any space, for terms of ``LONG_TERM`` letters or more: "pedo phile", "jail bait".

So "pen is" does not match "penis" and "thunder agent" does not match "underage" (the
pieces do not line up with the term's edges), while deliberate splitting is caught.

Regular expressions are matched (case-insensitively) against each reading of the text with
words separated by single spaces, and again with split words glued back ("l o l i" ->
"loli"). They see folded text: lowercase, no accents, letters and digits only.
They are compiled by the ``regex`` module, capped in length, checked against slow inputs
when added, and run with a timeout.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import regex

from jobqueue.moderation.models import BlockRule, InvalidRule, RuleKind
from jobqueue.moderation.normalize import TextView, text_views

log = logging.getLogger(__name__)

LONG_TERM = 7
"""Letters from which a term also matches when split by spaces anywhere."""

TERM_MAX_LENGTH = 100
REGEX_MAX_LENGTH = 300
REGEX_TIMEOUT_S = 0.05
# Nested repeats backtrack exponentially: on the probes below they run for minutes, while a
# sound pattern takes milliseconds. The probe's budget is ten times the matching budget so a
# busy host does not refuse a sound pattern (or fail to load the shipped blocklist).
SPEED_PROBE_TIMEOUT_S = 0.5
_REGEX_FLAGS = regex.IGNORECASE | regex.VERSION0

_SLOW_INPUT_LENGTH = 3000


def _slow_inputs(pattern: str) -> list[str]:
    """Long runs of the pattern's own letters: what makes ``(x+x+)+y`` backtrack for ages."""
    letters = sorted({ch for ch in pattern.casefold() if ch.isalnum()})[:12] or ["a"]
    runs = [letter * _SLOW_INPUT_LENGTH + "!" for letter in letters]
    runs += [f"{letter} " * (_SLOW_INPUT_LENGTH // 2) for letter in letters[:4]]
    runs.append("".join(letters) * (_SLOW_INPUT_LENGTH // len(letters)))
    return runs


_ORDINARY_PROMPT = "a red balloon drifting over a city at sunset, cinematic"


def clean_pattern(kind: RuleKind, pattern: str, *, max_regex_length: int = REGEX_MAX_LENGTH) -> str:
    """The pattern as stored, or :class:`InvalidRule` with a sentence saying what is wrong."""
    pattern = pattern.strip()
    if not pattern:
        raise InvalidRule("The term is empty.")
    if kind == "term":
        _check_term(pattern)
    else:
        _check_regex(pattern, max_length=max_regex_length)
    return pattern


def _check_term(term: str) -> None:
    if len(term) > TERM_MAX_LENGTH:
        raise InvalidRule(f"A term can be at most {TERM_MAX_LENGTH} characters long.")
    letters = "".join(text_views(term, shorten_repeats=False)[0].tokens)
    if len(letters) < 2:
        raise InvalidRule("A term needs at least two letters or digits.")


def _check_regex(pattern: str, *, max_length: int) -> None:
    if len(pattern) > max_length:
        raise InvalidRule(f"A regular expression can be at most {max_length} characters long.")
    try:
        compiled = regex.compile(pattern, _REGEX_FLAGS)
    except regex.error as exc:
        raise InvalidRule(f"That is not a valid regular expression ({exc}).") from exc
    try:
        matches_anything = compiled.search("", timeout=REGEX_TIMEOUT_S) is not None
        matches_anything = matches_anything or (
            compiled.search(_ORDINARY_PROMPT, timeout=REGEX_TIMEOUT_S) is not None
            and compiled.search("zq", timeout=REGEX_TIMEOUT_S) is not None
        )
        for text in _slow_inputs(pattern):
            compiled.search(text, timeout=SPEED_PROBE_TIMEOUT_S)
    except TimeoutError as exc:
        raise InvalidRule(
            "That regular expression is too slow on long prompts; avoid nested repeats"
            " such as (a+)+."
        ) from exc
    if matches_anything:
        raise InvalidRule("That regular expression would match every prompt.")


@dataclass(frozen=True)
class _Term:
    words: tuple[str, ...]
    rule: BlockRule


class Blocklist:
    """A server's rules, compiled once; :meth:`first_match` checks one text against all."""

    def __init__(self, rules: Iterable[BlockRule]) -> None:
        self._by_first_word: dict[str, list[_Term]] = defaultdict(list)
        self._by_letters: dict[str, list[BlockRule]] = defaultdict(list)
        self._regexes: list[tuple[regex.Pattern[str], BlockRule]] = []
        for rule in rules:
            if rule.kind == "term":
                self._add_term(rule)
            else:
                self._add_regex(rule)
        self._longest = max((len(letters) for letters in self._by_letters), default=0)

    def _add_term(self, rule: BlockRule) -> None:
        for view in text_views(rule.pattern, shorten_repeats=False):
            if view.tokens:
                self._by_first_word[view.tokens[0]].append(_Term(view.tokens, rule))
                self._by_letters["".join(view.tokens)].append(rule)

    def _add_regex(self, rule: BlockRule) -> None:
        try:
            self._regexes.append((regex.compile(rule.pattern, _REGEX_FLAGS), rule))
        except regex.error:
            log.warning("blocklist rule %s is not a valid regex; skipped", rule.id)

    def first_match(self, text: str) -> BlockRule | None:
        """The first rule ``text`` matches under any of its readings, or ``None``."""
        for view in text_views(text):
            rule = self._match_words(view) or self._match_split(view) or self._match_regex(view)
            if rule is not None:
                return rule
        return None

    def _match_words(self, view: TextView) -> BlockRule | None:
        tokens = view.tokens
        for start, token in enumerate(tokens):
            for term in self._by_first_word.get(token, ()):
                if tokens[start : start + len(term.words)] == term.words:
                    return term.rule
        return None

    def _match_split(self, view: TextView) -> BlockRule | None:
        tokens = view.tokens
        for start in range(len(tokens)):
            letters = tokens[start]
            deliberate = True
            for end in range(start + 1, len(tokens)):
                deliberate = deliberate and view.joinable(end - 1)
                letters += tokens[end]
                if len(letters) > self._longest:
                    break
                if deliberate or len(letters) >= LONG_TERM:
                    rules = self._by_letters.get(letters)
                    if rules:
                        return rules[0]
            if tokens[start] in self._by_letters:
                return self._by_letters[tokens[start]][0]
        return None

    def _match_regex(self, view: TextView) -> BlockRule | None:
        texts = (view.text,) if view.joined == view.text else (view.text, view.joined)
        for compiled, rule in self._regexes:
            for text in texts:
                try:
                    if compiled.search(text, timeout=REGEX_TIMEOUT_S):
                        return rule
                except TimeoutError:
                    log.warning(
                        "blocklist rule %s timed out on a %d-character prompt", rule.id, len(text)
                    )
        return None
