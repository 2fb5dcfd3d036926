"""Both HTTP APIs of an OpenAI-compatible server, against a fake llama.cpp server with a base
model behind it: completions make the rewrite, chat falls back cleanly, auto picks right (also
on llama-cpp-python's server, which does not show the chat template)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from pipeline.rewrite import PromptRewriter, RewriterConfig, build_rewriter, openai_compat
from pipeline.rewrite.config import OpenAIApi
from pipeline.rewrite.openai_compat import OpenAICompatBackend, RetryPolicy
from pipeline.rewrite.rewriter import GuardedRewriter
from tests.fakellm import (
    FakeLlamaServer,
    Flavour,
    Generation,
    Reply,
    chatml,
    scene_for,
    scripted_base_model,
    serving,
)

QWEN_TEMPLATE = (
    "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content"
    " + '<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}{%- endif %}{# Qwen2.5 #}"
)

Serve = Callable[..., Any]
Make = Callable[..., PromptRewriter]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Starts fake servers; each stops when the test ends."""
    stack: list[Any] = []

    async def start(kind: type[FakeLlamaServer] = FakeLlamaServer, **options: Any) -> Any:
        context = serving(kind(**options))
        stack.append(context)
        return await context.__aenter__()

    yield start
    for context in reversed(stack):
        await context.__aexit__(None, None, None)


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    made: list[PromptRewriter] = []

    def build(server: FakeLlamaServer, api: OpenAIApi = "auto", **options: Any) -> PromptRewriter:
        config = RewriterConfig(
            backend="openai", openai_base_url=server.base_url, openai_api=api, **options
        )
        rewriter = build_rewriter(config)
        made.append(rewriter)
        return rewriter

    yield build
    for rewriter in made:
        await rewriter.aclose()


async def test_completions_mode_makes_the_rewrite_with_few_shot_and_stops(
    serve: Serve, make: Make
) -> None:
    server = await serve()
    result = await make(server, "completions", max_new_tokens=123).rewrite("a cat surfing", seed=4)
    assert result.enhanced, result.fallback_reason
    assert result.rewritten == scene_for("a cat surfing")
    [body] = server.bodies("/v1/completions")
    assert body["prompt"].endswith("Short idea: a cat surfing\nCinematic video prompt:")
    assert "\n\n" in body["stop"]
    assert (body["max_tokens"], body["seed"], body["model"]) == (123, 4, "qwen2.5:3b-instruct")
    assert server.bodies("/v1/chat/completions") == []
    assert server.described == 0, "an explicit API needs no question to the server"


async def test_image_to_video_prompts_use_the_motion_examples(serve: Serve, make: Make) -> None:
    server = await serve()
    result = await make(server, "completions").rewrite("the waves crash", mode="i2v")
    assert result.enhanced
    assert server.bodies("/v1/completions")[0]["prompt"].endswith(
        "Short idea: the waves crash\nMotion and camera:"
    )


async def test_chat_mode_on_a_base_model_falls_back_cleanly(serve: Serve, make: Make) -> None:
    server = await serve()
    result = await make(server, "chat").rewrite("a cat surfing")
    assert (result.enhanced, result.rewritten) == (False, "a cat surfing")
    assert result.fallback_reason == "the answer contains chat-template tokens"
    [body] = server.bodies("/v1/chat/completions")
    assert body["messages"][0]["role"] == "system"
    assert body["max_tokens"] == 220


async def test_auto_asks_llama_cpp_once_and_uses_completions_for_a_base_model(
    serve: Serve, make: Make
) -> None:
    server = await serve()
    rewriter = make(server)
    first = await rewriter.rewrite("a cat surfing")
    second = await rewriter.rewrite("a dog running", seed=1)
    assert first.enhanced
    assert second.enhanced
    assert len(server.bodies("/v1/completions")) == 2
    assert server.described == 1


@pytest.mark.parametrize("flavour", ["llama.cpp", "ollama"])
async def test_auto_uses_chat_when_the_model_has_a_template(
    serve: Serve, make: Make, flavour: Flavour
) -> None:
    async def instruct_model(_generation: object) -> str:
        return scene_for("a cat surfing")

    server = await serve(writer=instruct_model, flavour=flavour, chat_template=QWEN_TEMPLATE)
    result = await make(server).rewrite("a cat surfing")
    assert result.enhanced
    assert len(server.bodies("/v1/chat/completions")) == 1
    assert server.bodies("/v1/completions") == []


async def test_auto_asks_ollama_about_the_configured_model(serve: Serve, make: Make) -> None:
    server = await serve(flavour="ollama")
    result = await make(server, openai_model="gemma3:270m").rewrite("a cat surfing")
    assert result.enhanced
    assert server.described == 1
    assert server.bodies("/v1/completions")[0]["model"] == "gemma3:270m"


