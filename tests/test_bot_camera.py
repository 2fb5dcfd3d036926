"""Camera and motion through the real bot: /create and /animate take them, the model gets them
after the rewrite, the clip's embed shows them, Retry and Remix keep them, and a value
Discord's client would never send is refused privately before anything is queued."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from jobqueue.models import Job, JobKind
from pipeline.camera import CAMERA_MOVES, CAMERA_PHRASES, MOTION_PHRASES
from pipeline.encode import read_tags
from pipeline.rewrite import RewriterConfig
from tests.bot_harness import Reel
from tests.conftest import FakeChatServer, default_scene
from tests.fakediscord import FileUpload, InteractionHandle, Message
from tests.test_bot_validation import assert_refused_before_queueing


def fields(message: Message) -> dict[str, str]:
    return {field["name"]: field["value"] for field in message.embeds[0].get("fields", [])}


@pytest.fixture
async def rewriting_reel(reel: Reel, chat_server: FakeChatServer) -> AsyncIterator[Reel]:
    """The bot and a worker whose rewriter is a chat model behind a fake endpoint."""
    rewriter = RewriterConfig(
        backend="openai", openai_base_url=chat_server.base_url, openai_model="scene-writer"
    )
    async with reel.bot_running(), reel.worker_running(rewriter=rewriter):
        yield reel


async def test_the_model_gets_the_move_after_the_rewrite_and_the_embed_shows_it(
    rewriting_reel: Reel, chat_server: FakeChatServer, tmp_path: Path
) -> None:
    reel = rewriting_reel
    _, job = await reel.create("a paper boat", camera="zoom in", motion="high", enhance=True)
    assert (job.request.camera, job.request.motion) == ("zoom in", "high")
    clip = await reel.clip_message(job.id)

    # The rewriter was told the move; whatever it wrote, the model got the move after it.
    assert chat_server.requests[0]["messages"][-1]["content"] == (
        "a paper boat (camera: zoom in; motion: high)"
    )
    scene = default_scene("a paper boat (camera: zoom in; motion: high)")
    model_prompt = f"{scene} {CAMERA_PHRASES['zoom in']} {MOTION_PHRASES['high']}"
    done = await reel.delivered(job.id)
    assert done.rewritten_prompt == model_prompt
    (tmp_path / "clip.mp4").write_bytes(clip.attachments[0].data)
    assert f"Rewritten prompt: {model_prompt}" in read_tags(tmp_path / "clip.mp4")["comment"]

    shown = fields(clip)
    assert (shown["Camera"], shown["Motion"]) == ("zoom in", "high")
    assert shown["Rewritten prompt"].endswith(
        "The camera slowly zooms in. Fast, dynamic, energetic motion."
    )


async def test_a_clip_without_a_move_shows_none(running_reel: Reel) -> None:
    _, job = await running_reel.create("a paper boat")
    shown = fields(await running_reel.clip_message(job.id))
    assert "Camera" not in shown
    assert "Motion" not in shown


def picture() -> FileUpload:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), "orange").save(buffer, format="PNG")
    return FileUpload("sunset.png", buffer.getvalue(), "image/png", 96, 64)


async def test_animate_takes_a_move_and_retry_keeps_it(running_reel: Reel) -> None:
    fake = running_reel.fake
    handle = await fake.invoke(
        "animate",
        {"prompt": "the sun goes down", "camera": "tilt down", "motion": "low"},
        attachments={"image": picture()},
        user=fake.alice,
    )
    job = await running_reel.job_of(handle)
    assert (job.kind, job.request.camera, job.request.motion) == (
        JobKind.ANIMATE,
        "tilt down",
        "low",
    )
    clip = await running_reel.clip_message(job.id)
    assert (fields(clip)["Camera"], fields(clip)["Motion"]) == ("tilt down", "low")

    retried = await running_reel.job_of(
        await fake.click(clip, f"job:{job.id}:retry", user=fake.bob)
    )
    assert (retried.request.camera, retried.request.motion) == ("tilt down", "low")
    assert (fields(await running_reel.clip_message(retried.id))["Camera"]) == "tilt down"


async def test_every_move_is_offered_as_a_choice(running_reel: Reel) -> None:
    bot = running_reel.bot
    assert bot is not None
    for name in ("create", "animate"):
        command = bot.tree.get_command(name)
        assert command is not None
        options = {parameter.name: parameter for parameter in command.parameters}  # type: ignore[union-attr]
        assert [choice.value for choice in options["camera"].choices] == list(CAMERA_MOVES)
        assert [choice.value for choice in options["motion"].choices] == ["low", "high"]


@pytest.mark.parametrize(
    ("options", "sentence"),
    [
        pytest.param(
            {"camera": "barrel roll"},
            "Camera move 'barrel roll' is not one reelbot knows; choose one of "
            + ", ".join(CAMERA_MOVES)
            + ".",
            id="camera",
        ),
        pytest.param(
            {"motion": "ludicrous"},
            "Motion 'ludicrous' is not known; choose low or high.",
            id="motion",
        ),
    ],
)
async def test_a_forged_value_is_refused_privately_and_nothing_is_queued(
    running_reel: Reel, options: dict[str, Any], sentence: str
) -> None:
    fake = running_reel.fake
    handle = await fake.invoke(
        "create", {"prompt": "a cat", **options}, user=fake.alice, client_checks=False
    )
    await assert_refused_before_queueing(running_reel, handle, sentence)


async def remix(
    reel: Reel, clip: Message, parent: Job, camera: list[str], *, client_checks: bool = True
) -> InteractionHandle:
    """Open Remix on ``clip`` and submit it with ``camera`` chosen in its camera menu."""
    opened = await reel.fake.click(clip, f"job:{parent.id}:remix", user=reel.fake.alice)
    modal = await opened.modal_opened()
    (menu,) = [row["component"] for row in modal["components"] if row["type"] == 18]
    return await reel.fake.submit_modal(
        opened, {menu["custom_id"]: camera}, client_checks=client_checks
    )


async def test_remix_offers_the_parents_move_and_keeps_the_motion(running_reel: Reel) -> None:
    reel = running_reel
    _, parent = await reel.create("a lighthouse", camera="orbit", motion="low")
    clip = await reel.clip_message(parent.id)

    opened = await reel.fake.click(clip, f"job:{parent.id}:remix", user=reel.fake.alice)
    modal = await opened.modal_opened()
    (label,) = [row for row in modal["components"] if row["type"] == 18]
    assert label["label"] == "Camera move"
    selected = [
        option["value"] for option in label["component"]["options"] if option.get("default")
    ]
    assert selected == ["orbit"]
    submitted = await reel.fake.submit_modal(
        opened, {label["component"]["custom_id"]: ["dolly out"]}
    )
    child = await reel.job_of(submitted)
    assert (child.kind, child.request.camera, child.request.motion) == (
        JobKind.REMIX,
        "dolly out",
        "low",
    )

    # The model's choice clears the move.
    cleared = await reel.job_of(await remix(reel, clip, parent, ["model's choice"]))
    assert (cleared.request.camera, cleared.request.motion) == (None, "low")


async def test_a_forged_remix_move_is_refused_privately(running_reel: Reel) -> None:
    reel = running_reel
    _, parent = await reel.create("a lighthouse")
    clip = await reel.clip_message(parent.id)
    handle = await remix(reel, clip, parent, ["barrel roll"], client_checks=False)
    answer = await handle.response()
    assert handle.ephemeral
    assert answer.content.startswith("Camera move 'barrel roll' is not one reelbot knows")
    assert [
        job.id for job in await reel.queue.user_jobs(reel.fake.alice.id, active_only=False)
    ] == [parent.id]
