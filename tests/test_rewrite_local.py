"""The local backend with the real Gemma 3 270M from PyPI.

The model folder is prepared once into ``<repo>/.cache/models`` (about a minute on a fresh
checkout, seconds afterwards) and loaded once per session. Token caps stay small: the model
makes about 10 tokens/s on two cores.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from pipeline.rewrite import GuardedRewriter, RewriteMode
from pipeline.rewrite.gemma import packaged_gemma_dir
from pipeline.rewrite.guardrails import OutputLimits, keeps_subject
from pipeline.rewrite.local import LocalBackend, LocalModel, SamplingSettings
from tests.recording_backend import RecordingBackend

MODELS_DIR = Path(__file__).resolve().parent.parent / ".cache" / "models"
TOKEN_CAP = 140
WORD_CAP = 40


@pytest.fixture(scope="session")
def gemma() -> LocalModel:
    return LocalModel.load("gemma3-270m", models_dir=MODELS_DIR)


@pytest.fixture
async def backend(gemma: LocalModel) -> AsyncIterator[LocalBackend]:
    backend = LocalBackend(
        "gemma3-270m",
        models_dir=MODELS_DIR,
        loaded=gemma,
        sampling=SamplingSettings(max_new_tokens=TOKEN_CAP),
    )
    yield backend
    await backend.aclose()


def test_the_packaged_model_is_kept_as_a_plain_folder(gemma: LocalModel) -> None:
    folder = packaged_gemma_dir(MODELS_DIR)
    assert (folder / "config.json").exists()
    assert "quantization_config" not in (folder / "config.json").read_text()
    assert not gemma.is_chat


@pytest.mark.parametrize(
    ("prompt", "mode"),
    [
        ("a cat surfing", "t2v"),
        ("a robot making pancakes in a tiny kitchen", "t2v"),
        ("the dragon breathes fire", "i2v"),
    ],
)
async def test_prompts_are_rewritten_with_the_guardrails_holding(
    backend: LocalBackend, prompt: str, mode: RewriteMode
) -> None:
    recorder = RecordingBackend(backend)
    rewriter = GuardedRewriter(recorder, timeout_s=600, limits=OutputLimits(max_words=WORD_CAP))
    result = await rewriter.rewrite(prompt, mode=mode, seed=0)
    [answer] = recorder.completions
    assert result.enhanced, result.fallback_reason
    assert keeps_subject(prompt, result.rewritten)
    assert len(result.rewritten.split()) <= WORD_CAP
    assert answer.tokens is not None
    assert answer.tokens < TOKEN_CAP, "it should stop at the end of its first answer"
    assert "Short idea" not in answer.text
    assert "\n\n" not in answer.text


async def test_the_repetition_penalty_spares_the_users_own_words(gemma: LocalModel) -> None:
    # A penalty this heavy forbids any token already counted: had it counted the prompt,
    # "cat" could not be written.
    backend = LocalBackend(
        "gemma3-270m",
        models_dir=MODELS_DIR,
        loaded=gemma,
        sampling=SamplingSettings(max_new_tokens=10, repetition_penalty=100.0),
    )
    answer = await backend.complete("a cat surfing", mode="t2v", seed=0)
    await backend.aclose()
    assert "cat" in answer.text.lower()


async def test_a_seed_gives_the_same_rewrite(gemma: LocalModel) -> None:
    backend = LocalBackend(
        "gemma3-270m",
        models_dir=MODELS_DIR,
        loaded=gemma,
        sampling=SamplingSettings(max_new_tokens=16),
    )
    first = await backend.complete("a lighthouse on a cliff", mode="t2v", seed=5)
    again = await backend.complete("a lighthouse on a cliff", mode="t2v", seed=5)
    other = await backend.complete("a lighthouse on a cliff", mode="t2v", seed=6)
    await backend.aclose()
    assert first.text == again.text
    assert first.text != other.text


async def test_a_timeout_stops_the_generating_thread(
    backend: LocalBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.rewrite")
    rewriter = GuardedRewriter(backend, timeout_s=0.5)
    result = await rewriter.rewrite("a cat surfing")
    await rewriter.aclose()
    assert (result.rewritten, result.fallback_reason) == ("a cat surfing", "timeout")
    assert "Rewrite stopped after" in caplog.text
    assert "cancelled" in caplog.text


@pytest.fixture(scope="session")
def chat_gemma(gemma: LocalModel) -> LocalModel:
    """Gemma with a minimal chat template, to drive the instruction-tuned path."""
    tokenizer = AutoTokenizer.from_pretrained(packaged_gemma_dir(MODELS_DIR))
    tokenizer.chat_template = (
        "{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n"
        "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
    )
    return LocalModel(gemma.model, tokenizer, name="gemma-chat")


def test_a_chat_model_gets_the_directors_brief(chat_gemma: LocalModel) -> None:
    rendered = chat_gemma.render("a cat surfing", "t2v")
    assert chat_gemma.is_chat
    assert "film director" in rendered.text
    assert "<start_of_turn>user\na cat surfing<end_of_turn>" in rendered.text
    assert rendered.end_markers == ()
    assert "motion" in chat_gemma.render("the cat jumps", "i2v").text


def test_a_template_without_a_system_role_gets_the_brief_in_the_user_turn(
    chat_gemma: LocalModel,
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(packaged_gemma_dir(MODELS_DIR))
    tokenizer.chat_template = (
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system role') }}"
        "{% endif %}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    )
    model = LocalModel(chat_gemma.model, tokenizer, name="gemma-strict-chat")
    rendered = model.render("a cat surfing", "t2v")
    assert rendered.text.startswith("user: You are a film director")
    assert rendered.text.rstrip().endswith("a cat surfing")


async def test_a_chat_model_generates(chat_gemma: LocalModel) -> None:
    backend = LocalBackend(
        "gemma-chat",
        models_dir=MODELS_DIR,
        loaded=chat_gemma,
        sampling=SamplingSettings(max_new_tokens=8),
    )
    answer = await backend.complete("a cat surfing", mode="t2v", seed=0)
    await backend.aclose()
    assert answer.tokens is not None
    assert 0 < answer.tokens <= 8
