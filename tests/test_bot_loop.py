"""/animate loop:True and end_image: through the real bot, the clip is made on the server's
first-last-frame model and posted; bad end images and impossible asks are refused privately
with a sentence, and nothing is queued."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot import followups
from jobqueue.models import JobKind, JobRequest
from tests.bot_harness import Reel, make_job, probe_mp4
from tests.broker_harness import BOTH_MODES
from tests.fakediscord import FileUpload, InteractionHandle


def picture(colour: str, width: int = 96, height: int = 64) -> FileUpload:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return FileUpload(f"{colour}.png", buffer.getvalue(), "image/png", width, height)


async def animate(reel: Reel, options: dict[str, Any], **pictures: FileUpload) -> InteractionHandle:
    fake = reel.fake
    return await fake.invoke(
        "animate",
        {"prompt": "the light changes", **options},
        attachments={"image": picture("orange"), **pictures},
        user=fake.alice,
    )


def embed_fields(message: Any) -> dict[str, str]:
    return {field["name"]: field["value"] for field in message.embeds[0].get("fields", [])}


async def nothing_queued(reel: Reel) -> bool:
    return await reel.queue.user_jobs(reel.fake.alice.id, active_only=False) == []


@pytest.mark.parametrize("reel_mode", BOTH_MODES, indirect=True)
async def test_a_loop_is_made_on_the_end_frame_model_and_posted(
    running_reel: Reel, tmp_path: Path
) -> None:
    job = await running_reel.job_of(await animate(running_reel, {"loop": True}))
    assert (job.kind, job.request.loop, job.request.end_image_path) == (JobKind.ANIMATE, True, None)
    clip = await running_reel.clip_message(job.id)
    assert probe_mp4(clip.attachments[0].data, tmp_path).frames == 9
    done = await running_reel.delivered(job.id)
    assert done.model == "tiny-flf2v"
    fields = embed_fields(clip)
    assert (fields["Model"], fields["Ends"]) == ("tiny-flf2v", "where it began (loop)")


@pytest.mark.parametrize("reel_mode", BOTH_MODES, indirect=True)
async def test_an_end_image_is_kept_and_the_clip_ends_on_it(
    running_reel: Reel, tmp_path: Path
) -> None:
    handle = await animate(running_reel, {}, end_image=picture("blue", 64, 96))
    job = await running_reel.job_of(handle)
    assert job.request.end_image_path is not None
    kept = Path(job.request.end_image_path)
    with Image.open(kept) as end:
        assert (end.format, end.size, end.getpixel((0, 0))) == ("PNG", (64, 96), (0, 0, 255))
    clip = await running_reel.clip_message(job.id)
    assert probe_mp4(clip.attachments[0].data, tmp_path).frames == 9
    assert embed_fields(clip)["Ends"] == "on the end image"
    assert (await running_reel.delivered(job.id)).model == "tiny-flf2v"


async def test_deleting_the_job_deletes_both_uploaded_pictures(running_reel: Reel) -> None:
    fake = running_reel.fake
    job = await running_reel.job_of(await animate(running_reel, {}, end_image=picture("blue")))
    await running_reel.clip_message(job.id)
    pictures = [Path(job.request.image_path or ""), Path(job.request.end_image_path or "")]
    assert all(path.is_file() for path in pictures)
    handle = await fake.invoke("admin delete", {"job": job.id}, user=fake.carol)
    assert (await handle.response()).content.startswith(f"Deleted job #{job.id}")
    assert not any(path.exists() for path in pictures)


@pytest.mark.parametrize(
    ("upload", "sentence"),
    [
        (
            FileUpload("notes.txt", b"not a picture", "text/plain"),
            "The end image must be a PNG, JPEG or WebP picture.",
        ),
        (
            FileUpload("fake.png", b"<html>not a picture</html>", "image/png", 64, 64),
            "The end image could not be read as a picture.",
        ),
        (
            FileUpload("wide.png", picture("red", 5000, 100).data, "image/png", 64, 64),
            "The end image is 5000×100 pixels; each side must be at most 4096 pixels.",
        ),
    ],
)
async def test_a_bad_end_image_is_refused_privately_and_nothing_is_queued(
    running_reel: Reel, upload: FileUpload, sentence: str
) -> None:
    handle = await animate(running_reel, {}, end_image=upload)
    answer = await handle.response()
    assert handle.ephemeral
    assert answer.content == sentence
    assert await nothing_queued(running_reel)


async def test_a_loop_with_an_end_image_is_refused(running_reel: Reel) -> None:
    handle = await animate(running_reel, {"loop": True}, end_image=picture("blue"))
    answer = await handle.response()
    assert handle.ephemeral
    assert answer.content == "A loop ends on its start image; give no end image with it."
    assert await nothing_queued(running_reel)


async def test_a_chosen_model_that_cannot_loop_is_refused_with_the_ones_that_can(
    running_reel: Reel,
) -> None:
    handle = await animate(running_reel, {"loop": True, "model": "tiny-i2v"})
    answer = await handle.response()
    assert answer.content == (
        "The model tiny-i2v cannot end a clip on a chosen frame (a loop or an end image);"
        " use one that can: wan2.1-flf2v-14b-720p, wan2.1-vace-1.3b, tiny-flf2v, tiny-vace."
    )
    assert await nothing_queued(running_reel)


async def test_a_server_without_an_end_frame_model_says_loops_are_off(running_reel: Reel) -> None:
    running_reel.settings.end_frame_model = ""
    handle = await animate(running_reel, {"loop": True})
    answer = await handle.response()
    assert answer.content == (
        "This server has no model that ends a clip on a chosen frame, so loop and end_image"
        " are off here; animate without them."
    )
    assert await nothing_queued(running_reel)


@pytest.mark.parametrize("ending", [{"loop": True}, {"end_image_path": "end.png"}])
def test_extending_a_clip_that_ended_on_a_frame_continues_on_the_image_to_video_model(
    ending: dict[str, Any],
) -> None:
    asked = JobRequest(prompt="x", image_path="start.png", model="tiny-flf2v", **ending)
    extension = followups.extend(make_job(kind=JobKind.ANIMATE, request=asked))
    request = extension.request
    assert (request.loop, request.end_image_path, request.model) == (False, None, None)
