"""``reelbot rewrite`` prints both prompts, and the reason when the original is kept."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from PIL import Image

from bot.cli import main
from pipeline.encode import read_tags
from tests.conftest import ChatReply, FakeChatServer


@pytest.fixture(autouse=True)
def data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REELBOT_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch, chat_server: FakeChatServer) -> FakeChatServer:
    monkeypatch.setenv("REELBOT_REWRITER", "openai")
    monkeypatch.setenv("REELBOT_OPENAI_BASE_URL", chat_server.base_url)
    return chat_server


async def reelbot(*argv: str) -> int:
    """Runs the command in a thread, as a shell would, while the test's server keeps serving."""
    return await asyncio.to_thread(main, list(argv))


async def test_both_prompts_are_printed(
    endpoint: FakeChatServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await reelbot("rewrite", "a cat surfing", "--seed", "9") == 0
    out = capsys.readouterr().out
    assert "Original:  a cat surfing\n" in out
    assert "Rewritten: A cat surfing, seen at golden hour" in out
    assert "Rewriter:  openai, qwen2.5:3b-instruct" in out
    assert endpoint.requests[0]["seed"] == 9


async def test_a_second_run_comes_from_the_cache(
    endpoint: FakeChatServer, capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    await reelbot("rewrite", "a cat surfing")
    await reelbot("rewrite", "a cat surfing")
    assert "(from the cache)" in capsys.readouterr().out
    assert len(endpoint.requests) == 1
    assert list((data_dir / "cache" / "rewrites").rglob("*.json"))


async def test_the_reason_is_printed_when_the_original_is_kept(
    endpoint: FakeChatServer, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint.script(ChatReply(content="A man cycles through green hills at noon."))
    await reelbot("rewrite", "a cat surfing", "--mode", "i2v")
    out = capsys.readouterr().out
    assert "Rewritten: a cat surfing\n" in out
    assert "Not rewritten (lost the subject): the original prompt is used." in out
    assert "image-to-video" in endpoint.requests[0]["messages"][0]["content"]


async def test_the_timeout_can_be_set_for_one_run(
    endpoint: FakeChatServer, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint.script(ChatReply(hang=True))
    await reelbot("rewrite", "a cat surfing", "--timeout", "0.2")
    assert "Not rewritten (timeout)" in capsys.readouterr().out


def test_the_off_backend_passes_the_prompt_through(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rewrite", "--backend", "off", "a cat surfing"]) == 0
    out = capsys.readouterr().out
    assert "Rewritten: a cat surfing\n" in out
    assert "Not rewritten (disabled)" in out


def test_an_empty_prompt_is_one_sentence_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rewrite", "  "]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert "empty" in captured.err


async def test_generate_with_enhance_renders_the_rewritten_prompt(
    endpoint: FakeChatServer,
    tiny_models_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("REELBOT_DATA_DIR", str(tiny_models_dir.parent))
    argv = ["generate", "a cat surfing", "--model", "tiny", "--seed", "5", "--enhance"]
    assert await reelbot(*argv, "--frames", "5", "-o", "clip.mp4") == 0
    out = capsys.readouterr().out
    assert "Rewritten: A cat surfing, seen at golden hour" in out
    assert endpoint.requests[0]["seed"] == 5
    tags = read_tags(tmp_path / "clip.mp4")
    assert tags["title"] == "a cat surfing"
    assert "Rewritten prompt: A cat surfing, seen at golden hour" in tags["comment"]


async def test_a_picture_goes_to_a_model_that_reads_images(
    endpoint: FakeChatServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("REELBOT_OPENAI_VISION", "on")
    Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "start.png")
    argv = ("rewrite", "the waves crash", "--mode", "i2v", "--image", "start.png")
    assert await reelbot(*argv) == 0
    assert "Rewritten: The waves crash, seen at golden hour" in capsys.readouterr().out
    [image_part, text_part] = endpoint.requests[0]["messages"][-1]["content"]
    assert image_part["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert text_part == {"type": "text", "text": "the waves crash"}


def test_an_unreadable_picture_is_one_sentence_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("not a picture")
    assert main(["rewrite", "the waves crash", "--image", "notes.txt"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("Cannot read the picture notes.txt:")
    assert captured.err.count("\n") == 1
