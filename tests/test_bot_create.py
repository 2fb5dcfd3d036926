"""/create end to end: private answer, public status message, then the clip with buttons."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobqueue.models import JobKind, JobRequest
from tests.bot_harness import Reel, probe_mp4
from tests.broker_harness import BOTH_MODES


@pytest.mark.parametrize("reel_mode", BOTH_MODES, indirect=True)
async def test_create_posts_a_playable_clip_with_buttons(
    running_reel: Reel, tmp_path: Path
) -> None:
    reel, fake = running_reel, running_reel.fake
    handle, job = await reel.create("a red balloon over a city", seed=7)

    assert handle.ephemeral
    assert f"#{job.id}" in (await handle.response()).content
    status = await fake.wait_for_message(fake.general, lambda m: f"#{job.id}" in m.content)
    assert not status.ephemeral

    clip = await reel.clip_message(job.id)
    assert clip.custom_ids() == [
        f"job:{job.id}:{a}" for a in ("retry", "remix", "extend", "hd", "delete")
    ]
    embed = clip.embeds[0]
    assert embed["description"] == "a red balloon over a city"
    fields = {field["name"]: field["value"] for field in embed["fields"]}
    assert fields["Seed"] == "7"
    assert fields["Requested by"] == f"<@{fake.alice.id}>"

    video = clip.attachments[0]
    assert video.filename.endswith(".mp4")
    facts = probe_mp4(video.data, tmp_path)
    assert (facts.codec, facts.frames) == ("h264", 9)

    # In a quiet channel the status message becomes the clip: one message, one edit.
    assert clip.id == status.id
    assert clip.content == ""


async def test_status_messages_follow_their_jobs_without_flooding_edits(
    running_reel: Reel,
) -> None:
    reel, fake = running_reel, running_reel.fake
    ahead = await reel.queue.submit(
        JobKind.CREATE,
        JobRequest(prompt="a long clip ahead in line", frames=81, steps=50),
        user_id=fake.bob.id,
        guild_id=fake.guild.id,
        channel_id=fake.general.id,
    )
    await reel.started(ahead.id)
    _, job = await reel.create("a hot air balloon")
    await reel.clip_message(job.id)
    for shown_job in (ahead, job):
        await reel.delivered(shown_job.id)
    long_one = await status_history(reel, ahead.id)
    waiting_one = await status_history(reel, job.id)
    assert any(": generating, " in text and "% (step" in text for text in long_one.texts), long_one
    assert "is queued: next in line" in waiting_one.texts[0]
    for history in (long_one, waiting_one):
        # Progress edits keep their distance; the clip itself never waits for one.
        assert all(gap >= reel.settings.progress_edit_seconds - 0.05 for gap in history.gaps)


@dataclass
class StatusHistory:
    texts: list[str]
    gaps: list[float]


async def status_history(reel: Reel, job_id: int) -> StatusHistory:
    """What a job's status message showed, once the clip replaced or removed it."""
    job = await reel.queue.get(job_id)
    assert job is not None
    assert job.status_message_id is not None
    marker = f"job:{job_id}:retry"
    message = await reel.fake.wait_for(
        lambda: (
            reel.fake.message(job.status_message_id or 0)
            if reel.fake.message(job.status_message_id or 0).deleted
            or marker in reel.fake.message(job.status_message_id or 0).custom_ids()
            else None
        )
    )
    became_clip = marker in message.custom_ids()
    texts = [revision["content"] for revision in message.revisions]
    if not became_clip:
        texts.append(message.content)
    edits = message.edit_times[:-1] if became_clip else message.edit_times
    gaps = [later - earlier for earlier, later in itertools.pairwise(edits)]
    return StatusHistory(texts, gaps)
