"""What the bot refuses, and how failures read: one private sentence, or the status message
turned into one; a refused request never becomes a job."""

from __future__ import annotations

from tests.bot_harness import Reel


async def no_jobs(reel: Reel, user_id: int) -> bool:
    return await reel.queue.user_jobs(user_id, active_only=False) == []


async def test_a_channel_where_clips_are_not_allowed(running_reel: Reel) -> None:
    fake = running_reel.fake
    await running_reel.moderation.set_channel_allowed(
        fake.guild.id, fake.other.id, False, actor_id=fake.carol.id
    )
    handle = await fake.invoke("create", {"prompt": "a cat"}, user=fake.alice, channel=fake.other)
    answer = await handle.response()
    assert handle.ephemeral
    assert answer.content == (
        "Clips can't be made in this channel; ask a moderator which channel to use."
    )
    assert await no_jobs(running_reel, fake.alice.id)


async def test_a_banned_user_is_told_until_when(running_reel: Reel) -> None:
    fake = running_reel.fake
    await running_reel.moderation.ban(
        fake.guild.id, fake.bob.id, actor_id=fake.carol.id, duration_s=3600
    )
    handle = await fake.invoke("create", {"prompt": "a cat"}, user=fake.bob)
    answer = await handle.response()
    assert handle.ephemeral
    assert answer.content.startswith("You are banned from making clips on this server until <t:")
    assert await no_jobs(running_reel, fake.bob.id)


async def test_a_blocked_prompt_names_the_category(running_reel: Reel) -> None:
    fake = running_reel.fake
    await running_reel.moderation.blocklist_add(
        fake.guild.id, "zorblax", actor_id=fake.carol.id, category="made-up monsters"
    )
    handle = await fake.invoke(
        "create", {"prompt": "a cat", "negative": "a z o r b l a x"}, user=fake.alice
    )
    answer = await handle.response()
    assert handle.ephemeral
    assert answer.content == (
        "Your negative prompt was refused: it matches blocked content (made-up monsters)."
    )
    assert "zorblax" not in answer.content
    assert await no_jobs(running_reel, fake.alice.id)


async def test_a_duration_the_model_cannot_make(running_reel: Reel) -> None:
    fake = running_reel.fake
    handle = await fake.invoke("create", {"prompt": "a cat", "duration": 30.0}, user=fake.alice)
    answer = await handle.response()
    assert handle.ephemeral
    assert answer.content == (
        "A duration of 30 s is out of range for tiny at 16 fps; choose 0.3 to 5.1 seconds."
    )
    assert await no_jobs(running_reel, fake.alice.id)


async def test_too_many_waiting_clips(reel: Reel) -> None:
    fake = reel.fake
    await reel.queue.set_limits(user_id=fake.alice.id, waiting=1, running=None, daily=None)
    async with reel.bot_running():
        await reel.create("first")
        handle = await fake.invoke("create", {"prompt": "second"}, user=fake.alice)
        answer = await handle.response()
    assert handle.ephemeral
    assert "waiting" in answer.content
    assert answer.content.endswith(".")


async def test_a_failed_job_turns_its_status_message_into_a_sentence(running_reel: Reel) -> None:
    fake = running_reel.fake
    # The Wan preset's weights are not on this machine (and no hub is reachable).
    _, job = await running_reel.create("a cat", model="wan2.1-t2v-1.3b")
    failed = await running_reel.delivered(job.id)
    assert failed.error
    status = fake.message(failed.result_message_id or 0)
    assert status.content.startswith(f"❌ clip #{job.id} for <@{fake.alice.id}> failed: ")
    assert status.content.endswith(".")
    assert "Traceback" not in status.content
    assert running_reel.clip_messages() == []
