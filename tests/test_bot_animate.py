"""/animate: a picture becomes the first frame of a clip; bad uploads are refused first."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from jobqueue.models import JobKind
from tests.bot_harness import Reel, probe_mp4
from tests.broker_harness import BOTH_MODES
from tests.fakediscord import FileUpload


def picture(width: int = 96, height: int = 64) -> FileUpload:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "orange").save(buffer, format="PNG")
    return FileUpload("sunset.png", buffer.getvalue(), "image/png", width, height)


@pytest.mark.parametrize("reel_mode", BOTH_MODES, indirect=True)
async def test_animate_makes_a_clip_from_the_picture(running_reel: Reel, tmp_path: Path) -> None:
    fake = running_reel.fake
    handle = await fake.invoke(
        "animate",
        {"prompt": "the sun goes down"},
        attachments={"image": picture()},
        user=fake.alice,
    )
    job = await running_reel.job_of(handle)
    assert job.kind is JobKind.ANIMATE
    assert job.request.image_path is not None
    clip = await running_reel.clip_message(job.id)
    assert probe_mp4(clip.attachments[0].data, tmp_path).frames == 9


async def test_a_file_that_is_not_a_picture_is_refused(running_reel: Reel) -> None:
    fake = running_reel.fake
    upload = FileUpload("notes.txt", b"not a picture", "text/plain")
    handle = await fake.invoke(
        "animate", {"prompt": "anything"}, attachments={"image": upload}, user=fake.alice
    )
    answer = await handle.response()
    assert handle.ephemeral
    assert answer.content == "The start image must be a PNG, JPEG or WebP picture."
    assert await running_reel.queue.user_jobs(fake.alice.id, active_only=False) == []


async def test_a_picture_lying_about_its_size_is_refused(running_reel: Reel) -> None:
    fake = running_reel.fake
    wide = picture(5000, 100)
    small_claim = FileUpload("wide.png", wide.data, "image/png", 64, 64)
    handle = await fake.invoke(
        "animate", {"prompt": "anything"}, attachments={"image": small_claim}, user=fake.alice
    )
    answer = await handle.response()
    assert answer.content == (
        "The start image is 5000×100 pixels; each side must be at most 4096 pixels."
    )
