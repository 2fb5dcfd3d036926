"""Prompts are folded so that disguised letters read as the letters they imitate."""

from __future__ import annotations

import pytest

from jobqueue.moderation.normalize import fold, text_views


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("LoLi", "loli"),
        ("Ｌｏｌｉ", "loli"),  # fullwidth
        ("𝐥𝐨𝐥𝐢", "loli"),  # mathematical bold
        ("ⓛⓞⓛⓘ", "loli"),  # circled
        ("🅻🅾🅻🅸", "loli"),  # negative squared
        ("ʟᴏʟɪ", "loli"),  # small capitals
        ("lоlі", "loli"),  # Cyrillic о and і
        ("ΝΑΚΕD", "naked"),  # Greek capitals
        ("nαkεd", "naked"),  # Greek small letters
        ("nàkéd", "naked"),  # accents
        ("lo\u200bli", "loli"),  # zero-width space
        ("lo\u200dl\u2060i", "loli"),  # zero-width joiner, word joiner
        ("\u202eilol\u202c", "ilol"),  # bidi override is dropped, not obeyed
        ("lo\u00adli", "loli"),  # soft hyphen
        ("lo\u3164li", "loli"),  # Hangul filler
        ("İstanbul", "istanbul"),
        ("Straße", "strasse"),
    ],
)
def test_disguised_letters_fold_to_plain_ones(written: str, read: str) -> None:
    assert fold(written) == read


def test_other_scripts_are_kept() -> None:
    assert fold("한국어 テスト") == "한국어 テスト"


def readings(text: str) -> set[str]:
    return {view.text for view in text_views(text)}


def test_leetspeak_is_read_both_ways_and_digits_are_kept() -> None:
    assert readings("l0l1") == {"l0l1", "loli", "loll"}
    assert readings("$3x") >= {"sex"}
    assert readings("a 12 year old") >= {"a 12 year old"}


def test_repeated_letters_are_shortened() -> None:
    assert readings("seeeexxx") >= {"sex"}
    assert readings("asssss") >= {"ass"}


def test_plain_text_is_read_once() -> None:
    assert readings("a red balloon over the city") == {"a red balloon over the city"}


def test_split_words_are_glued_for_regexes() -> None:
    (dotted,) = text_views("draw l.o.l.i now")
    (spaced,) = text_views("draw l o l i now")
    assert dotted.text == "draw l o l i now"
    assert dotted.joined == "draw loli now"
    assert spaced.joined == "draw loli now"


def test_spaces_and_punctuation_are_told_apart() -> None:
    (view,) = text_views("lo.li is here")
    assert view.tokens == ("lo", "li", "is", "here")
    assert view.tight == (True, False, False)
