"""The output safety check through the real bot on the fake Discord, with a real worker running
the real packaged classifiers (NudeNet, open_nsfw) on clips from the tiny model.

Ordinary clips are posted. With a threshold of 0 (every frame judged unsafe: the way to
exercise the path without shipping unsafe pictures) a clip is withheld in an ordinary
channel: nothing of it is posted, its requester is told privately, and the audit log and the
mod-log channel get their line. In an age-restricted channel the ``spoiler`` mode posts it as
a spoiler file. A moderator's release posts it once; a withheld clip starts nobody else's Extend.
"""

from __future__ import annotations

import contextlib

import pytest

from bot import followups
from bot.output_safety import withheld_line, withheld_private
from bot.submit import Refused, submit_for_user
from jobqueue.clipfiles import job_files
from jobqueue.models import Job, JobKind, JobRequest
from jobqueue.moderation import AuditAction
from jobqueue.safety import PARENT_WITHHELD, HeldState, Verdict
from jobqueue.worker import Worker
from tests.bot_harness import CLIP_TIMEOUT_S, Reel
from tests.fakediscord import Channel, FakeDiscord, Message

ANSWER_TIMEOUT_S = 60.0
"""Generous: the fake Discord answers late when the machine is busy."""


def checking_worker(reel: Reel) -> contextlib.AbstractAsyncContextManager[Worker]:
    """A tiny-model worker whose clips go through the packaged classifiers."""
    return reel.worker_running(safety=True)


async def admin(fake: FakeDiscord, command: str, **options: object) -> Message:
    handle = await fake.invoke(f"admin {command}", dict(options), user=fake.carol)
    return await handle.response(timeout=ANSWER_TIMEOUT_S)


async def flag_everything(fake: FakeDiscord) -> None:
    for category in ("nudity", "nsfw"):
        await admin(fake, "safety threshold", category=category, value=0.0)


def attachments(fake: FakeDiscord, channel: Channel) -> list[str]:
    return [
        attachment.filename
        for message in fake.channel_messages(channel)
        for attachment in message.attachments
    ]


async def test_an_ordinary_clip_is_looked_at_and_posted(reel: Reel) -> None:
    async with reel.bot_running(), checking_worker(reel):
        _, job = await reel.create("a red balloon over a city", seed=3)
        clip = await reel.clip_message(job.id)
    done = await reel.delivered(job.id)
    assert done.safety_verdict == Verdict.SAFE
    assert [attachment.filename for attachment in clip.attachments] == [f"reelbot-{job.id}.mp4"]


async def test_a_flagged_clip_is_withheld_in_an_ordinary_channel(reel: Reel) -> None:
    fake = reel.fake
    async with reel.bot_running(), checking_worker(reel):
        await admin(fake, "modlog set", channel=fake.other)
        await flag_everything(fake)
        handle, job = await reel.create("a red balloon over a city", seed=3)
        done = await reel.delivered(job.id)
        private = await fake.wait_for(
            lambda: handle.original if "withheld" in handle.original.content else None,
            timeout=ANSWER_TIMEOUT_S,
        )
        log_line = await fake.wait_for_message(
            fake.other, lambda message: "withheld" in message.content, timeout=ANSWER_TIMEOUT_S
        )
        review = await admin(fake, "safety review")

    assert (done.safety_verdict, done.safety_state) == (Verdict.UNSAFE, HeldState.WITHHELD)
    # Nothing of the clip in the channel: one line, no file, no buttons, no reactions.
    assert attachments(fake, fake.general) == []
    assert reel.clip_messages() == []
    lines = [message.content for message in fake.channel_messages(fake.general)]
    assert withheld_line(done) in lines
    assert private.content == withheld_private(done)
    assert private.ephemeral
    assert fake.dms(fake.alice) == []  # told in the private reply, so no DM as well
    alice = f"<@{fake.alice.id}>"
    assert log_line.content.startswith(
        f"🛡️ The safety check withheld job #{job.id} by {alice}: flagged: "
    )
    assert log_line.pings.nobody
    entries = await reel.moderation.recent_actions(fake.guild.id)
    assert AuditAction.OUTPUT_WITHHELD in [entry.action for entry in entries]
    assert f"**#{job.id}** by {alice}" in review.embeds[0]["description"]
    # The clip is kept for review.
    assert {path.suffix for path in job_files(reel.settings.clips_dir, job.id)} == {".mp4", ".jpg"}


async def test_a_clip_with_no_private_reply_left_is_told_by_direct_message(reel: Reel) -> None:
    fake = reel.fake
    async with reel.bot_running(), checking_worker(reel):
        await flag_everything(fake)
        # Queued without an interaction (as after a restart, or a reaction's retry).
        job = await reel.queue.submit(
            JobKind.CREATE,
            JobRequest(prompt="a red balloon", seed=3),
            user_id=fake.alice.id,
            guild_id=fake.guild.id,
            channel_id=fake.general.id,
        )
        dm = await fake.wait_for(lambda: fake.dms(fake.alice), timeout=CLIP_TIMEOUT_S)
    done = await reel.delivered(job.id)
    assert [message.content for message in dm] == [withheld_private(done)]
    assert attachments(fake, fake.general) == []


