"""The openai backend: any OpenAI-compatible endpoint over aiohttp, through either of its APIs.

Instruction-tuned models answer ``POST {base}/chat/completions`` with a director's brief as
the system message. Base models (the packaged Gemma 3 270M served by llama.cpp, a ``-text``
model in Ollama) have no chat template: a server applies a generic one and the model writes
transcript junk, so they get ``POST {base}/completions`` with few-shot examples and stop
sequences instead. ``api="auto"`` asks the server which it is: llama.cpp's ``/props`` shows
the chat template (llama.cpp's own ChatML stand-in when the model has none) and Ollama's
``/api/show`` the model's template. llama-cpp-python's server (``python -m llama_cpp.server``)
says neither, but it counts tokens: a one-token chat request whose prompt is as long as its Llama
2 stand-in for a message gives a base model away. Any other server gets the chat API, and a chat
request refused for want of a chat template (vLLM) switches to completions. A question is given
at most ``QUESTION_TIMEOUT_S`` (or the rewrite's budget, if shorter); one left unanswered (a busy
server) leaves the chat API in use and is not asked again for ``ASK_AGAIN_AFTER_S``.

Rate limits (429, honouring Retry-After) and server errors (5xx) are retried with backoff
within the rewrite's time budget; a wait longer than the time left fails at once. Bodies are
read up to a size cap and decoded leniently; anything unparsable is a ``BackendError``. The
API key goes into the Authorization header and nowhere else, never into the log.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Literal

import aiohttp

from pipeline.text import clean_text

from .base import BackendError, Completion, RewriteMode
from .config import OpenAIApi, VisionChoice
from .prompts import chat_messages, cut_at_markers, end_markers, few_shot

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
"""A rewrite is a few kilobytes; a larger answer is a broken or hostile server."""
PROBE_TIMEOUT_S = 5.0
QUESTION_TIMEOUT_S = 10.0
"""How long asking which API the server speaks may take, all its requests together."""
ASK_AGAIN_AFTER_S = 300.0
"""How long a server that left the question unanswered is not asked again."""
IMAGE_MAX_SIDE = 768
_MESSAGE_CHARS = 200

# What llama.cpp's server uses when a model has no chat template of its own (common/chat.cpp).
LLAMA_CPP_FALLBACK_TEMPLATE = (
    "{%- for message in messages -%}\n"
    "  {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "  {{- '<|im_start|>assistant\\n' -}}\n"
    "{%- endif -%}"
)
# What Ollama uses for a model imported without a template.
_OLLAMA_RAW_TEMPLATES = ("", "{{ .Prompt }}")
# How llama-cpp-python's server renders one user message when the model has no chat template
# (llama_chat_format.format_llama2, its fallback "llama-2" chat format).
_PROBE_MESSAGE = "Hi"
LLAMA_CPP_PYTHON_FALLBACK_PROMPT = f" <s>[INST]{_PROBE_MESSAGE}  [/INST]"

Api = Literal["chat", "completions"]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failing request is tried again."""

    attempts: int = 4
    backoff_s: float = 0.5
    max_wait_s: float = 30.0

    def backoff(self, attempt: int) -> float:
        return min(self.backoff_s * 2 ** (attempt - 1), self.max_wait_s)


@dataclass(frozen=True)
class ServerTraits:
    """Which API the model behind the endpoint wants, and whether it reads images."""

    api: Api
    vision: bool
    source: str


