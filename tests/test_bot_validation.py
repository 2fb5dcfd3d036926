"""Validation at the door: a request the pipeline would refuse is refused privately before it
is queued, with the pipeline's sentence; control characters are removed so the clip is made.

Discord's client keeps option values within the ranges the bot declares; a modified client or
a script need not, and discord.py does not check them, so these tests send what Discord's
client never would (``client_checks=False``).
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pipeline.encode import read_tags
from tests.bot_harness import Reel
from tests.fakediscord import FakeDiscord, FileUpload, InteractionHandle

# What pipeline.text removes: C0 and C1 controls but tab and newline, DEL, bidi controls.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")

EMPTY = "The prompt is empty; describe the clip you want."


def embed_texts(embed: dict[str, Any]) -> list[str]:
    texts = [embed.get("title", ""), embed.get("description", "")]
    texts += [embed.get("footer", {}).get("text", ""), embed.get("author", {}).get("name", "")]
    for field in embed.get("fields", []):
        texts += [field["name"], field["value"]]
    return texts


async def assert_refused_before_queueing(
    reel: Reel, handle: InteractionHandle, sentence: str
) -> None:
    """The user alone got ``sentence``; no job exists and #general stayed silent."""
    fake = reel.fake
    answer = await handle.response()
    assert handle.ephemeral
    assert answer.content == sentence
    assert await reel.queue.user_jobs(handle.record.user.id, active_only=False) == []
    assert fake.channel_messages(fake.general) == []


async def test_control_characters_are_removed_and_the_clip_is_made(
    running_reel: Reel, tmp_path: Path
) -> None:
    reel = running_reel
    handle, job = await reel.create("a cat\u0000 with\u001b text\u202e", negative="\u0007 ")
    assert (job.request.prompt, job.request.negative_prompt) == ("a cat with text", "")

    clip = await reel.clip_message(job.id)
    texts = embed_texts(clip.embeds[0])
    assert clip.embeds[0]["description"] == "a cat with text"
    assert not [text for text in texts if CONTROL.search(text)]
    (tmp_path / "clip.mp4").write_bytes(clip.attachments[0].data)
    tags = read_tags(tmp_path / "clip.mp4")
    assert tags["title"] == "a cat with text"
    assert not [value for value in tags.values() if CONTROL.search(value)]
    assert not CONTROL.search((await handle.response()).content)


@pytest.mark.parametrize(
    ("options", "sentence"),
    [
        pytest.param({"prompt": ""}, EMPTY, id="empty"),
        pytest.param({"prompt": " \n\t "}, EMPTY, id="whitespace"),
        pytest.param({"prompt": "\u0000\u001b\u202e"}, EMPTY, id="only control characters"),
        pytest.param(
            {"prompt": "x" * 6000},
            "The prompt is 6,000 characters long; the limit is 1,500.",
            id="long prompt",
        ),
        pytest.param(
            {"prompt": "a cat", "negative": "y" * 6000},
            "The negative prompt is 6,000 characters long; the limit is 1,000.",
            id="long negative",
        ),
        pytest.param(
            {"prompt": "a cat", "duration": 30.0},
            "A duration of 30 s is out of range for tiny at 16 fps; choose 0.3 to 5.1 seconds.",
            id="duration",
        ),
        pytest.param(
            {"prompt": "a cat", "seed": -1},
            "Seed -1 is out of range; choose 0 to 4294967295.",
            id="seed",
        ),
        pytest.param(
            {"prompt": "a cat", "aspect": "4:3"},
            "Aspect ratio '4:3' is not supported; choose one of 16:9, 9:16, 1:1.",
            id="aspect",
        ),
        pytest.param(
            {"prompt": "a cat", "model": "/etc"},
            "The model '/etc' cannot make this clip; choose one of"
            " wan2.1-t2v-1.3b, wan2.1-t2v-1.3b-fast, ltx-video, tiny.",
            id="model",
        ),
    ],
)
async def test_create_refuses_what_the_pipeline_would_before_queueing(
    reel: Reel, options: dict[str, Any], sentence: str
) -> None:
    fake = reel.fake
    async with reel.bot_running():
        handle = await fake.invoke("create", options, user=fake.alice, client_checks=False)
        await assert_refused_before_queueing(reel, handle, sentence)


async def test_animate_refuses_an_empty_prompt_without_downloading_the_picture(
    reel: Reel,
) -> None:
    fake = reel.fake
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), "orange").save(buffer, format="PNG")
    upload = FileUpload("sunset.png", buffer.getvalue(), "image/png", 96, 64)
    async with reel.bot_running():
        handle = await fake.invoke(
            "animate", {"prompt": "   "}, attachments={"image": upload}, user=fake.alice
        )
        await assert_refused_before_queueing(reel, handle, EMPTY)
    assert not (reel.settings.data_dir / "uploads").exists()
    downloads = [call for call in fake.server.requests if call.path.startswith("/attachments/")]
    assert downloads == []


@pytest.mark.parametrize(
    ("prompt", "sentence"),
    [
        pytest.param("", EMPTY, id="empty"),
        pytest.param(
            "x" * 6000, "The prompt is 6,000 characters long; the limit is 1,500.", id="long"
        ),
    ],
)
async def test_a_remix_is_refused_before_queueing(
    running_reel: Reel, prompt: str, sentence: str
) -> None:
    reel, fake = running_reel, running_reel.fake
    _, parent = await reel.create("a lighthouse at dusk")
    clip = await reel.clip_message(parent.id)
    await reel.delivered(parent.id)
    public_before = public_messages(fake)

    opened = await fake.click(clip, f"job:{parent.id}:remix", user=fake.alice)
    modal = await opened.modal_opened()
    prompt_id = modal["components"][0]["components"][0]["custom_id"]
    submitted = await fake.submit_modal(opened, {prompt_id: prompt}, client_checks=False)

    answer = await submitted.response()
    assert submitted.ephemeral
    assert answer.content == sentence
    jobs = await reel.queue.user_jobs(fake.alice.id, active_only=False)
    assert [job.id for job in jobs] == [parent.id]
    assert public_messages(fake) == public_before


def public_messages(fake: FakeDiscord) -> list[int]:
    return [message.id for message in fake.channel_messages(fake.general)]
