"""Live previews through the real bot against the fake Discord (rate limits on): while a clip
renders, its status message's attachment is the clip forming, replaced as it changes; the
finished clip takes its place and no preview is left anywhere. In a busy channel, where jobs
have no status message, the requester's private reply shows it instead."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from bot.previews import PREVIEW_NAME
from jobqueue.clipfiles import preview_path
from jobqueue.models import Job, JobKind, JobRequest
from pipeline.preview import PreviewOptions
from tests.bot_harness import Reel
from tests.broker_harness import BOTH_MODES
from tests.fakediscord import Channel, InteractionHandle, Message

STEPS, FRAMES = 50, 81
"""With ``hd``, the largest clip the tiny model makes: seconds of rendering even on a fast
machine, so a few progress edits."""
EDIT_EVERY_S = 1.0
"""Progress edits paced so the channel's edit budget (three updates in five seconds) spans
the render rather than its first second."""
PREVIEWS = PreviewOptions(every_steps=2, min_seconds=0.2, width=96)


async def submit(reel: Reel, channel: Channel | None = None) -> Job:
    """A render long enough for several previews, by alice in ``channel`` (#general)."""
    fake = reel.fake
    return await reel.queue.submit(
        JobKind.CREATE,
        JobRequest(prompt="a lighthouse at dusk", seed=3, steps=STEPS, frames=FRAMES, hd=True),
        user_id=fake.alice.id,
        guild_id=fake.guild.id,
        channel_id=(channel or fake.general).id,
    )


def previews_shown(message: Message) -> list[dict[str, Any]]:
    """Each preview the message showed, in order (its attachment payloads, one per upload)."""
    versions = [*message.revisions, {"attachments": [a.payload() for a in message.attachments]}]
    seen: list[dict[str, Any]] = []
    for version in versions:
        for attachment in version["attachments"]:
            if attachment["filename"] == PREVIEW_NAME and attachment not in seen:
                seen.append(attachment)
    return seen


@pytest.mark.parametrize("reel_mode", BOTH_MODES, indirect=True)
async def test_the_status_message_shows_the_clip_forming_then_the_clip(reel: Reel) -> None:
    fake = reel.fake
    reel.settings = reel.settings.model_copy(update={"progress_edit_seconds": EDIT_EVERY_S})
    async with reel.bot_running(), reel.worker_running(preview=PREVIEWS):
        job = await submit(reel)
        clip = await reel.clip_message(job.id)
        done = await reel.delivered(job.id)

    assert done.status_message_id is not None
    status = fake.message(done.status_message_id)
    shown = previews_shown(status)
    assert len(shown) >= 2, "the preview should change between edits"
    for attachment in shown:
        data = fake.world.attachments[int(attachment["id"])].data
        with Image.open(io.BytesIO(data)) as image:
            assert (image.format, image.width) == ("WEBP", PREVIEWS.width)
            assert getattr(image, "n_frames", 1) > 1  # it moves
    assert [attachment.filename for attachment in clip.attachments] == [f"reelbot-{job.id}.mp4"]
    assert f"job:{job.id}:retry" in clip.custom_ids()
    assert clip.embeds
    for message in fake.channel_messages(fake.general):
        assert PREVIEW_NAME not in [attachment.filename for attachment in message.attachments]
    assert not preview_path(reel.settings.clips_dir, job.id).exists()


async def test_in_a_busy_channel_the_preview_goes_to_the_requesters_own_reply(reel: Reel) -> None:
    fake = reel.fake
    # Every job is listed on the queue board: none has a status message of its own.
    busy = {"queue_board_from_jobs": 1, "private_update_seconds": 0.3}
    reel.settings = reel.settings.model_copy(update=busy)
    async with reel.bot_running():
        handle, job = await reel.create("a lighthouse at dusk")
        await made_long(reel, job.id)
        async with reel.worker_running(preview=PREVIEWS):
            done = await reel.delivered(job.id)
            reply = await fake.wait_for(lambda: ready_reply(handle), timeout=30)

    assert done.status_message_id is None
    assert previews_shown(reply), "the requester should have seen the clip forming"
    assert PREVIEW_NAME not in [attachment.filename for attachment in reply.attachments]
    for message in fake.channel_messages(fake.general):
        assert previews_shown(message) == []


async def made_long(reel: Reel, job_id: int) -> None:
    """Make the waiting job ``job_id`` a long render, as a server's own preset would (/create
    has no steps option, and the tiny model's clips take two)."""
    await reel.queue.db.write(
        lambda db: db.execute(
            "UPDATE jobs SET request = json_set(request, '$.steps', ?, '$.frames', ?) WHERE id = ?",
            [STEPS, FRAMES, job_id],
        )
    )


def ready_reply(handle: InteractionHandle) -> Message | None:
    """The requester's private reply once it links to the finished clip."""
    reply = handle.original
    return reply if reply is not None and "ready" in reply.content else None