class RefusedRequest(BackendError):
    """A 4xx answer; ``message`` is what the server said about it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason)
        self.message = message


@dataclass(frozen=True)
class _Retryable:
    error: BackendError
    wait_s: float


@dataclass(frozen=True)
class _Request:
    url: str
    body: dict[str, Any]
    api: Api
    markers: tuple[str, ...]


class _ProbeFailed(Exception):
    """The server could not be reached to ask what it serves; ask again next time."""


def _is_count(value: object) -> bool:
    """A token count in a JSON answer (``True`` is an int to Python, not to JSON)."""
    return isinstance(value, int) and not isinstance(value, bool)


class OpenAICompatBackend:
    """Asks an OpenAI-compatible endpoint for the rewrite; one session, opened on first use."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str = "",
        api: OpenAIApi = "auto",
        vision: VisionChoice = "auto",
        request_timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
        max_tokens: int = 220,
        temperature: float = 0.7,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._model = model
        self._api_key = api_key
        self._api = api
        self._vision = vision
        self._budget_s = request_timeout_s
        self._retry = retry or RetryPolicy()
        self._max_tokens = max_tokens
        self._temperature = temperature
        self._session: aiohttp.ClientSession | None = None
        self._traits: ServerTraits | None = None
        self._unanswered_at: float | None = None

    def __repr__(self) -> str:
        return f"OpenAICompatBackend(url={self._base!r}, model={self._model!r})"

    @property
    def name(self) -> str:
        return "openai"

    @property
    def model(self) -> str:
        return self._model

    @property
    def api(self) -> Api | None:
        """The API in use; ``None`` until ``warm_up`` has asked the server."""
        return self._traits.api if self._traits is not None else None

    @property
    def sees_images(self) -> bool:
        return self._traits is not None and self._traits.api == "chat" and self._traits.vision

    async def warm_up(self) -> float:
        """Find out once which API to use (and whether the model reads images).

        Takes at most ``QUESTION_TIMEOUT_S`` (or the budget); a question left unanswered is
        not asked again for ``ASK_AGAIN_AFTER_S``, and until then the settings decide.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        if self._traits is not None or self._waiting_to_ask_again(started):
            return 0.0
        patience = min(QUESTION_TIMEOUT_S, self._budget_s)
        try:
            async with asyncio.timeout(patience):
                traits = await self._server_traits()
        except TimeoutError:
            self._unanswered_at = started
            log.warning(
                "Rewriting endpoint %s did not say within %.0f s which API it serves (busy?); "
                "using the %s API, asking again in %.0f min",
                self._base,
                patience,
                self._configured_traits().api,
                ASK_AGAIN_AFTER_S / 60,
            )
            return loop.time() - started
        except _ProbeFailed:
            # Unreachable now: this rewrite goes by the settings alone and fails on its own.
            return 0.0
        self._traits = traits
        log.info(
            "Rewriting endpoint %s: %s API%s (%s)",
            self._base,
            traits.api,
            ", with images" if self.sees_images else "",
            traits.source,
        )
        return loop.time() - started

    def _waiting_to_ask_again(self, now: float) -> bool:
        return self._unanswered_at is not None and now - self._unanswered_at < ASK_AGAIN_AFTER_S

    async def complete(
        self, prompt: str, *, mode: RewriteMode, seed: int, image: Image.Image | None = None
    ) -> Completion:
        deadline = asyncio.get_running_loop().time() + self._budget_s
        traits = self._traits or self._configured_traits()
        request = await self._request(prompt, mode, seed, image if self.sees_images else None)
        try:
            return await self._send(request, deadline)
        except RefusedRequest as refused:
            if not self._needs_completions(refused, traits):
                raise
        log.warning(
            "Rewriting endpoint %s has no chat template for %s; using its completions API",
            self._base,
            self._model,
        )
        self._traits = replace(traits, api="completions", source="the chat API was refused")
        return await self._send(await self._request(prompt, mode, seed, None), deadline)

    async def complete_text(
        self, prompt: str, *, stop: tuple[str, ...], max_tokens: int, seed: int
    ) -> Completion:
        deadline = asyncio.get_running_loop().time() + self._budget_s
        traits = self._traits or self._configured_traits()
        body = {
            "model": self._model,
            "temperature": self._temperature,
            "max_tokens": max_tokens,
            "seed": seed,
            "stream": False,
            "stop": list(stop),
        }
        if traits.api == "completions":
            url, body = self._base + "/completions", {**body, "prompt": prompt}
        else:
            url = self._base + "/chat/completions"
            body = {**body, "messages": [{"role": "user", "content": prompt}]}
        return await self._send(_Request(url, body, traits.api, stop), deadline)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- what to send ---

    def _configured_traits(self) -> ServerTraits:
        api: Api = "completions" if self._api == "completions" else "chat"
        return ServerTraits(api, self._vision == "on", "settings")

    def _needs_completions(self, refused: RefusedRequest, traits: ServerTraits) -> bool:
        return (
            self._api == "auto"
            and traits.api == "chat"
            and "chat template" in refused.message.lower().replace("_", " ")
        )

    async def _request(
        self, prompt: str, mode: RewriteMode, seed: int, image: Image.Image | None
    ) -> _Request:
        common = {
            "model": self._model,
            "temperature": self._temperature,
            "max_tokens": self._max_tokens,
            "seed": seed,
            "stream": False,
        }
        traits = self._traits or self._configured_traits()
        if traits.api == "completions":
            markers = end_markers(mode)
            body = {**common, "prompt": few_shot(prompt, mode), "stop": list(markers)}
            return _Request(self._base + "/completions", body, "completions", markers)
        image_part = None
        if image is not None:
            url = await asyncio.to_thread(image_data_url, image)
            image_part = {"type": "image_url", "image_url": {"url": url}}
        body = {**common, "messages": chat_messages(prompt, mode, image_part=image_part)}
        return _Request(self._base + "/chat/completions", body, "chat", ())

    # --- sending, with retries inside the time budget ---

    async def _send(self, request: _Request, deadline: float) -> Completion:
        loop = asyncio.get_running_loop()
        for attempt in range(1, self._retry.attempts + 1):
            outcome = await self._attempt(request, attempt, deadline)
            if isinstance(outcome, Completion):
                return outcome
            time_left = deadline - loop.time()
            if attempt == self._retry.attempts or outcome.wait_s >= time_left:
                raise outcome.error
            log.warning(
                "Rewriting endpoint %s: %s; retrying in %.1f s (attempt %d of %d)",
                request.url,
                outcome.error.reason,
                outcome.wait_s,
                attempt,
                self._retry.attempts,
            )
            await asyncio.sleep(outcome.wait_s)
        raise BackendError("the rewriting endpoint gave no answer")

    async def _attempt(
        self, request: _Request, attempt: int, deadline: float
    ) -> Completion | _Retryable:
        time_left = max(deadline - asyncio.get_running_loop().time(), 0.001)
        try:
            async with self._open_session().post(
                request.url,
                json=request.body,
                headers=self._headers(),
                timeout=aiohttp.ClientTimeout(total=time_left),
            ) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                text = await read_body(response)
        except TimeoutError as exc:
            # A server too slow for one attempt will not be quicker for the next.
            raise BackendError("timeout") from exc
        except aiohttp.ClientError as exc:
            log.debug("Rewriting endpoint %s unreachable: %s", request.url, type(exc).__name__)
            error = BackendError("the rewriting endpoint is unreachable")
            return _Retryable(error, self._retry.backoff(attempt))
        if status == 200:
            completion = parse_completion(text, api=request.api)
            return Completion(cut_at_markers(completion.text, request.markers), completion.tokens)
        return self._failure(status, text, retry_after, attempt)

    def _failure(self, status: int, text: str, retry_after: str | None, attempt: int) -> _Retryable:
        message = server_message(text, secret=self._api_key)
        said = f": {message}" if message else ""
        if status == 429:
            error = BackendError("the rewriting endpoint is rate-limited")
            wait = parse_retry_after(retry_after)
            if wait is None:
                return _Retryable(error, self._retry.backoff(attempt))
            if wait > self._retry.max_wait_s:
                raise error
            return _Retryable(error, wait)
        if status >= 500:
            error = BackendError(f"the rewriting endpoint failed (HTTP {status}{said})")
            return _Retryable(error, self._retry.backoff(attempt))
        reason = f"the rewriting endpoint refused the request (HTTP {status}{said})"
        raise RefusedRequest(reason, message)

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    # --- asking the server what it serves ---

    async def _server_traits(self) -> ServerTraits:
        # Images go only through the chat API: with completions there is nothing to ask.
        if self._api == "completions" or (self._api == "chat" and self._vision != "auto"):
            return self._configured_traits()
        found = (
            await self._ask_llama_cpp()
            or await self._ask_ollama()
            or await self._ask_llama_cpp_python()
        )
        if found is None:
            found = ServerTraits("chat", False, "no server said which it is; the default")
        api = found.api if self._api == "auto" else self._configured_traits().api
        vision = found.vision if self._vision == "auto" else self._vision == "on"
        return ServerTraits(api, vision, found.source)

    def _root(self) -> str:
        """The server's address without the OpenAI API's ``/v1``."""
        return self._base.removesuffix("/v1")

    async def _ask_llama_cpp(self) -> ServerTraits | None:
        props = await self._probe("GET", self._root() + "/props")
        if props is None or not isinstance(props.get("chat_template"), str):
            return None
        template = "".join(props["chat_template"].split())
        has_template = template not in ("", "".join(LLAMA_CPP_FALLBACK_TEMPLATE.split()))
        modalities = props.get("modalities")
        vision = isinstance(modalities, dict) and modalities.get("vision") is True
        return ServerTraits(
            "chat" if has_template else "completions",
            vision,
            "llama.cpp: " + ("the model's chat template" if has_template else "no chat template"),
        )

    async def _ask_ollama(self) -> ServerTraits | None:
        shown = await self._probe("POST", self._root() + "/api/show", {"model": self._model})
        if shown is None or not isinstance(shown.get("template", ""), str):
            return None
        if "template" not in shown and "capabilities" not in shown:
            return None
        has_template = shown.get("template", "").strip() not in _OLLAMA_RAW_TEMPLATES
        capabilities = shown.get("capabilities")
        vision = isinstance(capabilities, list) and "vision" in capabilities
        return ServerTraits(
            "chat" if has_template else "completions",
            vision,
            "Ollama: " + ("the model's template" if has_template else "no template"),
        )

    async def _ask_llama_cpp_python(self) -> ServerTraits | None:
        # It serves one request at a time: a question waits behind any generation under way,
        # up to the question's own time limit (see warm_up).
        patience = QUESTION_TIMEOUT_S
        counted = await self._probe(
            "POST",
            self._root() + "/extras/tokenize/count",
            {"model": self._model, "input": LLAMA_CPP_PYTHON_FALLBACK_PROMPT},
            timeout_s=patience,
        )
        if counted is None or not _is_count(counted.get("count")):
            return None
        # It has no endpoint that shows the template, so see how long its rendering is.
        answer = await self._probe(
            "POST",
            self._base + "/chat/completions",
            {
                "model": self._model,
                "messages": [{"role": "user", "content": _PROBE_MESSAGE}],
                "max_tokens": 1,
                "temperature": 0,
                "seed": 0,
            },
            timeout_s=patience,
        )
        usage = answer.get("usage") if answer is not None else None
        prompt_tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        if not _is_count(prompt_tokens):
            return None
        fallback = prompt_tokens == counted["count"]
        return ServerTraits(
            "completions" if fallback else "chat",
            False,
            "llama-cpp-python: "
            + ("no chat template (its Llama 2 stand-in)" if fallback else "a chat template"),
        )

    async def _probe(
        self,
        method: str,
        url: str,
        body: dict[str, Any] | None = None,
        *,
        timeout_s: float = PROBE_TIMEOUT_S,
    ) -> dict[str, Any] | None:
        """The JSON object at ``url``, or ``None`` when the server does not offer it."""
        try:
            async with self._open_session().request(
                method,
                url,
                json=body,
                headers=self._headers(),
                timeout=aiohttp.ClientTimeout(total=min(timeout_s, self._budget_s)),
            ) as response:
                if response.status != 200:
                    return None
                text = await read_body(response)
        except TimeoutError:
            raise
        except aiohttp.ClientConnectionError as exc:
            raise _ProbeFailed from exc
        except (aiohttp.ClientError, BackendError):
            return None
        try:
            payload = json.loads(text)
        except (ValueError, RecursionError):
            return None
        return payload if isinstance(payload, dict) else None


async def read_body(response: aiohttp.ClientResponse) -> str:
    """The body as text, refusing more than ``MAX_BODY_BYTES``; bad UTF-8 becomes U+FFFD."""
    if response.content_length is not None and response.content_length > MAX_BODY_BYTES:
        raise BackendError("the rewriting endpoint sent too much")
    data = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise BackendError("the rewriting endpoint sent too much")
    return data.decode("utf-8", errors="replace")


def parse_completion(text: str, *, api: Api) -> Completion:
    """The first choice's text; a malformed or empty answer raises ``BackendError``."""
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BackendError("the rewriting endpoint sent malformed JSON") from exc
    choices = payload.get("choices") if isinstance(payload, dict) else None
    if not choices or not isinstance(choices, list):
        raise BackendError("the rewriting endpoint sent no choices")
    choice = choices[0] if isinstance(choices[0], dict) else {}
    if api == "completions":
        content = choice.get("text")
    else:
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise BackendError("the rewriting endpoint sent no text")
    usage = payload.get("usage")
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    return Completion(content, tokens=tokens if isinstance(tokens, int) else None)


def server_message(text: str, *, secret: str = "") -> str:
    """What an error answer says, in one short line: its JSON ``error`` message or its text.

    HTML error pages say nothing useful; ``secret`` (the API key) is never repeated.
    """
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        payload = None
    if isinstance(payload, dict):
        error = payload.get("error")
        found = error.get("message") if isinstance(error, dict) else error
        if not isinstance(found, str):
            found = payload.get("message") or payload.get("detail")
        message = found if isinstance(found, str) else ""
    else:
        message = "" if payload is not None or text.lstrip().startswith("<") else text
    message = " ".join(clean_text(message).split())
    if secret:
        message = message.replace(secret, "***")
    if len(message) > _MESSAGE_CHARS:
        message = message[: _MESSAGE_CHARS - 1].rstrip() + "…"
    return message


def image_data_url(image: Image.Image) -> str:
    """``image`` as a JPEG data URL, at most ``IMAGE_MAX_SIDE`` pixels on its longer side."""
    picture = image.convert("RGB")
    picture.thumbnail((IMAGE_MAX_SIDE, IMAGE_MAX_SIDE))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return None if math.isnan(seconds) else max(seconds, 0.0)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)
