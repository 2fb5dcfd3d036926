"""For /animate and Extend, a vision-language model sees the picture it animates: a tiny random
LLaVA built offline locally (also through ClipMaker on the tiny image-to-video pipeline), and
the chat API of an endpoint whose model reads images."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from pipeline.clip import ClipMaker, ModelChoice
from pipeline.encode import last_frame
from pipeline.request import ClipRequest
from pipeline.rewrite import GuardedRewriter, PromptRewriter, RewriterConfig, build_rewriter
from pipeline.rewrite.config import OpenAIApi, VisionChoice
from pipeline.rewrite.local import LocalBackend, LocalModel
from tests.fakellm import FakeLlamaServer, Flavour, Generation, scene_for, serving
from tests.tiny_lms import build_tiny_chat_lm, build_tiny_vlm

IDEA = "the cat turns its head"
GUARDRAIL_REASONS = {
    "empty answer",
    "the answer repeats itself",
    "the answer is a list, not a scene",
    "lost the subject",
}


@pytest.fixture(scope="module")
def vlm_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_vlm(tmp_path_factory.mktemp("models") / "tiny-llava")


@pytest.fixture(scope="module")
def chat_lm_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_chat_lm(tmp_path_factory.mktemp("models") / "tiny-chat")


def picture(colour: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> Image.Image:
    return Image.new("RGB", size, colour)


def vision_tower(model: torch.nn.Module) -> torch.nn.Module:
    return next(module for name, module in model.named_modules() if name.endswith("vision_tower"))


class ForwardInputs:
    """The inputs of every forward call of a module, captured before it runs (a vision
    tower's one positional argument is its pixel values)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.calls: list[dict[str, Any]] = []
        model.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(
        self, _module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self.calls.append({"pixel_values": args[0], **kwargs} if args else dict(kwargs))


@pytest.fixture
async def vlm(vlm_folder: Path) -> AsyncIterator[tuple[GuardedRewriter, LocalModel]]:
    loaded = LocalModel.load(str(vlm_folder), models_dir=vlm_folder.parent)
    backend = LocalBackend(str(vlm_folder), models_dir=vlm_folder.parent, loaded=loaded)
    rewriter = GuardedRewriter(backend, timeout_s=120)
    yield rewriter, loaded
    await rewriter.aclose()


async def test_a_local_vision_model_sees_the_start_picture(
    vlm: tuple[GuardedRewriter, LocalModel],
) -> None:
    rewriter, loaded = vlm
    seen = ForwardInputs(loaded.model)
    eyes = ForwardInputs(vision_tower(loaded.model))
    red = picture((220, 30, 30))
    result = await rewriter.rewrite(IDEA, mode="i2v", image=red)
    assert loaded.sees_images
    expected = loaded.processor(images=[red], return_tensors="pt")["pixel_values"]
    assert torch.equal(eyes.calls[0]["pixel_values"], expected)
    image_token = loaded.model.config.image_token_id
    prompt_ids = seen.calls[0]["input_ids"]
    assert (prompt_ids == image_token).sum() > 0, "the prompt holds the picture's place"
    # Random weights write junk: the guardrails turn it down and the user's words are used.
    assert (result.original, result.rewritten, result.enhanced) == (IDEA, IDEA, False)
    assert result.fallback_reason in GUARDRAIL_REASONS


async def test_text_to_video_on_a_vision_model_needs_no_picture(
    vlm: tuple[GuardedRewriter, LocalModel],
) -> None:
    rewriter, loaded = vlm
    eyes = ForwardInputs(vision_tower(loaded.model))
    result = await rewriter.rewrite("a cat surfing")
    assert result.fallback_reason in GUARDRAIL_REASONS
    assert eyes.calls == []


async def test_what_a_vision_model_saw_is_part_of_the_cache_key(
    vlm_folder: Path, tmp_path: Path
) -> None:
    config = RewriterConfig(
        local_model=str(vlm_folder), models_dir=vlm_folder.parent, cache_dir=tmp_path, device="cpu"
    )
    rewriter = build_rewriter(config)
    red, blue = picture((220, 30, 30)), picture((30, 30, 220))
    first = await rewriter.rewrite(IDEA, mode="i2v", image=red)
    again = await rewriter.rewrite(IDEA, mode="i2v", image=red.copy())
    other = await rewriter.rewrite(IDEA, mode="i2v", image=blue)
    await rewriter.aclose()
    assert (first.cached, again.cached, other.cached) == (False, True, False)


async def test_a_text_only_model_ignores_the_picture(chat_lm_folder: Path, tmp_path: Path) -> None:
    config = RewriterConfig(
        local_model=str(chat_lm_folder),
        models_dir=chat_lm_folder.parent,
        cache_dir=tmp_path,
        device="cpu",
    )
    rewriter = build_rewriter(config)
    first = await rewriter.rewrite(IDEA, mode="i2v", image=picture((220, 30, 30)))
    other = await rewriter.rewrite(IDEA, mode="i2v", image=picture((30, 30, 220)))
    await rewriter.aclose()
    assert first.fallback_reason in GUARDRAIL_REASONS
    assert other.cached, "the picture changed nothing the model saw"


# --- an endpoint's vision model, through the chat API ---


async def motion_writer(_generation: Generation) -> str:
    return scene_for(IDEA)


QWEN_VL_TEMPLATE = "{%- for message in messages %}{{ message.content }}{% endfor %}{# VL #}"


@pytest.fixture
async def make_endpoint() -> AsyncIterator[Any]:
    opened: list[Any] = []
    rewriters: list[PromptRewriter] = []

    async def make(
        *,
        flavour: Flavour = "llama.cpp",
        vision: bool = True,
        api: OpenAIApi = "auto",
        setting: VisionChoice = "auto",
    ) -> tuple[FakeLlamaServer, PromptRewriter]:
        server = FakeLlamaServer(
            motion_writer, flavour=flavour, vision=vision, chat_template=QWEN_VL_TEMPLATE
        )
        context = serving(server)
        opened.append(context)
        await context.__aenter__()
        rewriter = build_rewriter(
            RewriterConfig(
                backend="openai",
                openai_base_url=server.base_url,
                openai_api=api,
                openai_vision=setting,
            )
        )
        rewriters.append(rewriter)
        return server, rewriter

    yield make
    for rewriter in rewriters:
        await rewriter.aclose()
    for context in reversed(opened):
        await context.__aexit__(None, None, None)


def sent_picture(server: FakeLlamaServer) -> Image.Image | None:
    [body] = server.bodies("/v1/chat/completions")
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return None
    [image_part] = [part for part in content if part["type"] == "image_url"]
    [text_part] = [part for part in content if part["type"] == "text"]
    assert text_part["text"] == IDEA
    url = image_part["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


@pytest.mark.parametrize("flavour", ["llama.cpp", "ollama"])
async def test_an_endpoint_that_reads_images_gets_the_picture(
    make_endpoint: Any, flavour: Flavour
) -> None:
    server, rewriter = await make_endpoint(flavour=flavour)
    result = await rewriter.rewrite(IDEA, mode="i2v", image=picture((200, 40, 40), (1920, 1080)))
    assert result.enhanced, result.fallback_reason
    sent = sent_picture(server)
    assert sent is not None
    assert sent.size == (768, 432), "scaled to 768 pixels on its longer side"
    red, green, _blue = sent.getpixel((384, 216))  # type: ignore[misc]
    assert red > 150 > green


@pytest.mark.parametrize(
    ("vision", "flavour", "setting", "sent"),
    [
        (False, "llama.cpp", "auto", False),
        (True, "llama.cpp", "off", False),
        (False, "plain", "auto", False),
        (False, "plain", "on", True),
    ],
)
async def test_the_picture_goes_only_where_it_is_read(
    make_endpoint: Any, vision: bool, flavour: Flavour, setting: VisionChoice, sent: bool
) -> None:
    server, rewriter = await make_endpoint(vision=vision, flavour=flavour, setting=setting)
    await rewriter.rewrite(IDEA, mode="i2v", image=picture((200, 40, 40)))
    assert (sent_picture(server) is not None) == sent


async def test_the_completions_api_never_carries_a_picture(make_endpoint: Any) -> None:
    server, rewriter = await make_endpoint(api="completions", setting="on")
    result = await rewriter.rewrite(IDEA, mode="i2v", image=picture((200, 40, 40)))
    assert result.enhanced
    [body] = server.bodies("/v1/completions")
    assert "image" not in str(body)


# --- the clip path: /animate and Extend hand their start picture to the rewriter ---


async def test_animate_and_extend_show_the_rewriter_their_start_picture(
    vlm: tuple[GuardedRewriter, LocalModel], tiny_models_dir: Path, tmp_path: Path
) -> None:
    rewriter, loaded = vlm
    eyes = ForwardInputs(vision_tower(loaded.model))
    maker = ClipMaker(
        ModelChoice(
            models_dir=tiny_models_dir, t2v_model="tiny", i2v_model="tiny-i2v", device="cpu"
        )
    )
    start = tmp_path / "start.png"
    picture((200, 30, 30), (160, 90)).save(start)
    options: dict[str, Any] = {"model": "tiny-i2v", "max_bytes": 10 * 2**20, "rewriter": rewriter}
    first = await maker.make_clip(
        ClipRequest("the square spins", seed=1),
        output=lambda _request: tmp_path / "1.mp4",
        start_image=start,
        **options,
    )
    await maker.make_clip(
        ClipRequest("it spins on", seed=2),
        output=lambda _request: tmp_path / "2.mp4",
        extend=first.clip.path,
        **options,
    )
    maker.unload()
    with Image.open(start) as opened:
        animated = opened.convert("RGB")
    shown = [
        loaded.processor(images=[image], return_tensors="pt")["pixel_values"]
        for image in (animated, last_frame(first.clip.path))
    ]
    assert len(eyes.calls) == 2
    assert torch.equal(eyes.calls[0]["pixel_values"], shown[0])
    assert torch.equal(eyes.calls[1]["pixel_values"], shown[1])
