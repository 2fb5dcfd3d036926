"""Threads in the fake Discord, driven by the real discord.py client: started from a message
or in a channel, posted into, edited, reacted to, clicked in, and known after a restart."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands

from tests.fakediscord import Channel, FakeDiscord, Message
from tests.fakediscord.ratelimits import REALISTIC, Window

SEND = "POST /channels/{channel_id}/messages"


class Pressed(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Press", custom_id="thread:press")
    async def press(self, interaction: discord.Interaction, _: discord.ui.Button[Pressed]) -> None:
        where = interaction.channel
        kind = "thread" if isinstance(where, discord.Thread) else type(where).__name__
        await interaction.response.edit_message(content=f"pressed in a {kind}")


class ThreadBot(discord.Client):
    """A bare client with one command that starts a thread from its own message."""

    def __init__(self, guild_id: int) -> None:
        intents = discord.Intents(guilds=True, guild_reactions=True)
        super().__init__(intents=intents, guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.guild = discord.Object(guild_id)
        self.tree.add_command(
            app_commands.Command(name="story", description="A thread", callback=story),
            guild=self.guild,
        )
        self.created: asyncio.Queue[discord.Thread] = asyncio.Queue()
        self.thread_replies: list[discord.Message] = []

    async def setup_hook(self) -> None:
        await self.tree.sync(guild=self.guild)
        self.add_view(Pressed())

    async def on_thread_create(self, thread: discord.Thread) -> None:
        await self.created.put(thread)

    def text_channel(self, channel_id: int) -> discord.TextChannel:
        channel = self.get_channel(channel_id)
        assert isinstance(channel, discord.TextChannel)
        return channel


async def story(interaction: discord.Interaction, title: str) -> None:
    await interaction.response.send_message(f"plan: {title}")
    plan = await interaction.original_response()
    thread = await plan.create_thread(name=title, auto_archive_duration=1440)
    reply = await thread.send("the film", view=Pressed())
    client = interaction.client
    assert isinstance(client, ThreadBot)
    client.thread_replies.append(reply)
    await reply.edit(content="the film, edited")
    await reply.add_reaction("🎬")


@pytest.fixture
async def client(fake_discord: FakeDiscord) -> AsyncIterator[ThreadBot]:
    bot = ThreadBot(fake_discord.guild.id)
    async with fake_discord.running(bot):
        yield bot


async def story_thread(fake: FakeDiscord, title: str) -> tuple[Message, Channel]:
    """Bob's /story: the plan message and the thread the bot started from it."""
    handle = await fake.invoke("story", {"title": title}, user=fake.bob)
    plan = await handle.response()
    return plan, await fake.wait_for(lambda: fake.thread_of(plan))