async def test_a_moderators_release_posts_the_clip_once(reel: Reel) -> None:
    fake = reel.fake
    async with reel.bot_running(), checking_worker(reel):
        await admin(fake, "modlog set", channel=fake.other)
        await flag_everything(fake)
        _, job = await reel.create("a red balloon over a city", seed=3)
        withheld = await reel.delivered(job.id)
        released = await admin(fake, "safety release", job=job.id)
        clip = await reel.clip_message(job.id)
        again = await admin(fake, "safety release", job=job.id)
        log_line = await fake.wait_for_message(
            fake.other, lambda message: "released" in message.content, timeout=ANSWER_TIMEOUT_S
        )
    assert (
        released.content == f"Released clip #{job.id}: it is being posted in <#{fake.general.id}>."
    )
    assert again.content == f"Clip #{job.id} is not withheld by the safety check."
    assert log_line.content.startswith(
        f"🛡️ <@{fake.carol.id}> released the withheld job #{job.id} of <@{fake.alice.id}>"
    )
    assert clip.attachments[0].filename == f"reelbot-{job.id}.mp4"
    # The "withheld" line made way for the clip.
    assert withheld_line(withheld) not in [m.content for m in fake.channel_messages(fake.general)]
    assert len(reel.clip_messages()) == 1
    done = await reel.delivered(job.id)
    assert (done.safety_state, done.result_message_id) == (HeldState.RELEASED, clip.id)


async def test_delete_removes_a_withheld_clips_files(reel: Reel) -> None:
    fake = reel.fake
    async with reel.bot_running(), checking_worker(reel):
        await flag_everything(fake)
        _, job = await reel.create("a red balloon over a city", seed=3)
        await reel.delivered(job.id)
        deleted = await admin(fake, "safety delete", job=job.id)
        review = await admin(fake, "safety review")
    assert deleted.content == f"Deleted the withheld clip #{job.id}: its files are gone."
    assert job_files(reel.settings.clips_dir, job.id) == []
    assert review.embeds[0]["description"] == "No clip is withheld."
    assert reel.clip_messages() == []


@pytest.fixture
def after_dark(fake_discord: FakeDiscord) -> Channel:
    """An age-restricted channel, made before the bot connects."""
    return fake_discord.world.add_channel(fake_discord.guild, "after-dark", nsfw=True)


async def create_in(reel: Reel, channel: Channel) -> Job:
    handle = await reel.fake.invoke(
        "create",
        {"prompt": "a red balloon over a city", "seed": 3},
        user=reel.fake.alice,
        channel=channel,
    )
    return await reel.job_of(handle)


async def test_spoiler_mode_posts_a_spoiler_in_an_age_restricted_channel_only(
    reel: Reel, after_dark: Channel
) -> None:
    fake = reel.fake
    async with reel.bot_running(), checking_worker(reel):
        await admin(fake, "modlog set", channel=fake.other)
        await admin(fake, "safety mode", mode="spoiler")
        await flag_everything(fake)
        spoilered = await create_in(reel, after_dark)
        withheld = await create_in(reel, fake.general)
        posted = await fake.wait_for_message(
            after_dark, lambda message: bool(message.attachments), timeout=CLIP_TIMEOUT_S
        )
        await reel.delivered(withheld.id)
        log_line = await fake.wait_for_message(
            fake.other, lambda message: "as a spoiler" in message.content, timeout=ANSWER_TIMEOUT_S
        )
    assert [a.filename for a in posted.attachments] == [f"SPOILER_reelbot-{spoilered.id}.mp4"]
    assert (await reel.delivered(spoilered.id)).safety_state == HeldState.SPOILERED
    assert attachments(fake, fake.general) == []
    assert log_line.content.startswith(f"🛡️ The safety check posted job #{spoilered.id}")


async def test_withhold_mode_withholds_in_age_restricted_channels_too(
    reel: Reel, after_dark: Channel
) -> None:
    fake = reel.fake
    async with reel.bot_running(), checking_worker(reel):
        await flag_everything(fake)
        job = await create_in(reel, after_dark)
        done = await reel.delivered(job.id)
    assert done.safety_state == HeldState.WITHHELD
    assert attachments(fake, after_dark) == []


async def test_nobody_else_can_extend_a_withheld_clip(reel: Reel) -> None:
    fake = reel.fake
    async with reel.bot_running() as bot, checking_worker(reel):
        await flag_everything(fake)
        _, job = await reel.create("a red balloon over a city", seed=3)
        parent = await reel.delivered(job.id)
        where = {"guild_id": fake.guild.id, "channel_id": fake.general.id}
        with pytest.raises(Refused, match=PARENT_WITHHELD):
            await submit_for_user(
                bot, followups.extend(parent), user_id=fake.bob.id, idempotency_key="b", **where
            )
        own = await submit_for_user(
            bot, followups.extend(parent), user_id=fake.alice.id, idempotency_key="a", **where
        )
    assert own.parent_id == parent.id