async def test_auto_on_a_server_that_says_nothing_uses_chat(serve: Serve, make: Make) -> None:
    async def instruct_model(_generation: object) -> str:
        return scene_for("a cat surfing")

    server = await serve(writer=instruct_model, flavour="plain")
    assert (await make(server).rewrite("a cat surfing")).enhanced
    assert len(server.bodies("/v1/chat/completions")) == 1


async def test_auto_switches_to_completions_when_chat_is_refused_for_want_of_a_template(
    serve: Serve, make: Make
) -> None:
    # vLLM's answer when a model has no chat template.
    refusal = {
        "object": "error",
        "message": "As of transformers v4.44, default chat template is no longer allowed, so "
        "you must provide a chat template if the tokenizer does not define one.",
        "type": "BadRequestError",
        "code": 400,
    }
    server = await serve(flavour="plain")
    server.script(Reply(status=400, body=json.dumps(refusal)))
    rewriter = make(server)
    result = await rewriter.rewrite("a cat surfing")
    assert result.enhanced, result.fallback_reason
    assert (await rewriter.rewrite("a dog running")).enhanced
    assert len(server.bodies("/v1/chat/completions")) == 1
    assert len(server.bodies("/v1/completions")) == 2


async def test_a_chat_refusal_for_another_reason_keeps_its_message(
    serve: Serve, make: Make
) -> None:
    server = await serve(flavour="plain")
    error = {"error": {"code": 400, "message": "the request exceeds the available context size"}}
    server.script(Reply(status=400, body=json.dumps(error)))
    result = await make(server).rewrite("a cat surfing")
    assert result.fallback_reason == (
        "the rewriting endpoint refused the request "
        "(HTTP 400: the request exceeds the available context size)"
    )
    assert server.bodies("/v1/completions") == []


async def test_a_server_that_cannot_be_asked_is_asked_again_by_the_next_rewrite() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    backend = OpenAICompatBackend(base_url=closed, model="m", retry=RetryPolicy(attempts=1))
    rewriter = GuardedRewriter(backend, timeout_s=10)
    result = await rewriter.rewrite("a cat surfing")
    await rewriter.aclose()
    assert result.fallback_reason == "the rewriting endpoint is unreachable"
    assert backend.api is None, "an unanswered question is not taken for an answer"


# What the packaged Gemma (f16 GGUF) wrote behind llama-cpp-python 0.3.36's chat API.
LLAMA_CPP_PYTHON_CHAT_JUNK = (
    "Hi there! I'm a film director. I write the brief for my script, which is then translated "
    'into an audio file to be played on my computer.\n<img src="http://www.youtube.com/vimeo.com">'
)


def llama2(messages: list[dict[str, str]]) -> str:
    """llama-cpp-python's "llama-2" chat format (llama_chat_format.format_llama2): what its
    server falls back to for a model without a chat template."""
    system = "".join(message["content"] for message in messages if message["role"] == "system")
    roles = {"user": "<s>[INST]", "assistant": "[/INST]"}
    turns = [message for message in messages if message["role"] in roles]
    text = (f"[INST] <<SYS>>\n{system}\n<</SYS>>" if system else "") + " "
    for index, message in enumerate(turns):
        separator = " " if index % 2 == 0 else "</s>"
        if system and index == 0:
            text += message["content"] + separator
        else:
            text += roles[message["role"]] + message["content"] + " " + separator
    return text + "[/INST]"


class FakeLlamaCppPython(FakeLlamaServer):
    """llama-cpp-python's server as measured: no ``/props`` or ``/api/show``, a token counter
    at ``/extras/tokenize/count`` (with the BOS token), and chat rendered with the model's
    template or, for a model without one, its Llama 2 stand-in; usage counts the prompt."""

    def __init__(self, *, template: bool = False) -> None:
        super().__init__(self._model, flavour="plain", count_tokens=len)
        self.template = template
        self.app.router.add_post("/extras/tokenize/count", self._count)

    @staticmethod
    async def _model(generation: Generation) -> str:
        if "[INST]" in generation.prompt:
            return LLAMA_CPP_PYTHON_CHAT_JUNK
        if "<|im_start|>" in generation.prompt:
            return scene_for("a cat surfing")
        return await scripted_base_model(generation)

    def _tokens(self, text: str) -> int:
        return 1 + self.count_tokens(text)

    async def _count(self, request: web.Request) -> web.Response:
        return web.json_response({"count": self._tokens((await request.json())["input"])})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(("/v1/chat/completions", body))
        prompt = chatml(body["messages"]) if self.template else llama2(body["messages"])
        text = await self._write(body, prompt, ())
        choice = {"index": 0, "message": {"role": "assistant", "content": text}}
        usage = {"prompt_tokens": self._tokens(prompt), "completion_tokens": 1}
        return web.json_response({"object": "chat.completion", "choices": [choice], "usage": usage})


