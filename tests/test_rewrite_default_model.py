"""Which local model rewrites by default, and what happens when the configured one cannot load:
one log line, the packaged Gemma instead, and no second try at the failing load."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import pytest

from jobqueue.settings import CoreSettings
from pipeline.rewrite import GuardedRewriter, build_backend
from pipeline.rewrite.gemma import PACKAGED_GEMMA
from pipeline.rewrite.local import DEFAULT_CHAT_MODEL, LocalBackend, LocalModel, choose_model
from tests.tiny_lms import build_tiny_chat_lm

MODELS_DIR = Path(__file__).resolve().parent.parent / ".cache" / "models"


@pytest.fixture(scope="module")
def tiny_chat_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_chat_lm(tmp_path_factory.mktemp("models") / "tiny-chat")


@pytest.fixture
def broken_model(tmp_path: Path) -> Path:
    """A model folder whose config cannot be read, as after an interrupted download."""
    folder = tmp_path / "half-downloaded"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "qwen2", "hidden_si')
    return folder


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every model name ``LocalModel.load`` is asked for, in order."""
    asked: list[str] = []
    original = LocalModel.load.__func__  # type: ignore[attr-defined]

    def counting(cls: type[LocalModel], name: str, **options: Any) -> LocalModel:
        asked.append(name)
        return original(cls, name, **options)  # type: ignore[no-any-return]

    monkeypatch.setattr(LocalModel, "load", classmethod(counting))
    return asked


def test_auto_is_an_instruction_tuned_model_on_a_gpu_and_gemma_on_the_cpu() -> None:
    assert choose_model("auto", "cuda") == DEFAULT_CHAT_MODEL == "Qwen/Qwen2.5-3B-Instruct"
    assert choose_model("auto", "cpu") == PACKAGED_GEMMA
    assert choose_model("my/model", "cuda") == "my/model"


def test_the_settings_default_to_auto_on_the_gpu_when_there_is_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    config = CoreSettings().rewriter_config()
    assert (config.backend, config.local_model, config.device) == ("local", "auto", "auto")
    # No GPU here: auto is the packaged Gemma.
    assert build_backend(config).model == PACKAGED_GEMMA


async def test_a_model_that_cannot_load_is_replaced_in_one_log_line(
    broken_model: Path,
    tiny_chat_lm: Path,
    loads: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.rewrite")
    backend = LocalBackend(
        str(broken_model), models_dir=broken_model.parent, fallback_model=str(tiny_chat_lm)
    )
    rewriter = GuardedRewriter(backend, timeout_s=60)
    first = await rewriter.rewrite("a cat surfing")
    second = await rewriter.rewrite("the waves crash", seed=1)
    await rewriter.aclose()
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert (
        warnings[0].getMessage().startswith(f"Could not load the rewriting model {broken_model} (")
    )
    assert warnings[0].getMessage().endswith(f"; using {tiny_chat_lm} instead")
    assert loads == [str(broken_model), str(tiny_chat_lm)]
    # Jobs go on: the stand-in answered (random weights write junk, which falls back).
    assert (first.model, second.model) == (str(tiny_chat_lm), str(tiny_chat_lm))
    assert first.fallback_reason != "the rewriting model could not be loaded"


async def test_when_the_stand_in_cannot_load_either_no_rewrite_tries_again(
    broken_model: Path, loads: list[str]
) -> None:
    backend = LocalBackend(
        str(broken_model), models_dir=broken_model.parent, fallback_model=str(broken_model) + "x"
    )
    rewriter = GuardedRewriter(backend, timeout_s=60)
    results = [await rewriter.rewrite(prompt) for prompt in ("a cat surfing", "a dog running")]
    await rewriter.aclose()
    assert [result.fallback_reason for result in results] == [
        "the rewriting model could not be loaded"
    ] * 2
    assert [result.rewritten for result in results] == ["a cat surfing", "a dog running"]
    assert len(loads) == 2, "the configured model and its stand-in, once each"


async def test_without_the_hub_the_default_model_falls_back_to_the_packaged_gemma(
    monkeypatch: pytest.MonkeyPatch, loads: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    # The hub is unreachable here; offline mode makes it fail at once instead of after retries.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    caplog.set_level(logging.WARNING, logger="pipeline.rewrite")
    backend = LocalBackend(DEFAULT_CHAT_MODEL, models_dir=MODELS_DIR)
    await backend.warm_up()
    answering = backend.model
    await backend.aclose()
    assert loads == [DEFAULT_CHAT_MODEL, PACKAGED_GEMMA]
    assert answering == PACKAGED_GEMMA
    [warning] = caplog.records
    assert f"using {PACKAGED_GEMMA} instead" in warning.getMessage()
    assert "\n" not in warning.getMessage()
