"""Live previews through the real bot against the fake Discord (rate limits on): while a clip
renders, its status message's attachment is the clip forming, replaced as it changes; the
finished clip takes its place and no preview is left anywhere."""

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
from tests.fakediscord import Message

STEPS = 40
"""Long enough on the tiny model for a few progress edits, each with a newer preview."""
PREVIEWS = PreviewOptions(every_steps=2, min_seconds=0.2, width=96)


async def submit(reel: Reel, *, steps: int = STEPS) -> Job:
    fake = reel.fake
    return await reel.queue.submit(
        JobKind.CREATE,
        JobRequest(prompt="a lighthouse at dusk", seed=3, steps=steps),
        user_id=fake.alice.id,
        guild_id=fake.guild.id,
        channel_id=fake.general.id,
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


async def test_no_preview_when_previews_are_off(reel: Reel) -> None:
    fake = reel.fake
    async with reel.bot_running(), reel.worker_running(preview=None):
        job = await submit(reel, steps=12)
        await reel.clip_message(job.id)
        done = await reel.delivered(job.id)
    assert done.status_message_id is not None
    assert previews_shown(fake.message(done.status_message_id)) == []
