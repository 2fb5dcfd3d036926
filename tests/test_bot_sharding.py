"""A sharded gateway (DISCORD_SHARD_COUNT): discord.py's AutoShardedBot, nothing else changing."""

from __future__ import annotations

import pytest
from discord.ext import commands

from bot.client import ReelBot, ShardedReelBot, make_bot
from bot.settings import Settings
from tests.bot_harness import Reel


def bot_for(reel: Reel, shards: int | str | None) -> ReelBot:
    settings = reel.settings.model_copy(update={"discord_shard_count": shards})
    return make_bot(settings, queue=reel.queue, moderation=reel.moderation)


@pytest.mark.parametrize(("given", "read"), [("", None), ("auto", "auto"), ("4", 4)])
def test_the_shard_count_setting_reads(
    monkeypatch: pytest.MonkeyPatch, given: str, read: object
) -> None:
    monkeypatch.setenv("DISCORD_SHARD_COUNT", given)
    assert Settings(_env_file=None).discord_shard_count == read  # type: ignore[call-arg]


async def test_a_sharded_bot_makes_and_posts_clips(reel: Reel) -> None:
    bot = bot_for(reel, "auto")
    assert isinstance(bot, ShardedReelBot)
    assert isinstance(bot, commands.AutoShardedBot)
    async with reel.fake.running(bot), reel.worker_running():
        reel.bot = bot
        _, job = await reel.create("a red kite over a beach")
        clip = await reel.clip_message(job.id)
        await reel.delivered(job.id)
    assert bot.shard_count == 1, "Discord (the fake) recommends one shard"
    assert clip.attachments[0].filename.endswith(".mp4")


def test_a_fixed_shard_count_is_passed_to_discord_py(reel: Reel) -> None:
    unsharded, fixed = bot_for(reel, None), bot_for(reel, 4)
    assert not isinstance(unsharded, commands.AutoShardedBot)
    assert isinstance(fixed, ShardedReelBot)
    assert fixed.shard_count == 4
