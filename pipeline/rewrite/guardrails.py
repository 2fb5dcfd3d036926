"""Checks every model answer passes before it replaces the user's prompt.

Small models and chatty endpoints wrap their answer in preambles, quotes and markdown, run
on, repeat themselves, drift to another subject, leak the tokens of a chat template, echo
their instructions, or obey instructions hidden in the user's prompt. ``review`` cleans what
can be cleaned and rejects the rest with a short reason, so the user's own prompt is used
instead. The video prompt also lands in Discord embeds, so links, mentions and HTML are
rejected too.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import cache

from pipeline.camera import idea_without_direction
from pipeline.text import clean_text

from .prompts import system_briefs

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
# A reasoning model's thoughts come before its answer.
_THINKING = re.compile(r"^\s*<think>.*?</think>", re.DOTALL)
# End-of-turn tokens a server left at the end of an otherwise clean answer.
_TRAILING_END = re.compile(
    r"(?:\s*(?:<\|(?:im_end|eot_id|endoftext|end)\|>|<end_of_turn>|</s>|<eos>))+\s*$"
)
_QUOTES = "\"'“”‘’«»「」"
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
_SENTENCE_END = re.compile(r"[.!?…。！？](?=\s|$)")

# The tokens of the common chat templates (ChatML, Llama 2 and 3, Gemma, Mistral, Phi,
# Alpaca): a model that writes them is imitating a transcript, not describing a scene.
_TEMPLATE_TOKEN = re.compile(
    r"""<\|[^|<>\s]{1,40}\|>
      | \[/?INST\] | <</?SYS>> | \[/?(?:SYSTEM_PROMPT|AVAILABLE_TOOLS|TOOL_CALLS|TOOL_RESULTS)\]
      | </?(?:s|bos|eos|pad|unk|start_of_turn|end_of_turn|start_of_image|end_of_image
              |think|image|img|system|user|assistant)>
      | ^\s*\#{2,3}\s*(?:instruction|response|input|system|user|assistant)\b
      | \b(?:short\s+idea|cinematic\s+video\s+prompt|motion\s+and\s+camera)\s*:""",
    re.IGNORECASE | re.VERBOSE | re.MULTILINE,
)
_MENTION = re.compile(r"@(?:everyone|here)\b|<[@#][!&]?\d+>|(?<![\w.])@[^\W_]", re.IGNORECASE)
_LINK = re.compile(
    r"""\b(?:https?|ftp)://
      | \bwww\.\S
      | \b[\w-]+\.(?:com|net|org|io|gg|ly|xyz|ru|uk|app|dev|info|tv|link)\b
      | \b[\w.+-]+@[\w-]+\.[a-z]{2,}\b""",
    re.IGNORECASE | re.VERBOSE,
)
_HTML = re.compile(r"</?[a-z][a-z0-9-]*(?:\s[^<>]*)?/?>|&(?:[a-z]{2,8}|#\d{1,6});", re.IGNORECASE)
# An answer that speaks about its task, to the user, or refuses, is not a scene.
_META = re.compile(
    r"""\bas\s+an\s+ai\b | \blanguage\s+model\b | \bi(?:'m|\s+am)\s+sorry\b | \bi\s+apologi[sz]e\b
      | \bi\s+(?:cannot|can't|can\s+not|won't|will\s+not)\b
      | \b(?:previous|above|earlier|prior|my|your)\s+instructions\b
      | \bsystem\s+prompt\b | \bthe\s+user(?:'s)?\s+(?:idea|prompt|request)\b""",
    re.IGNORECASE | re.VERBOSE,
)
# A prompt that tries to steer the rewriter ("ignore previous instructions and ..."): whatever
# the model answers, it is not the rewrite the user's idea would get.
_INJECTION = re.compile(
    r"""\b(?:ignore|disregard|forget|override|bypass)\b[^.!?\n]{0,40}?
        \b(?:instructions?|prompts?|rules|guidelines|directions|above|previous|prior)\b
      | \bsystem\s+prompt\b | \byou\s+are\s+now\b | \bnew\s+instructions\b
      | \bdeveloper\s+mode\b | \bjailbreak
      | \b(?:repeat|print|reveal|output|show)\b[^.!?\n]{0,30}?
        \b(?:your|the)\s+(?:instructions|prompt)\b
      | \bpretend\s+(?:to\s+be|you\s+are)\b""",
    re.IGNORECASE | re.VERBOSE,
)
_ECHO_NGRAM = 8
_LIST_ITEM_WORDS = 3

_STOPWORD_LIST = """
    a an the and or but nor of in on at to for from by with without into onto over under
    above below about across after before behind between through during while as than then
    is are was were be been being am do does did has have had will would can could should
    may might must shall it its it's this that these those there here my your his her our
    their me you him them we they i he she who whom which what where when why how very
    really just so too also some any all no not each every up down out off again more most
    make makes making made show shows showing video clip scene shot"""
STOPWORDS = frozenset(_STOPWORD_LIST.split())


@dataclass(frozen=True)
class OutputLimits:
    """How long a rewrite may be; longer answers are cut at a sentence end."""

    max_words: int = 150
    max_chars: int = 1000
    min_words: int = 3
    loop_ngram: int = 4
    loop_repeats: int = 3
    list_run: int = 8


@dataclass(frozen=True)
class Review:
    """The cleaned text, or the reason it cannot be used."""

    text: str
    rejected: str | None


def review(original: str, answer: str, limits: OutputLimits | None = None) -> Review:
    """Clean ``answer`` and decide whether it may replace ``original``."""
    limits = limits or OutputLimits()
    raw = _TRAILING_END.sub("", _THINKING.sub("", clean_text(answer)))
    if "\ufffd" in raw:
        return Review(raw, "the answer is garbled")
    if _TEMPLATE_TOKEN.search(raw):
        return Review(raw, "the answer contains chat-template tokens")
    text = cap_length(clean(raw), limits)
    rejected = _first_problem(original, text, limits)
    return Review(text, rejected)


def _first_problem(original: str, text: str, limits: OutputLimits) -> str | None:
    if len(text.split()) < limits.min_words:
        return "empty answer"
    if _MENTION.search(text):
        return "the answer contains a mention"
    if _LINK.search(text):
        return "the answer contains a link"
    if _HTML.search(text):
        return "the answer contains HTML"
    if _META.search(text):
        return "the answer is not a scene description"
    if echoes_instructions(text):
        return "the answer repeats the instructions"
    if is_looping(text, limits):
        return "the answer repeats itself"
    if is_list(text, limits):
        return "the answer is a list, not a scene"
    # The camera note after an idea is the brief's to follow, not part of the subject.
    if not keeps_subject(idea_without_direction(original), text):
        return "lost the subject"
    return None


def gives_instructions(prompt: str) -> bool:
    """True when the prompt addresses the rewriter ("ignore previous instructions and ...") or
    holds chat-template tokens, which a tokenizer would turn into real turn boundaries."""
    return _INJECTION.search(prompt) is not None or _TEMPLATE_TOKEN.search(prompt) is not None


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


def is_list(text: str, limits: OutputLimits) -> bool:
    """A run of ``list_run`` short comma-separated items, or hashtags: tags, not prose.

    Prose lists a few details in a row ("soft light, film grain, warm colours"); a model
    that enumerates ("cat, wave, sea, sun, 4k, 8k, ...") writes no scene.
    """
    if len(re.findall(r"(?<!\w)#[^\W_]", text)) >= 3:
        return True
    run = longest = 0
    for item in re.split(r"[,;|]", text):
        run = run + 1 if 0 < len(item.split()) <= _LIST_ITEM_WORDS else 0
        longest = max(longest, run)
    return longest >= limits.list_run


def echoes_instructions(text: str) -> bool:
    """True when the answer copies ``_ECHO_NGRAM`` words in a row from a director's brief."""
    tokens = words(text)
    grams = {tuple(tokens[i : i + _ECHO_NGRAM]) for i in range(len(tokens) - _ECHO_NGRAM + 1)}
    return not grams.isdisjoint(_instruction_ngrams())


@cache
def _instruction_ngrams() -> frozenset[tuple[str, ...]]:
    grams: set[tuple[str, ...]] = set()
    for text in system_briefs():
        tokens = words(text)
        grams.update(tuple(tokens[i : i + _ECHO_NGRAM]) for i in range(len(tokens)))
    return frozenset(gram for gram in grams if len(gram) == _ECHO_NGRAM)


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


def kept_share(original: str, rewritten: str) -> float:
    """The share of the prompt's content words the rewrite still has (1.0 when it has none).

    A word counts as kept when the rewrite has the same stem, or a word starting with a stem
    of four letters or more ("surf" in "surfboard", "light" in "lighthouse").
    """
    wanted = content_stems(original)
    if not wanted:
        return 1.0
    present = content_stems(rewritten)
    kept = sum(1 for word in wanted if _is_present(word, present))
    return kept / len(wanted)


def _is_present(stemmed: str, present: set[str]) -> bool:
    if stemmed in present:
        return True
    return len(stemmed) >= 4 and any(word.startswith(stemmed) for word in present)


def keeps_subject(original: str, rewritten: str) -> bool:
    """True when the rewrite keeps more than half of the prompt's content words."""
    return kept_share(original, rewritten) > 0.5