async def test_chat_mode_on_llama_cpp_python_with_a_base_model_falls_back(
    serve: Serve, make: Make
) -> None:
    server = await serve(FakeLlamaCppPython)
    result = await make(server, "chat").rewrite("a cat surfing")
    assert (result.enhanced, result.rewritten) == (False, "a cat surfing")
    assert server.bodies("/v1/completions") == []


async def test_auto_on_llama_cpp_python_finds_a_base_model_by_its_prompt_length(
    serve: Serve, make: Make
) -> None:
    server = await serve(FakeLlamaCppPython)
    rewriter = make(server)
    first = await rewriter.rewrite("a cat surfing")
    second = await rewriter.rewrite("a dog running", seed=1)
    assert first.enhanced, first.fallback_reason
    assert second.rewritten == scene_for("a dog running")
    assert len(server.bodies("/v1/completions")) == 2
    [probe] = server.bodies("/v1/chat/completions")
    assert (probe["messages"], probe["max_tokens"]) == ([{"role": "user", "content": "Hi"}], 1)


async def test_auto_on_llama_cpp_python_uses_chat_when_the_model_has_a_template(
    serve: Serve, make: Make
) -> None:
    server = await serve(FakeLlamaCppPython, template=True)
    result = await make(server).rewrite("a cat surfing")
    assert result.enhanced, result.fallback_reason
    assert len(server.bodies("/v1/chat/completions")) == 2, "the probe, then the rewrite"
    assert server.bodies("/v1/completions") == []


class BusyLlamaCppPython(FakeLlamaCppPython):
    """llama-cpp-python's server busy behind another client's generation: a token count waits
    until ``release`` is set (it serves one request at a time)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts_asked = 0

    async def _count(self, request: web.Request) -> web.Response:
        self.counts_asked += 1
        await self.release.wait()
        return await super()._count(request)


Busy = tuple[BusyLlamaCppPython, OpenAICompatBackend, GuardedRewriter]


@pytest.fixture
async def busy(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Busy]:
    """A busy server, and a rewriter with a 30 s budget whose question may take 0.5 s."""
    monkeypatch.setattr(openai_compat, "QUESTION_TIMEOUT_S", 0.5)
    server = await serve(BusyLlamaCppPython)
    backend = OpenAICompatBackend(base_url=server.base_url, model="m", request_timeout_s=30)
    rewriter = GuardedRewriter(backend, timeout_s=30)
    yield server, backend, rewriter
    await rewriter.aclose()


async def test_a_busy_llama_cpp_python_server_costs_one_rewrite_a_bounded_wait_once(
    busy: Busy,
) -> None:
    server, backend, rewriter = busy
    started = time.perf_counter()
    first = await rewriter.rewrite("a cat surfing")
    first_s = time.perf_counter() - started
    second = await rewriter.rewrite("a dog running", seed=1)
    assert first_s < 10, "the question waits its own limit, not the rewrite's 30 s budget"
    assert server.counts_asked == 1, "a question left unanswered is not asked again at once"
    assert backend.api is None
    # Until it is asked again, the chat API (the default): this base model's junk is turned down.
    assert [len(server.bodies("/v1/chat/completions")), server.bodies("/v1/completions")] == [2, []]
    assert (first.enhanced, second.enhanced) == (False, False)
    assert second.fallback_reason == first.fallback_reason != "timeout"


async def test_a_busy_server_is_asked_again_later_and_then_found_out(
    busy: Busy, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, backend, rewriter = busy
    assert not (await rewriter.rewrite("a cat surfing")).enhanced
    server.release.set()
    monkeypatch.setattr(openai_compat, "ASK_AGAIN_AFTER_S", 0.0)
    later = await rewriter.rewrite("a dog running", seed=1)
    assert server.counts_asked == 2
    assert (later.enhanced, backend.api) == (True, "completions"), later.fallback_reason


class BooleanCountLlamaCppPython(FakeLlamaCppPython):
    """A server whose count says ``true`` and whose usage counts every prompt as 1 token."""

    def _tokens(self, text: str) -> int:
        return 1

    async def _count(self, request: web.Request) -> web.Response:
        return web.json_response({"count": True})


async def test_a_count_of_true_is_no_count(serve: Serve, make: Make) -> None:
    server = await serve(BooleanCountLlamaCppPython)
    rewriter = make(server)
    await rewriter.rewrite("a cat surfing")
    assert isinstance(rewriter, GuardedRewriter)
    assert isinstance(rewriter.backend, OpenAICompatBackend)
    assert rewriter.backend.api == "chat", "not taken for a base model's count of 1"
    assert server.bodies("/v1/completions") == []
