"""The guardrails every rewrite passes: cleaning, the length cap, and each rejection reason."""

from __future__ import annotations

import pytest

from pipeline.rewrite.guardrails import OutputLimits, clean, keeps_subject, review, stem

SCENE = (
    "A ginger cat rides a turquoise wave on a small surfboard, paws planted wide as spray "
    "flies past. Golden evening light glints on the water. The camera tracks alongside at "
    "wave height. Vivid colours, cinematic realism."
)


@pytest.mark.parametrize(
    "answer",
    [
        f"Here is your prompt: {SCENE}",
        f"Sure! Here's a cinematic video prompt:\n\n{SCENE}",
        f"Certainly! I'd be happy to help.\n\n**Cinematic video prompt:** {SCENE}",
        f'"{SCENE}"',
        f"“{SCENE}”",
        f"## Prompt\n\n{SCENE}",
        f"```\n{SCENE}\n```",
        f"{SCENE}\n\nLet me know if you'd like another version!",
    ],
)
def test_preambles_quotes_and_markup_are_stripped(answer: str) -> None:
    assert clean(answer) == SCENE


def test_lines_are_joined_into_one_paragraph() -> None:
    assert clean("- A cat surfs.\n- The camera follows.") == "A cat surfs. The camera follows."


def test_a_good_rewrite_is_accepted() -> None:
    verdict = review("a cat surfing", SCENE)
    assert verdict.rejected is None
    assert verdict.text == SCENE


def test_long_answers_are_cut_at_a_sentence_end() -> None:
    sentence = "The cat rides another glittering wave toward the shore."
    answer = " ".join([sentence] * 2 + [f"Then wave number {n} arrives." for n in range(60)])
    limits = OutputLimits(max_words=40, loop_repeats=99)
    verdict = review("a cat surfing", answer, limits)
    assert len(verdict.text.split()) <= 40
    assert verdict.text.endswith(".")


def test_the_character_cap_holds_without_sentence_ends() -> None:
    answer = "cat " + "x" * 3000
    text = review("a cat", answer, OutputLimits(max_chars=200)).text
    assert len(text) <= 200


@pytest.mark.parametrize("answer", ["", "   ", '""', "Here is your prompt:", "**Cat.**"])
def test_empty_answers_are_rejected(answer: str) -> None:
    assert review("a cat surfing", answer).rejected == "empty answer"


def test_repeated_phrases_are_rejected() -> None:
    answer = "A cat surfs on a big wave, " * 4
    assert review("a cat surfing", answer).rejected == "the answer repeats itself"


def test_a_repeated_sentence_is_rejected() -> None:
    answer = "A cat surfs on the sea at dawn. The light is soft. A cat surfs on the sea at dawn."
    assert review("a cat surfing", answer).rejected == "the answer repeats itself"


def test_losing_every_content_word_is_rejected() -> None:
    answer = "A man rides his bicycle through green hills under a bright yellow sky at noon."
    assert review("a cat surfing", answer).rejected == "lost the subject"


@pytest.mark.parametrize(
    ("original", "rewritten"),
    [
        ("two cats surfing", "A cat surfs a wave."),
        ("a dog runs", "The dogs are running on the beach."),
        ("the city skyline", "Cities glow at night."),
        ("foxes dancing", "A fox dances in the snow."),
    ],
)
def test_plurals_and_verb_endings_still_count_as_the_subject(original: str, rewritten: str) -> None:
    assert keeps_subject(original, rewritten)


def test_a_prompt_of_only_stopwords_has_no_subject_to_lose() -> None:
    assert keeps_subject("make it show", "Waves crash on the rocks.")


@pytest.mark.parametrize(
    ("word", "expected"), [("cats", "cat"), ("boxes", "box"), ("glass", "glass")]
)
def test_stem(word: str, expected: str) -> None:
    assert stem(word) == expected
