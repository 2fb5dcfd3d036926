"""A fake llama.cpp server: llama-server's HTTP API in front of any text writer.

It answers as llama.cpp's server does: ``GET /props`` shows the chat template (llama.cpp's
own ChatML stand-in when the model has none, as for a base model), ``POST /v1/completions``
continues the prompt and cuts the text at the first stop sequence, and ``POST
/v1/chat/completions`` renders the messages with that template and continues the rendered
text, so a base model behind the chat API writes transcript junk, as a real one does.

The writer is the model: :func:`scripted_base_model` for tests, or a real language model
(the rewriting benchmark runs the packaged Gemma behind it). Scripted :class:`Reply` objects
replace the next answers with faults: a status, raw bytes, headers, a hang.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from aiohttp import web

from pipeline.rewrite.openai_compat import LLAMA_CPP_FALLBACK_TEMPLATE


@dataclass(frozen=True)
class Generation:
    """What the model is asked to continue, as the server received it."""

    prompt: str
    max_tokens: int
    seed: int
    stop: tuple[str, ...] = ()


Writer = Callable[[Generation], Awaitable[str]]
"""The model: the text it writes after ``Generation.prompt`` (the server applies ``stop``)."""


@dataclass
class Reply:
    """One scripted answer: ``body`` (bytes sent as they are) replaces the model's answer."""

    status: int = 200
    body: bytes | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    chunked: bool = False
    """Send ``body`` in pieces with no Content-Length, as a streaming proxy does."""


def chatml(messages: list[dict[str, Any]]) -> str:
    """llama.cpp's stand-in template for models without one, with the generation prompt."""
    turns = "".join(
        f"<|im_start|>{message['role']}\n{_text(message['content'])}<|im_end|>\n"
        for message in messages
    )
    return turns + "<|im_start|>assistant\n"


def _text(content: str | list[dict[str, Any]]) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content)


def scene_for(idea: str) -> str:
    """The scene a good rewriter writes for ``idea``: every word of it, and more."""
    return (
        f"{idea[0].upper()}{idea[1:]}, seen at golden hour on a quiet coast. Warm light glints "
        "on the water. The camera glides slowly alongside at eye level. Soft film grain, "
        "natural colours, cinematic realism."
    )


_LAST_IDEA = re.compile(r"Short idea: (.*)\n[^\n]*:\Z")


async def scripted_base_model(generation: Generation) -> str:
    """A base model in a few lines: it answers a few-shot prompt well and runs on past the
    answer into another example; given a chat transcript it continues the transcript."""
    last = _LAST_IDEA.search(generation.prompt)
    if last is not None:
        return f" {scene_for(last.group(1))}\n\nShort idea: a horse in a field\n"
    # What Gemma 3 270M (base) wrote behind llama.cpp's chat API: the brief, replayed.
    return (
        "You are a film director writing the brief for a text-to-video model.<|im_end|>\n"
        "<|im_start|>user\nRewrite the user's idea as one vivid paragraph.<|im_end|>"
    )


Flavour = Literal["llama.cpp", "ollama", "plain"]


