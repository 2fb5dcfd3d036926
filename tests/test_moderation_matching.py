"""Blocklist matching: what a disguised prompt still hits, and what an innocent one never does."""

from __future__ import annotations

import pytest

from jobqueue.moderation import Blocklist, BlockRule, InvalidRule, RuleKind
from jobqueue.moderation.matcher import clean_pattern


def blocklist(*rules: tuple[RuleKind, str]) -> Blocklist:
    return Blocklist(
        BlockRule(index + 1, 1, kind, pattern, "test", "admin", None, 0.0)
        for index, (kind, pattern) in enumerate(rules)
    )


TERMS = blocklist(("term", "loli"), ("term", "ass"), ("term", "child porn"), ("term", "pedophile"))


def hit(text: str, rules: Blocklist = TERMS) -> str | None:
    rule = rules.first_match(text)
    return None if rule is None else rule.pattern


@pytest.mark.parametrize(
    "prompt",
    [
        "LOLI girl",
        "a lolі character",  # Cyrillic і
        "a ｌｏｌｉ character",
        "a lo\u200bli character",
        "a l0l1 character",
        "a 1o|i character",
        "a l o l i character",
        "a l.o.l.i character",
        "a l-o-l-i character",
        "a l_o_l_i character",
        "a lo.li character",
        "a lolllli character",
        "draw a l o l i now",  # the article "a" does not hide the run
        "lóli",
    ],
)
def test_disguised_terms_hit(prompt: str) -> None:
    assert hit(prompt) == "loli"


@pytest.mark.parametrize(
    "prompt",
    [
        "a class photo",
        "a bass guitar on a stage",
        "grass in the wind",
        "the pen is red",
        "lo li the painter",  # short term split by a space between longer pieces
        "lollipop",
        "a loaf of bread, lime",
    ],
)
def test_innocent_words_do_not_hit(prompt: str) -> None:
    assert hit(prompt) is None


def test_multi_word_terms_match_with_any_separator_and_run_together() -> None:
    for prompt in ("child porn", "CHILD-PORN", "child...porn", "childporn", "ch1ld p0rn"):
        assert hit(prompt) == "child porn", prompt


def test_long_terms_match_when_split_by_spaces() -> None:
    assert hit("a pedo phile") == "pedophile"
    assert hit("a pe do phi le") == "pedophile"


def test_split_pieces_must_line_up_with_the_term() -> None:
    rules = blocklist(("term", "underage"), ("term", "penis"))
    assert hit("a thunder agent", rules) is None
    assert hit("the pen is mightier", rules) is None
    assert hit("under age", rules) == "underage"
    assert hit("p e n i s", rules) == "penis"


def test_spelled_out_single_letters_and_punctuation() -> None:
    assert hit("a s s") == "ass"
    assert hit("a.ss") == "ass"
    assert hit("as s") is None


def test_leet_terms_match_plain_text() -> None:
    rules = blocklist(("term", "p0rn"))
    assert hit("porn", rules) == "p0rn"


def test_term_with_triple_letters_is_not_shortened() -> None:
    rules = blocklist(("term", "xxx"))
    assert hit("a fox x-ray", rules) is None
    assert hit("xxx", rules) == "xxx"


def test_regexes_see_folded_text() -> None:
    rules = blocklist(("regex", r"\b(?:[1-9]|1[0-7]) ?(?:yo|years? old)\b"))
    assert hit("a 12-year-old", rules) is not None
    assert hit("a 12yo", rules) is not None
    assert hit("a 12 YEARS OLD", rules) is not None
    assert hit("a 19 year old", rules) is None
    assert hit("112 years old", rules) is None


def test_regexes_see_split_words_glued() -> None:
    rules = blocklist(("regex", r"\bnaked\b"))
    assert hit("n a k e d", rules) is not None
    assert hit("n.a.k.e.d", rules) is not None
    assert hit("nąkęd", rules) is not None


def test_regexes_are_case_insensitive() -> None:
    assert hit("Some Word", blocklist(("regex", "SOME WORD"))) is not None


@pytest.mark.parametrize(
    ("kind", "pattern", "complaint"),
    [
        ("regex", "(unclosed", "not a valid regular expression"),
        ("regex", "x" * 301, "at most 300"),
        ("regex", ".*", "every prompt"),
        ("regex", "(a+)+$", "too slow"),
        ("regex", "(x+x+)+y", "too slow"),
        ("term", "   ", "empty"),
        ("term", "x", "two letters"),
        ("term", "!?", "two letters"),
        ("term", "y" * 101, "at most 100"),
    ],
)
def test_bad_rules_are_refused_with_a_reason(kind: RuleKind, pattern: str, complaint: str) -> None:
    with pytest.raises(InvalidRule, match=complaint):
        clean_pattern(kind, pattern)


def test_good_rules_are_stored_trimmed() -> None:
    assert clean_pattern("term", "  loli ") == "loli"
    assert clean_pattern("regex", r"\bnude\b") == r"\bnude\b"
