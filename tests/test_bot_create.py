"""/create end to end: private answer, public status message, then the clip with buttons."""

from __future__ import annotations

from pathlib import Path

from tests.bot_harness import Reel, probe_mp4


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

    finished = await fake.wait_for(
        lambda: "done" in fake.message(status.id).content and fake.message(status.id)
    )
    assert f"/{clip.id}" in finished.content
