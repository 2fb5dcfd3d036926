"""Checks every model answer passes before it replaces the user's prompt.

Small models and chatty endpoints wrap their answer in preambles, quotes and markdown, run
on, repeat themselves, or drift to another subject. ``review`` cleans what can be cleaned
and rejects the rest with a short reason, so the user's own prompt is used instead.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

# Stock openings of chat models ("Sure! Here is your prompt:") and the labels of our own
# few-shot format, which a model sometimes repeats.
_PREAMBLE = re.compile(
    r"""^\s*(?:
        (?:sure|certainly|of\s+course|okay|ok|absolutely|great)\s*[.!:,]\s*
      | i(?:'d|\s+would)\s+be\s+(?:happy|glad)\b[^\n.!]*[.!]\s*
      | (?:here(?:'s|’s|\s+is|\s+are)|below\s+is)\b[^\n:]{0,80}:\s*
      | (?:cinematic\s+(?:video\s+)?prompt|video\s+prompt|enhanced\s+prompt|rewritten\s+prompt
          |motion\s+and\s+camera|prompt|scene|description)\s*:\s*
    )+""",
    re.IGNORECASE | re.VERBOSE,
)
# Chat models like to close with an offer of more help; that is not part of the scene.
_CLOSING = re.compile(
    r"\s*(?:let\s+me\s+know|i\s+hope|feel\s+free|would\s+you\s+like)\b.*$",
    re.IGNORECASE | re.DOTALL,
)
_MARKDOWN = re.compile(r"^\s{0,3}#{1,6}\s.*$|^\s*(?:[-+]|\d+[.)])\s+|\*+|__|`+", re.MULTILINE)
_QUOTES = "\"'“”‘’«»「」"
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SENTENCE_END = re.compile(r"[.!?…](?=\s|$)")

_STOPWORD_LIST = """
    a an the and or but nor of in on at to for from by with without into onto over under
    above below about across after before behind between through during while as than then
    is are was were be been being am do does did has have had will would can could should
    may might must shall it its it's this that these those there here my your his her our
    their me you him them we they i he she who whom which what where when why how very
    really just so too also some any all no not each every up down out off again more most
    make makes made show shows showing video clip scene shot"""
STOPWORDS = frozenset(_STOPWORD_LIST.split())


@dataclass(frozen=True)
class OutputLimits:
    """How long a rewrite may be; longer answers are cut at a sentence end."""

    max_words: int = 150
    max_chars: int = 1000
    min_words: int = 3
    loop_ngram: int = 4
    loop_repeats: int = 3


@dataclass(frozen=True)
class Review:
    """The cleaned text, or the reason it cannot be used."""

    text: str
    rejected: str | None


def review(original: str, answer: str, limits: OutputLimits | None = None) -> Review:
    """Clean ``answer`` and decide whether it may replace ``original``."""
    limits = limits or OutputLimits()
    text = cap_length(clean(answer), limits)
    if len(text.split()) < limits.min_words:
        return Review(text, "empty answer")
    if is_looping(text, limits):
        return Review(text, "the answer repeats itself")
    if not keeps_subject(original, text):
        return Review(text, "lost the subject")
    return Review(text, None)


def clean(answer: str) -> str:
    """Strip preambles, closing offers, markdown and wrapping quotes; join lines."""
    text = _MARKDOWN.sub("", answer)
    text = _PREAMBLE.sub("", text)
    text = _CLOSING.sub("", text)
    text = " ".join(text.split())
    return _strip_quotes(text)


def _strip_quotes(text: str) -> str:
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text


def cap_length(text: str, limits: OutputLimits) -> str:
    """Cut to the word and character caps, at the last sentence end that keeps half of it."""
    words = text.split()
    if len(words) <= limits.max_words and len(text) <= limits.max_chars:
        return text
    cut = " ".join(words[: limits.max_words])[: limits.max_chars]
    ends = [match.end() for match in _SENTENCE_END.finditer(cut)]
    if ends and ends[-1] >= len(cut) // 2:
        return cut[: ends[-1]]
    return cut.rsplit(" ", 1)[0] if " " in cut else cut


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def is_looping(text: str, limits: OutputLimits) -> bool:
    """A phrase of ``loop_ngram`` words said ``loop_repeats`` times, or a sentence said twice."""
    tokens = words(text)
    size = limits.loop_ngram
    grams = Counter(tuple(tokens[i : i + size]) for i in range(len(tokens) - size + 1))
    if grams and max(grams.values()) >= limits.loop_repeats:
        return True
    sentences = [" ".join(words(part)) for part in _SENTENCE_END.split(text)]
    long_sentences = [sentence for sentence in sentences if sentence.count(" ") >= 3]
    return len(long_sentences) != len(set(long_sentences))


def stem(word: str) -> str:
    """Fold plurals and common verb endings so "cats" matches "cat" and "surfing" "surfs"."""
    word = word.removesuffix("'s")
    if word.endswith(("ies", "ied")) and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("es") and word[:-2].endswith(("s", "x", "z", "ch", "sh")):
        word = word[:-2]
    elif word.endswith("ing") and len(word) > 5:
        word = word[:-3]
    elif word.endswith("ed") and len(word) > 4:
        word = word[:-2]
    elif word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        word = word[:-1]
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
        word = word[:-1]
    return word


def content_stems(text: str) -> set[str]:
    return {stem(word) for word in words(text) if word not in STOPWORDS and not word.isdigit()}


def keeps_subject(original: str, rewritten: str) -> bool:
    """True when some content word of the user's prompt survives (or it has none to keep)."""
    wanted = content_stems(original)
    return not wanted or bool(wanted & content_stems(rewritten))
