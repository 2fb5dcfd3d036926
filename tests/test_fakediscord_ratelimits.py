"""The fake Discord's rate limits, driven by the real discord.py client: it reads the
buckets from the headers, waits out 429s by itself and delivers everything."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands

from tests.fakediscord import FakeDiscord
from tests.fakediscord.fixtures import PROFILE_ENV, rate_limit_profile
from tests.fakediscord.ratelimits import OFF, REALISTIC, RateLimitProfile, Window, bucket_hash

SEND = "POST /channels/{channel_id}/messages"
EDIT = "PATCH /channels/{channel_id}/messages/{message_id}"
FOLLOWUP = "POST /webhooks/{application_id}/{token}"
# Realistic shapes, shorter windows: a test waits a second or two, not ten.
FAST = REALISTIC.scaled(0.2)  # sends and edits 5 per 1 s, follow-ups 5 per 0.4 s


class Poster(discord.Client):
    """A bare client with one command that answers with a burst of follow-ups."""

    def __init__(self, guild_id: int, **options: Any) -> None:
        intents = discord.Intents(guilds=True)
        super().__init__(intents=intents, guild_ready_timeout=0.05, **options)
        self.tree = app_commands.CommandTree(self)
        self.guild = discord.Object(guild_id)
        self.tree.add_command(
            app_commands.Command(name="burst", description="Follow-ups", callback=burst),
            guild=self.guild,
        )

    async def setup_hook(self) -> None:
        await self.tree.sync(guild=self.guild)

    def text_channel(self, channel_id: int) -> discord.TextChannel:
        channel = self.get_channel(channel_id)
        assert isinstance(channel, discord.TextChannel)
        return channel


async def burst(interaction: discord.Interaction, count: int) -> None:
    await interaction.response.defer(ephemeral=True)
    for n in range(count):
        await interaction.followup.send(f"update {n}", ephemeral=True)


@pytest.fixture
async def client(fake_discord: FakeDiscord) -> AsyncIterator[Poster]:
    poster = Poster(fake_discord.guild.id)
    async with fake_discord.running(poster):
        yield poster


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What discord.py warned about while the test ran (e.g. being rate limited)."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def served_at(fake: FakeDiscord, route: str, channel_id: int | None = None) -> list[float]:
    return [
        r.at
        for r in fake.rate_limits.records
        if r.route == route
        and r.refused is None
        and (channel_id is None or r.channel_id == channel_id)
    ]


async def raw(fake: FakeDiscord, method: str, path: str, body: Any = None) -> tuple[int, Any, Any]:
    """A raw REST call as the bot: status, JSON body and headers."""
    headers = {"Authorization": f"Bot {fake.token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, fake.api_base + path, json=body, headers=headers) as response,
    ):
        text = await response.text()
        return response.status, json.loads(text) if text else None, response.headers


@pytest.mark.rate_limits(FAST)
async def test_a_burst_of_sends_is_paced_not_lost(
    fake_discord: FakeDiscord, client: Poster
) -> None:
    channel = client.text_channel(fake_discord.general.id)
    for n in range(12):
        await channel.send(f"message {n}")

    posted = [m.content for m in fake_discord.channel_messages(fake_discord.general)]
    assert posted == [f"message {n}" for n in range(12)]
    times = served_at(fake_discord, SEND)
    assert len(times) == 12
    # 5 per 1 s: the 6th waits for the second window, the 11th for the third.
    assert times[5] - times[0] >= 1.0
    assert times[10] - times[0] >= 2.0
    # discord.py read the bucket from the headers and paced itself: it never hit a 429.
    assert fake_discord.rate_limits.stats().routes[SEND].limited == 0
    assert client.http._bucket_hashes["POST /channels/{channel_id}/messages"] == bucket_hash("send")


@pytest.mark.rate_limits(FAST)
async def test_concurrent_sends_all_arrive(fake_discord: FakeDiscord, client: Poster) -> None:
    channel = client.text_channel(fake_discord.general.id)
    await asyncio.gather(*(channel.send(f"message {n}") for n in range(12)))

    posted = {m.content for m in fake_discord.channel_messages(fake_discord.general)}
    assert posted == {f"message {n}" for n in range(12)}
    assert len(served_at(fake_discord, SEND)) == 12


@pytest.mark.rate_limits(FAST)
async def test_a_429_is_waited_out_and_retried(
    fake_discord: FakeDiscord, client: Poster, caplog: pytest.LogCaptureFixture
) -> None:
    # Another process on the same token spent the bucket: discord.py cannot know.
    fake_discord.rate_limits.exhaust("send", channel=fake_discord.general, for_s=0.5)
    channel = client.text_channel(fake_discord.general.id)
    message = await channel.send("after the storm")

    assert fake_discord.message(message.id).content == "after the storm"
    refused = [r for r in fake_discord.rate_limits.records if r.refused]
    assert [(r.route, r.refused) for r in refused] == [(SEND, "user")]
    assert 0 < refused[0].retry_after <= 0.5
    assert served_at(fake_discord, SEND)[0] - refused[0].at >= refused[0].retry_after
    assert any("rate limited" in w for w in warnings(caplog))


async def test_sends_and_edits_have_separate_buckets(
    fake_discord: FakeDiscord, client: Poster
) -> None:
    channel = client.text_channel(fake_discord.general.id)
    sent = [await channel.send(f"message {n}") for n in range(4)]
    fake_discord.rate_limits.exhaust("send", channel=fake_discord.general, for_s=60)
    for message in sent:
        await message.edit(content=message.content + " (edited)")

    path = f"/channels/{fake_discord.general.id}/messages"
    assert (await raw(fake_discord, "POST", path, {"content": "blocked"}))[0] == 429
    stats = fake_discord.rate_limits.stats().routes
    assert (stats[EDIT].served, stats[EDIT].limited) == (4, 0)
    assert [m.content for m in fake_discord.channel_messages(fake_discord.general)] == [
        f"message {n} (edited)" for n in range(4)
    ]
    assert client.http._bucket_hashes[EDIT] == bucket_hash("edit") != bucket_hash("send")


async def test_channels_do_not_slow_each_other(fake_discord: FakeDiscord, client: Poster) -> None:
    fake_discord.rate_limits.exhaust("send", channel=fake_discord.general, for_s=60)
    other = client.text_channel(fake_discord.other.id)
    for n in range(4):
        await other.send(f"other {n}")

    general_path = f"/channels/{fake_discord.general.id}/messages"
    assert (await raw(fake_discord, "POST", general_path, {"content": "blocked"}))[0] == 429
    per_channel = fake_discord.rate_limits.stats().channels
    assert per_channel[fake_discord.other.id][SEND].served == 4
    assert per_channel[fake_discord.other.id][SEND].limited == 0
    assert per_channel[fake_discord.general.id][SEND].limited == 1


@pytest.mark.rate_limits(REALISTIC.with_windows(webhook=Window(5, 1.0)))
async def test_followups_use_the_interaction_tokens_bucket(
    fake_discord: FakeDiscord, client: Poster
) -> None:
    # The channel's send bucket is spent for a long while: follow-ups do not care.
    fake_discord.rate_limits.exhaust("send", channel=fake_discord.general, for_s=60)
    handle = await fake_discord.invoke("burst", {"count": 7}, user=fake_discord.alice)
    await fake_discord.wait_for(lambda: len(handle.followups) == 7, timeout=10)

    assert [m.content for m in handle.followups] == [f"update {n}" for n in range(7)]
    times = [r.at for r in fake_discord.rate_limits.records if r.token == handle.record.token]
    assert len(times) == 7
    assert times[5] - times[0] >= 1.0  # the token's own 5 per 1 s
    assert fake_discord.rate_limits.stats().routes[FOLLOWUP].limited == 0


@pytest.mark.rate_limits(REALISTIC.with_windows(global_requests=Window(3, 1.0)))
async def test_the_global_limit(fake_discord: FakeDiscord) -> None:
    fake_discord.rate_limits.exhaust("global_requests")
    status, body, headers = await raw(fake_discord, "GET", "/users/@me")

    assert status == 429
    assert body["global"] is True
    assert body["message"] == "You are being rate limited."
    assert 0 < body["retry_after"] <= 1.0
    assert headers["X-RateLimit-Global"] == "true"
    assert headers["X-RateLimit-Scope"] == "global"
    assert int(headers["Retry-After"]) == 1


@pytest.mark.rate_limits(REALISTIC.with_windows(global_requests=Window(4, 0.5)))
async def test_discord_py_rides_out_global_429s(
    fake_discord: FakeDiscord, client: Poster, caplog: pytest.LogCaptureFixture
) -> None:
    channels = [client.text_channel(c.id) for c in (fake_discord.general, fake_discord.other)]
    fake_discord.rate_limits.exhaust("global_requests", for_s=0.3)
    await asyncio.gather(*(c.send(f"{c.name} {n}") for c in channels for n in range(4)))

    for channel in (fake_discord.general, fake_discord.other):
        posted = {m.content for m in fake_discord.channel_messages(channel)}
        assert posted == {f"{channel.name} {n}" for n in range(4)}
    refused = [r.refused for r in fake_discord.rate_limits.records if r.refused]
    assert refused
    assert set(refused) == {"global"}
    assert any("Global rate limit has been hit" in w for w in warnings(caplog))


async def test_a_wait_beyond_max_ratelimit_timeout_raises(fake_discord: FakeDiscord) -> None:
    fake_discord.rate_limits.exhaust("send", channel=fake_discord.general, for_s=45)
    poster = Poster(fake_discord.guild.id, max_ratelimit_timeout=30)
    async with fake_discord.running(poster):
        with pytest.raises(discord.RateLimited) as refused:
            await poster.text_channel(fake_discord.general.id).send("too late")
    assert 30 < refused.value.retry_after <= 45
    assert fake_discord.channel_messages(fake_discord.general) == []


async def test_interaction_callbacks_are_not_limited(
    fake_discord: FakeDiscord, client: Poster
) -> None:
    fake_discord.rate_limits.exhaust("global_requests")
    handle = await fake_discord.invoke("burst", {"count": 0}, user=fake_discord.alice)
    assert await handle.acknowledged() == 5
    assert handle.ack_latency is not None
    assert handle.ack_latency < 3.0


async def test_headers_and_429_body_match_discord(fake_discord: FakeDiscord) -> None:
    path = f"/channels/{fake_discord.general.id}/messages"
    status, _, headers = await raw(fake_discord, "POST", path, {"content": "one"})
    assert status == 200
    assert headers["X-RateLimit-Limit"] == "5"
    assert headers["X-RateLimit-Remaining"] == "4"
    assert 4.0 < float(headers["X-RateLimit-Reset-After"]) <= 5.0
    assert headers["X-RateLimit-Bucket"] == bucket_hash("send")
    assert "X-RateLimit-Reset" in headers

    for n in range(4):
        await raw(fake_discord, "POST", path, {"content": str(n)})
    status, body, headers = await raw(fake_discord, "POST", path, {"content": "sixth"})
    assert status == 429
    assert set(body) == {"message", "retry_after", "global", "code"}
    assert (body["global"], body["code"]) == (False, 0)
    assert headers["X-RateLimit-Scope"] == "user"
    assert headers["X-RateLimit-Remaining"] == "0"
    assert headers["Via"]  # without it discord.py takes a 429 for a Cloudflare ban
    assert int(headers["Retry-After"]) >= body["retry_after"]
    assert len(fake_discord.channel_messages(fake_discord.general)) == 5
    assert fake_discord.request_counts()[("POST", "/channels/{channel_id}/messages")] == 5

    fake_discord.world.clock.advance(5.0)  # the fake's clock refills buckets too
    status, _, _ = await raw(fake_discord, "POST", path, {"content": "later"})
    assert status == 200


async def test_reactions_one_per_quarter_second(fake_discord: FakeDiscord, client: Poster) -> None:
    message = await client.text_channel(fake_discord.general.id).send("react to me")
    for emoji in ("1️⃣", "2️⃣", "3️⃣", "4️⃣"):
        await message.add_reaction(emoji)

    times = [r.at for r in fake_discord.rate_limits.records if r.group == "reaction"]
    assert len(times) == 4
    assert times[-1] - times[0] >= 0.75
    assert list(fake_discord.message(message.id).reactions) == ["1️⃣", "2️⃣", "3️⃣", "4️⃣"]


@pytest.mark.rate_limits("off", reason="checks that off means unlimited")
async def test_off_limits_nothing(fake_discord: FakeDiscord) -> None:
    path = f"/channels/{fake_discord.general.id}/messages"
    answers = [await raw(fake_discord, "POST", path, {"content": str(n)}) for n in range(30)]

    assert {status for status, _, _ in answers} == {200}
    assert not any("X-RateLimit-Remaining" in headers for _, _, headers in answers)
    assert fake_discord.rate_limits.profile is OFF
    assert fake_discord.rate_limits.stats().routes[SEND].served == 30


def test_realistic_unless_a_test_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    assert rate_limit_profile(None) is REALISTIC
    assert rate_limit_profile(pytest.mark.rate_limits(FAST).mark) is FAST
    with pytest.raises(pytest.UsageError, match="reason"):
        rate_limit_profile(pytest.mark.rate_limits("off").mark)
    monkeypatch.setenv(PROFILE_ENV, "off")
    assert rate_limit_profile(None) is OFF


async def test_limits_switch_while_running(fake_discord: FakeDiscord) -> None:
    custom = RateLimitProfile("custom", send=Window(1, 10.0))
    fake_discord.rate_limits.profile = custom
    path = f"/channels/{fake_discord.general.id}/messages"
    assert (await raw(fake_discord, "POST", path, {"content": "a"}))[0] == 200
    assert (await raw(fake_discord, "POST", path, {"content": "b"}))[0] == 429
    fake_discord.rate_limits.profile = OFF
    assert (await raw(fake_discord, "POST", path, {"content": "c"}))[0] == 200
