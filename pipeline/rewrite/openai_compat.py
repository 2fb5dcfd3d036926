"""The openai backend: any OpenAI-compatible chat-completions endpoint over aiohttp.

Ollama, vLLM, llama.cpp's server and OpenAI all answer ``POST {base}/chat/completions``.
Rate limits (429, honouring Retry-After) and server errors (5xx) are retried with backoff;
the API key goes into the Authorization header and nowhere else, never into the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from .base import BackendError, Completion, RewriteMode
from .prompts import chat_messages

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failing request is tried again."""

    attempts: int = 4
    backoff_s: float = 0.5
    max_wait_s: float = 30.0

    def backoff(self, attempt: int) -> float:
        return min(self.backoff_s * 2 ** (attempt - 1), self.max_wait_s)


@dataclass(frozen=True)
class _Retryable:
    error: BackendError
    wait_s: float


class OpenAICompatBackend:
    """Asks a chat-completions endpoint for the rewrite; one session, opened on first use."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str = "",
        request_timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
        max_tokens: int = 300,
        temperature: float = 0.7,
    ) -> None:
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._model = model
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=request_timeout_s)
        self._retry = retry or RetryPolicy()
        self._max_tokens = max_tokens
        self._temperature = temperature
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"OpenAICompatBackend(url={self._url!r}, model={self._model!r})"

    @property
    def name(self) -> str:
        return "openai"

    @property
    def model(self) -> str:
        return self._model

    async def warm_up(self) -> float:
        """Nothing to load here: the endpoint keeps its own model."""
        return 0.0

    async def complete(self, prompt: str, *, mode: RewriteMode, seed: int) -> Completion:
        body = {
            "model": self._model,
            "messages": chat_messages(prompt, mode),
            "temperature": self._temperature,
            "max_tokens": self._max_tokens,
            "seed": seed,
            "stream": False,
        }
        for attempt in range(1, self._retry.attempts + 1):
            outcome = await self._attempt(body, attempt)
            if isinstance(outcome, Completion):
                return outcome
            if attempt == self._retry.attempts:
                raise outcome.error
            log.warning(
                "Rewriting endpoint %s: %s; retrying in %.1f s (attempt %d of %d)",
                self._url,
                outcome.error.reason,
                outcome.wait_s,
                attempt,
                self._retry.attempts,
            )
            await asyncio.sleep(outcome.wait_s)
        raise BackendError("the rewriting endpoint gave no answer")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _attempt(self, body: dict[str, Any], attempt: int) -> Completion | _Retryable:
        try:
            async with self._open_session().post(
                self._url, json=body, headers=self._headers()
            ) as response:
                status, text = response.status, await response.text()
                retry_after = response.headers.get("Retry-After")
        except TimeoutError as exc:
            # A server too slow for one attempt will not be quicker for the next.
            raise BackendError("timeout") from exc
        except aiohttp.ClientError as exc:
            log.debug("Rewriting endpoint %s unreachable: %s", self._url, type(exc).__name__)
            error = BackendError("the rewriting endpoint is unreachable")
            return _Retryable(error, self._retry.backoff(attempt))
        if status == 200:
            return parse_chat_completion(text)
        if status == 429:
            wait = parse_retry_after(retry_after)
            wait = (
                self._retry.backoff(attempt) if wait is None else min(wait, self._retry.max_wait_s)
            )
            return _Retryable(BackendError("the rewriting endpoint is rate-limited"), wait)
        if status >= 500:
            error = BackendError(f"the rewriting endpoint failed (HTTP {status})")
            return _Retryable(error, self._retry.backoff(attempt))
        raise BackendError(f"the rewriting endpoint refused the request (HTTP {status})")

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}


def parse_chat_completion(text: str) -> Completion:
    """The first choice's message; a malformed or empty answer raises ``BackendError``."""
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise BackendError("the rewriting endpoint sent malformed JSON") from exc
    choices = payload.get("choices") if isinstance(payload, dict) else None
    if not choices or not isinstance(choices, list):
        raise BackendError("the rewriting endpoint sent no choices")
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise BackendError("the rewriting endpoint sent no text")
    usage = payload.get("usage")
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    return Completion(content, tokens=tokens if isinstance(tokens, int) else None)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)