class FakeLlamaServer:
    """llama-server's API; ``requests`` keeps (path, body) of every generation request.

    ``flavour`` says how the server describes its model: ``llama.cpp`` at ``GET /props``,
    ``ollama`` at ``POST /api/show`` (``{{ .Prompt }}`` is Ollama's template for a model that
    has none), ``plain`` not at all (as vLLM).
    """

    def __init__(
        self,
        writer: Writer = scripted_base_model,
        *,
        flavour: Flavour = "llama.cpp",
        chat_template: str = LLAMA_CPP_FALLBACK_TEMPLATE,
        vision: bool = False,
        count_tokens: Callable[[str], int] = lambda text: len(text.split()),
    ) -> None:
        self.writer = writer
        self.count_tokens = count_tokens
        self.chat_template = chat_template
        self.vision = vision
        self.replies: list[Reply] = []
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.described = 0
        self.received = asyncio.Event()
        self.release = asyncio.Event()
        self.base_url = ""
        self.app = web.Application(client_max_size=16 * 1024 * 1024)
        if flavour == "llama.cpp":
            self.app.router.add_get("/props", self._props)
        elif flavour == "ollama":
            self.app.router.add_post("/api/show", self._show)
        self.app.router.add_post("/v1/completions", self._completions)
        self.app.router.add_post("/v1/chat/completions", self._chat)

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [body for asked, body in self.requests if asked == path]

    async def _props(self, request: web.Request) -> web.Response:
        self.described += 1
        return web.json_response(
            {
                "default_generation_settings": {"n_ctx": 4096},
                "total_slots": 1,
                "model_path": "models/model.gguf",
                "modalities": {"vision": self.vision, "audio": False},
                "chat_template": self.chat_template,
                "build_info": "b0-fake",
            }
        )

    async def _show(self, request: web.Request) -> web.Response:
        self.described += 1
        template = (
            "{{ .Prompt }}"
            if self.chat_template == LLAMA_CPP_FALLBACK_TEMPLATE
            else (self.chat_template)
        )
        capabilities = ["completion", "vision"] if self.vision else ["completion"]
        return web.json_response({"template": template, "capabilities": capabilities})

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        reply = await self._record("/v1/completions", body)
        if reply is not None:
            return await _send(request, reply)
        stop = tuple(body.get("stop") or ())
        text = await self._write(body, body["prompt"], stop)
        return self._answer(body, {"index": 0, "text": text, "finish_reason": "stop"}, text)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        reply = await self._record("/v1/chat/completions", body)
        if reply is not None:
            return await _send(request, reply)
        text = await self._write(body, chatml(body["messages"]), ())
        message = {"role": "assistant", "content": text}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return self._answer(body, choice, text)

    async def _record(self, path: str, body: dict[str, Any]) -> Reply | None:
        """Keeps the request; the scripted reply to send instead of the model's, if any."""
        self.requests.append((path, body))
        self.received.set()
        reply = self.replies.pop(0) if self.replies else None
        if reply is not None and reply.hang:
            await self.release.wait()
        if reply is None or (reply.body is None and reply.status == 200):
            return None
        return reply

    async def _write(self, body: dict[str, Any], prompt: str, stop: tuple[str, ...]) -> str:
        generation = Generation(prompt, int(body.get("max_tokens", 128)), int(body["seed"]), stop)
        text = await self.writer(generation)
        cuts = [text.find(marker) for marker in stop if marker in text]
        return text[: min(cuts)] if cuts else text

    def _answer(self, body: dict[str, Any], choice: dict[str, Any], text: str) -> web.Response:
        tokens = self.count_tokens(text)
        payload = {
            "id": "cmpl-fake",
            "object": "text_completion",
            "model": body.get("model", "model.gguf"),
            "choices": [choice],
            "usage": {
                "prompt_tokens": 100,
                "completion_tokens": tokens,
                "total_tokens": 100 + tokens,
            },
        }
        return web.Response(text=json.dumps(payload), content_type="application/json")


async def _send(request: web.Request, reply: Reply) -> web.StreamResponse:
    body = reply.body or b""
    data = body.encode() if isinstance(body, str) else body
    if not reply.chunked:
        return web.Response(
            status=reply.status, body=data, headers=reply.headers, content_type="application/json"
        )
    response = web.StreamResponse(status=reply.status, headers=reply.headers)
    response.content_type = "application/json"
    response.enable_chunked_encoding()
    await response.prepare(request)
    for start in range(0, len(data), 64 * 1024):
        try:
            await response.write(data[start : start + 64 * 1024])
        except ConnectionResetError:
            break  # the client stopped reading, as it should past its size cap
    return response


@asynccontextmanager
async def listening(app: web.Application) -> AsyncIterator[str]:
    """``app`` on 127.0.0.1 at a free port; yields its OpenAI-style base URL (``.../v1``)."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/v1"
    finally:
        await runner.cleanup()


class Endpoint(Protocol):
    """A fake server: its app, the base URL it is reached at, the event that ends a hang."""

    app: web.Application
    base_url: str
    release: asyncio.Event


E = TypeVar("E", bound=Endpoint)


@asynccontextmanager
async def serving(server: E) -> AsyncIterator[E]:
    """``server`` listening; a request left hanging is released when it stops."""
    async with listening(server.app) as base_url:
        server.base_url = base_url
        try:
            yield server
        finally:
            server.release.set()
