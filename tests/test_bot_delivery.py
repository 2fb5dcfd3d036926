"""Delivery where other bots go wrong: long waits past the interaction token's life, status
messages deleted under the bot, channels closed to clips, and where commands are synced."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from jobqueue.models import Job, JobKind, JobRequest
from tests.bot_harness import Reel


async def test_a_clip_arrives_after_the_interaction_token_has_expired(reel: Reel) -> None:
    fake = reel.fake
    async with reel.bot_running():
        _, job = await reel.create("a slow sunrise")
        await fake.wait_for_message(fake.general, lambda m: f"#{job.id}" in m.content)
        fake.world.clock.advance(20 * 60)  # longer than the 15 minutes a token lives
        async with reel.worker_running():
            await reel.clip_message(job.id)
            await reel.delivered(job.id)


async def test_a_deleted_status_message_is_left_alone(reel: Reel) -> None:
    fake = reel.fake
    async with reel.bot_running():
        await reel.queue.submit(
            JobKind.CREATE,
            JobRequest(prompt="ahead in line", frames=17, steps=6),
            user_id=fake.bob.id,
            guild_id=fake.guild.id,
            channel_id=fake.general.id,
        )
        _, job = await reel.create("a lantern")
        status = await fake.wait_for_message(fake.general, lambda m: f"#{job.id}" in m.content)
        fake.server.messages.delete(status)
        async with reel.worker_running():
            await reel.clip_message(job.id)
            await reel.delivered(job.id)
    assert not [
        m for m in fake.channel_messages(fake.general) if f"clip #{job.id} for" in m.content
    ]


async def test_only_the_configured_channels_allow_clips(reel: Reel) -> None:
    fake = reel.fake
    reel.settings.discord_allowed_channel_ids = [fake.general.id]
    async with reel.bot_running():
        refused = await fake.invoke("create", {"prompt": "x"}, user=fake.alice, channel=fake.other)
        assert (await refused.response()).content.startswith("Clips can't be made in this channel")
        await reel.create("allowed here")


async def test_commands_are_synced_to_the_configured_guilds(reel: Reel) -> None:
    async with reel.bot_running():
        names = {command["name"] for command in reel.fake.registered_commands(reel.fake.guild)}
    assert {"create", "animate", "queue", "cancel", "settings", "info", "help"} <= names


async def test_commands_are_synced_globally_without_guilds(reel: Reel) -> None:
    reel.settings.discord_guild_ids = []
    async with reel.bot_running():
        names = {command["name"] for command in reel.fake.registered_commands()}
    assert "create" in names
    assert reel.fake.registered_commands(reel.fake.guild) == []


async def test_a_delivery_that_fails_twice_is_retried_until_the_clip_is_up(
    reel: Reel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Discord refusing the post, then the queue failing a read, still ends with the clip up."""
    async with reel.bot_running() as bot:
        cog = bot.get_cog("Delivery")
        assert cog is not None
        # discord.py loads each extension as a module object of its own.
        monkeypatch.setattr(sys.modules[type(cog).__module__], "RETRY_AFTER_S", 0.2)
        finish, read = cog.finish, bot.queue.get
        failures = {"finish": 1, "read": 1}

        async def finish_failing_once(*args: Any) -> None:
            if failures["finish"]:
                failures["finish"] -= 1
                raise RuntimeError("Discord had a bad moment")
            await finish(*args)

        async def read_failing_once_in_a_retry(job_id: int) -> Job | None:
            task = asyncio.current_task()
            if failures["read"] and task is not None and task.get_name().startswith("retry-"):
                failures["read"] -= 1
                raise RuntimeError("database is locked")
            return await read(job_id)

        monkeypatch.setattr(cog, "finish", finish_failing_once)
        monkeypatch.setattr(bot.queue, "get", read_failing_once_in_a_retry)
        _, job = await reel.create("a paper boat")
        async with reel.worker_running():
            await reel.clip_message(job.id)
            await reel.delivered(job.id)
    assert failures == {"finish": 0, "read": 0}