async def raw(fake: FakeDiscord, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """A raw REST call as the bot, for what discord.py would not send."""
    headers = {"Authorization": f"Bot {fake.token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, fake.api_base + path, json=body, headers=headers) as response,
    ):
        text = await response.text()
        return response.status, json.loads(text) if text else None


async def test_a_thread_started_from_a_message_takes_posts_edits_and_reactions(
    fake_discord: FakeDiscord, client: ThreadBot
) -> None:
    handle = await fake_discord.invoke("story", {"title": "A fox"}, user=fake_discord.alice)
    plan = await handle.response()
    thread = await fake_discord.wait_for(lambda: fake_discord.thread_of(plan))

    assert thread.id == plan.id, "a thread started from a message has the message's id"
    assert thread.name == "A fox"
    assert thread.parent_id == fake_discord.general.id
    assert fake_discord.threads(fake_discord.general) == [thread]
    film = await fake_discord.wait_for_message(thread, lambda m: bool(m.reactions))
    assert film.content == "the film, edited"
    assert film.reaction_users("🎬") == [fake_discord.bot_user.id]
    assert fake_discord.channel_messages(fake_discord.general) == [plan]

    seen = await asyncio.wait_for(client.created.get(), 5)
    assert seen.id == thread.id
    assert seen.parent_id == fake_discord.general.id
    assert seen.type is discord.ChannelType.public_thread
    assert seen.guild.get_thread(thread.id) is seen
    posted_in = client.thread_replies[0].channel
    assert isinstance(posted_in, discord.Thread)
    assert posted_in.id == thread.id


async def test_a_button_in_a_thread_reaches_the_bot_with_the_thread(
    fake_discord: FakeDiscord, client: ThreadBot
) -> None:
    _, thread = await story_thread(fake_discord, "B")
    film = await fake_discord.wait_for_message(thread, lambda m: bool(m.reactions))

    press = await fake_discord.click(film, "thread:press", user=fake_discord.bob)
    assert await press.acknowledged() == 7
    assert fake_discord.message(film.id).content == "pressed in a thread"


async def test_the_starter_message_carries_its_thread(
    fake_discord: FakeDiscord, client: ThreadBot
) -> None:
    plan, _ = await story_thread(fake_discord, "C")

    message = await client.text_channel(fake_discord.general.id).fetch_message(plan.id)
    assert message.flags.has_thread
    assert message.thread is not None
    assert message.thread.name == "C"


async def test_a_thread_without_a_message_and_the_bot_after_a_restart(
    fake_discord: FakeDiscord,
) -> None:
    first = ThreadBot(fake_discord.guild.id)
    async with fake_discord.running(first):
        channel = first.text_channel(fake_discord.general.id)
        thread = await channel.create_thread(
            name="notes", type=discord.ChannelType.public_thread, auto_archive_duration=60
        )
        await thread.send("inside")
    assert thread.parent_id == fake_discord.general.id
    assert [m.content for m in fake_discord.channel_messages(fake_discord.channel("notes"))] == [
        "inside"
    ]
    created = fake_discord.channel_messages(fake_discord.general)
    assert [(m.type, m.content) for m in created] == [(18, "notes")], "the channel says so"

    again = ThreadBot(fake_discord.guild.id)
    async with fake_discord.running(again):
        known = again.get_channel(thread.id)
        assert isinstance(known, discord.Thread), "GUILD_CREATE lists the active threads"
        fetched = await again.fetch_channel(thread.id)
        assert isinstance(fetched, discord.Thread)
        assert fetched.name == "notes"


async def test_discord_refuses_a_thread_where_it_would(
    fake_discord: FakeDiscord, client: ThreadBot
) -> None:
    plan, thread = await story_thread(fake_discord, "D")
    general = f"/channels/{fake_discord.general.id}"

    status, body = await raw(
        fake_discord, "POST", f"{general}/messages/{plan.id}/threads", {"name": "again"}
    )
    assert (status, body["code"]) == (400, 160004), "one thread per message"
    status, body = await raw(fake_discord, "POST", f"/channels/{thread.id}/threads", {"name": "x"})
    assert (status, body["code"]) == (400, 50024), "no thread inside a thread"
    status, body = await raw(fake_discord, "POST", f"{general}/threads", {"name": "x" * 101})
    assert (status, body["code"]) == (400, 50035)
    assert "name" in body["errors"]
    status, body = await raw(
        fake_discord, "POST", f"{general}/threads", {"name": "x", "auto_archive_duration": 5}
    )
    assert "auto_archive_duration" in body["errors"]


async def test_a_bot_without_create_public_threads_is_refused(
    fake_discord: FakeDiscord, client: ThreadBot
) -> None:
    bot_role = fake_discord.role(fake_discord.bot_user.name)
    bot_role.permissions &= ~discord.Permissions(create_public_threads=True).value
    channel = client.text_channel(fake_discord.general.id)

    with pytest.raises(discord.Forbidden) as refused:
        await channel.create_thread(name="nope", type=discord.ChannelType.public_thread)

    assert refused.value.code == 50013
    assert fake_discord.threads() == []


@pytest.mark.rate_limits(REALISTIC.with_windows(send=Window(2, 60.0)))
async def test_a_thread_has_its_own_send_bucket(
    fake_discord: FakeDiscord, client: ThreadBot
) -> None:
    channel = client.text_channel(fake_discord.general.id)
    thread = await channel.create_thread(name="busy", type=discord.ChannelType.public_thread)
    await channel.send("one")  # the "started a thread" line was the first of two sends
    fake_discord.rate_limits.exhaust("send", channel=fake_discord.general, for_s=600)

    sent = await asyncio.wait_for(thread.send("in the thread"), 5)

    assert sent.channel.id == thread.id
    stats = fake_discord.rate_limits.stats()
    assert stats.channels[thread.id][SEND].served == 1
    assert stats.channels[thread.id][SEND].limited == 0
