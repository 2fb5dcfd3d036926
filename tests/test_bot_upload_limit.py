"""A clip over the guild's upload limit is re-encoded to fit, or the bot says it cannot."""

from __future__ import annotations

from pathlib import Path

from tests.bot_harness import Reel, probe_mp4


def file_size(path: str) -> int:
    return Path(path).stat().st_size


async def test_a_clip_over_the_limit_is_re_encoded_to_fit(
    running_reel: Reel, tmp_path: Path
) -> None:
    fake = running_reel.fake
    _, first = await running_reel.create("a busy market street", seed=5)
    full_size = (await running_reel.clip_message(first.id)).attachments[0].size

    fake.set_upload_limit(full_size * 3 // 4)
    _, second = await running_reel.create("a busy market street", seed=5)
    clip = await running_reel.clip_message(second.id)
    video = clip.attachments[0]
    assert video.size <= full_size * 3 // 4
    assert probe_mp4(video.data, tmp_path).frames == 9
    finished = await running_reel.queue.get(second.id)
    assert finished is not None
    assert finished.result_path is not None
    assert file_size(finished.result_path) == full_size


async def test_a_clip_that_cannot_fit_is_kept_and_the_bot_says_so(running_reel: Reel) -> None:
    fake = running_reel.fake
    fake.set_upload_limit(300)
    _, job = await running_reel.create("a busy market street", seed=5)
    delivered = await running_reel.delivered(job.id)
    status = fake.message(delivered.result_message_id or 0)
    assert "over this server's 300 bytes upload limit" in status.content
    assert status.content.endswith("the file is kept on the bot's host.")
    assert running_reel.clip_messages() == []
    assert delivered.result_path is not None
    assert file_size(delivered.result_path) > 300
