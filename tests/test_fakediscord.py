"""The fake Discord, driven by a minimal real discord.py bot defined here."""

from __future__ import annotations

import asyncio
import io
import json
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands
from PIL import Image

from tests.fakediscord import CommandNotVisible, DriverError, FakeDiscord, FileUpload


class RemixModal(discord.ui.Modal, title="Remix"):
    prompt: discord.ui.TextInput[RemixModal] = discord.ui.TextInput(
        label="Prompt", custom_id="prompt", default="a cat"
    )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"remixed: {self.prompt.value}")


class PanelView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)
        self.bumps = 0

    @discord.ui.button(label="Bump", custom_id="panel:bump")
    async def bump(self, interaction: discord.Interaction, _: discord.ui.Button[PanelView]) -> None:
        self.bumps += 1
        await interaction.response.edit_message(content=f"bumped {self.bumps}", view=self)

    @discord.ui.button(label="Remix", custom_id="panel:remix")
    async def remix(
        self, interaction: discord.Interaction, _: discord.ui.Button[PanelView]
    ) -> None:
        await interaction.response.send_modal(RemixModal())

    @discord.ui.select(
        custom_id="panel:color",
        options=[discord.SelectOption(label="red"), discord.SelectOption(label="blue")],
        row=1,
    )
    async def color(
        self, interaction: discord.Interaction, select: discord.ui.Select[PanelView]
    ) -> None:
        await interaction.response.edit_message(content=f"color {select.values[0]}")


admin = app_commands.Group(
    name="admin",
    description="Moderation",
    default_permissions=discord.Permissions(manage_guild=True),
)


@admin.command(name="ban", description="Ban a user")
async def admin_ban(interaction: discord.Interaction, user: discord.Member, reason: str) -> None:
    await interaction.response.send_message(
        f"banned {user.mention}: {reason}",
        ephemeral=True,
        allowed_mentions=discord.AllowedMentions.none(),
    )


class MiniBot(commands.Bot):
    """Just enough bot to exercise every path of the fake."""

    def __init__(self, guild_id: int) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_reactions = True
        super().__init__(
            command_prefix=commands.when_mentioned, intents=intents, guild_ready_timeout=0.05
        )
        self.guild = discord.Object(guild_id)
        self.release = asyncio.Event()
        self.errors: list[discord.HTTPException] = []
        self.reactions: list[tuple[str, int]] = []

    async def setup_hook(self) -> None:
        for command in COMMANDS:
            self.tree.add_command(command, guild=self.guild)
        await self.tree.sync(guild=self.guild)
        self.add_view(PanelView())  # persistent: its buttons work after a restart

    async def on_raw_reaction_add(self, event: discord.RawReactionActionEvent) -> None:
        if self.user is not None and event.user_id == self.user.id:
            return
        self.reactions.append((str(event.emoji), event.user_id))
        channel = self.get_channel(event.channel_id)
        assert isinstance(channel, discord.TextChannel)
        await channel.send(f"saw {event.emoji}")


def bot_of(interaction: discord.Interaction) -> MiniBot:
    assert isinstance(interaction.client, MiniBot)
    return interaction.client


@app_commands.command(description="Say hello")
async def hello(interaction: discord.Interaction, name: str) -> None:
    await interaction.response.send_message(f"Hello {name}!")


@app_commands.command(description="Think, then answer with a file")
async def slow(interaction: discord.Interaction) -> None:
    await interaction.response.defer(thinking=True)
    await interaction.followup.send("done", file=discord.File(io.BytesIO(b"clip"), "clip.mp4"))
    await interaction.followup.send("second")


@app_commands.command(description="A panel with buttons")
async def panel(interaction: discord.Interaction) -> None:
    await interaction.response.send_message("panel", view=PanelView())


@app_commands.command(description="Answer only when the test says so")
async def late(interaction: discord.Interaction) -> None:
    bot = bot_of(interaction)
    await bot.release.wait()
    try:
        await interaction.response.send_message("finally")
    except discord.HTTPException as error:
        bot.errors.append(error)


@app_commands.command(description="Upload a file of some size")
async def upload(interaction: discord.Interaction, size: int) -> None:
    try:
        await interaction.response.send_message(file=discord.File(io.BytesIO(b"x" * size), "x.bin"))
    except discord.HTTPException as error:
        bot_of(interaction).errors.append(error)


@app_commands.command(description="Describe an image")
async def animate(interaction: discord.Interaction, image: discord.Attachment) -> None:
    data = await image.read()
    await interaction.response.send_message(
        f"{image.filename} {len(data)} {image.width}x{image.height} {image.content_type}"
    )


@app_commands.command(description="Post, edit and react in the channel")
async def shout(interaction: discord.Interaction, text: str, safe: bool) -> None:
    await interaction.response.defer(ephemeral=True)
    assert isinstance(interaction.channel, discord.TextChannel)
    mentions = discord.AllowedMentions.none() if safe else discord.AllowedMentions.all()
    message = await interaction.channel.send(text, allowed_mentions=mentions)
    await message.edit(content=text + "!", allowed_mentions=mentions)
    await message.add_reaction("🔁")
    await interaction.edit_original_response(content="posted")


@app_commands.command(description="Send me a DM")
async def dm(interaction: discord.Interaction) -> None:
    try:
        await interaction.user.send("psst")
        await interaction.response.send_message("sent", ephemeral=True)
    except discord.Forbidden:
        await interaction.response.send_message("your DMs are closed", ephemeral=True)


@app_commands.command(description="Pick a fruit")
async def pick(interaction: discord.Interaction, fruit: str) -> None:
    await interaction.response.send_message(fruit)


@pick.autocomplete("fruit")
async def pick_fruit(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    fruits = ("apple", "apricot", "banana")
    return [app_commands.Choice(name=f, value=f) for f in fruits if f.startswith(current)]


COMMANDS: list[app_commands.Command[Any, Any, Any] | app_commands.Group] = [
    hello,
    slow,
    panel,
    late,
    upload,
    animate,
    shout,
    dm,
    pick,
    admin,
]


@pytest.fixture
async def bot(fake_discord: FakeDiscord) -> AsyncIterator[MiniBot]:
    client = MiniBot(fake_discord.guild.id)
    async with fake_discord.running(client):
        yield client


async def rest(
    fake: FakeDiscord, method: str, path: str, body: Any = None, *, auth: bool = True
) -> tuple[int, Any]:
    """A raw REST call, for what discord.py itself refuses to send."""
    headers = {"Authorization": f"Bot {fake.token}"} if auth else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, fake.api_base + path, json=body, headers=headers) as response,
    ):
        text = await response.text()
        return response.status, json.loads(text) if text else None


async def test_login_ready_and_guild_cache(fake_discord: FakeDiscord, bot: MiniBot) -> None:
    guild = bot.get_guild(fake_discord.guild.id)
    assert guild is not None
    assert guild.name == "Test Server"
    assert guild.default_role.id == guild.id
    assert {c.name for c in guild.text_channels} == {"general", "other"}
    assert guild.me is not None
    assert bot.user is not None
    assert bot.user.id == fake_discord.bot_user.id
    assert bot.application_id == fake_discord.world.application_id


async def test_command_sync_stores_commands_with_ids(
    fake_discord: FakeDiscord, bot: MiniBot
) -> None:
    registered = {c["name"]: c for c in fake_discord.registered_commands(fake_discord.guild)}
    assert "hello" in registered
    assert registered["admin"]["default_member_permissions"] == str(1 << 5)
    fetched = await bot.tree.fetch_commands(guild=bot.guild)
    assert {c.id for c in fetched} == {int(c["id"]) for c in registered.values()}


async def test_slash_command_reply(fake_discord: FakeDiscord, bot: MiniBot) -> None:
    handle = await fake_discord.invoke("hello", {"name": "Ada"}, user=fake_discord.alice)
    reply = await handle.response()
    assert reply.content == "Hello Ada!"
    assert handle.ack_type == 4
    assert not handle.ephemeral
    assert fake_discord.channel_messages(fake_discord.general) == [reply]


async def test_defer_then_followups_with_a_file(fake_discord: FakeDiscord, bot: MiniBot) -> None:
    handle = await fake_discord.invoke("slow", user=fake_discord.bob)
    first = await handle.followup(0)
    second = await handle.followup(1)
    assert handle.ack_type == 5
    assert first is handle.original, "the first follow-up replaces the thinking message"
    assert first.content == "done"
    assert first.attachment("clip.mp4").data == b"clip"
    assert second.content == "second"
    async with aiohttp.ClientSession() as session, session.get(first.attachments[0].url) as got:
        assert await got.read() == b"clip"


async def test_button_updates_message_and_modal_submits(
    fake_discord: FakeDiscord, bot: MiniBot
) -> None:
    panel_message = await (await fake_discord.invoke("panel", user=fake_discord.alice)).response()
    assert panel_message.custom_ids() == ["panel:bump", "panel:remix", "panel:color"]

    bump = await fake_discord.click(panel_message, "panel:bump", user=fake_discord.bob)
    assert await bump.acknowledged() == 7
    assert fake_discord.message(panel_message.id).content == "bumped 1"

    remix = await fake_discord.click(panel_message, "panel:remix", user=fake_discord.bob)
    modal = await remix.modal_opened()
    assert modal["title"] == "Remix"
    submitted = await fake_discord.submit_modal(remix, {"prompt": "a dog"})
    assert (await submitted.response()).content == "remixed: a dog"
    with pytest.raises(DriverError):
        await fake_discord.submit_modal(remix, {"prompt": "again"})

    color = await fake_discord.select(panel_message, "panel:color", ["blue"], user=fake_discord.bob)
    await color.acknowledged()
    assert fake_discord.message(panel_message.id).content == "color blue"


async def test_ephemeral_reply_is_seen_only_by_the_invoker(
    fake_discord: FakeDiscord, bot: MiniBot
) -> None:
    carol, bob = fake_discord.carol, fake_discord.bob
    handle = await fake_discord.invoke("admin ban", {"user": bob, "reason": "spam"}, user=carol)
    reply = await handle.response()
    assert handle.ephemeral
    assert reply.content == f"banned {bob.mention}: spam"
    assert reply.pings.nobody
    assert fake_discord.channel_messages(fake_discord.general) == []
    assert fake_discord.channel_messages(fake_discord.general, viewer=carol) == [reply]
    with pytest.raises(DriverError, match="cannot see ephemeral"):
        await fake_discord.react(reply, "🔁", user=bob)


async def test_driver_refuses_what_discord_would(fake_discord: FakeDiscord, bot: MiniBot) -> None:
    with pytest.raises(CommandNotVisible):
        await fake_discord.invoke(
            "admin ban", {"user": fake_discord.bob, "reason": "x"}, user=fake_discord.bob
        )
    with pytest.raises(DriverError, match="no option 'nmae'"):
        await fake_discord.invoke("hello", {"nmae": "x"}, user=fake_discord.alice)
    with pytest.raises(DriverError, match="requires option 'name'"):
        await fake_discord.invoke("hello", {}, user=fake_discord.alice)
    with pytest.raises(DriverError, match="needs a subcommand"):
        await fake_discord.invoke("admin", {}, user=fake_discord.carol)
    with pytest.raises(DriverError, match="does not fit"):
        await fake_discord.invoke("upload", {"size": "big"}, user=fake_discord.alice)
    forged = await fake_discord.invoke(
        "admin ban",
        {"user": fake_discord.alice, "reason": "forged"},
        user=fake_discord.bob,
        skip_permission_check=True,
        forge_member={"permissions": str(discord.Permissions.all().value)},
    )
    assert (await forged.response()).content.startswith("banned")


async def test_three_second_deadline(fake_discord: FakeDiscord, bot: MiniBot) -> None:
    handle = await fake_discord.invoke("late", user=fake_discord.alice)
    fake_discord.world.clock.advance(3.5)
    bot.release.set()
    rejection = await handle.rejected()
    assert (rejection.status, rejection.code) == (404, 10062)
    assert not handle.acked
    assert [e.code for e in bot.errors] == [10062]


async def test_double_ack_and_followup_before_ack(fake_discord: FakeDiscord, bot: MiniBot) -> None:
    handle = await fake_discord.invoke("late", user=fake_discord.alice)
    app, token = fake_discord.world.application_id, handle.record.token
    status, body = await rest(fake_discord, "POST", f"/webhooks/{app}/{token}", {"content": "x"})
    assert (status, body["code"]) == (404, 10015)

    bot.release.set()
    await handle.acknowledged()
    callback = f"/interactions/{handle.id}/{token}/callback"
    status, body = await rest(fake_discord, "POST", callback, {"type": 4, "data": {"content": "y"}})
    assert (status, body["code"]) == (400, 40060)


async def test_token_expires_after_fifteen_minutes(fake_discord: FakeDiscord, bot: MiniBot) -> None:
    handle = await fake_discord.invoke("hello", {"name": "x"}, user=fake_discord.alice)
    await handle.response()
    fake_discord.world.clock.advance(15 * 60 + 1)
    app, token = fake_discord.world.application_id, handle.record.token
    path = f"/webhooks/{app}/{token}/messages/@original"
    status, body = await rest(fake_discord, "PATCH", path, {"content": "late"}, auth=False)
    assert (status, body["code"]) == (401, 50027)


async def test_upload_limit(fake_discord: FakeDiscord, bot: MiniBot) -> None:
    fake_discord.set_upload_limit(1024)
    handle = await fake_discord.invoke("upload", {"size": 2048}, user=fake_discord.alice)
    rejection = await handle.rejected()
    assert (rejection.status, rejection.code) == (413, 40005)
    assert not handle.acked
    ok = await fake_discord.invoke("upload", {"size": 1024}, user=fake_discord.alice)
    assert (await ok.response()).attachments[0].size == 1024


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": "x" * 2001}, "content"),
        ({"embeds": [{"title": "t" * 257}]}, "embeds"),
        ({"embeds": [{"description": "d" * 4000}, {"description": "d" * 2001}]}, "embeds"),
        ({"components": [{"type": 1, "components": []}] * 6}, "components"),
        (
            {
                "components": [
                    {"type": 1, "components": [{"type": 2, "style": 1, "custom_id": "c" * 101}]}
                ]
            },
            "components",
        ),
    ],
)
async def test_message_limits(fake_discord: FakeDiscord, body: dict[str, Any], field: str) -> None:
    status, error = await rest(
        fake_discord, "POST", f"/channels/{fake_discord.general.id}/messages", body
    )
    assert (status, error["code"]) == (400, 50035)
    assert field in error["errors"]


async def test_channel_messages_reactions_and_pings(
    fake_discord: FakeDiscord, bot: MiniBot
) -> None:
    everyone = f"@everyone {fake_discord.bob.mention} {fake_discord.role('Moderators').mention}"
    safe = await fake_discord.invoke(
        "shout", {"text": everyone, "safe": True}, user=fake_discord.alice
    )
    assert (await safe.response()).content == "posted"
    posted = fake_discord.channel_messages(fake_discord.general)[0]
    assert posted.content == everyone + "!"
    assert len(posted.revisions) == 1
    assert len(posted.edit_times) == 1
    assert posted.reaction_users("🔁") == [fake_discord.bot_user.id]
    assert posted.pings.nobody
    assert posted.allowed_mentions == {"parse": []}

    loud = await fake_discord.invoke(
        "shout", {"text": everyone, "safe": False}, user=fake_discord.alice
    )
    await loud.response()
    loud_message = fake_discord.channel_messages(fake_discord.general)[-1]
    assert loud_message.pings.everyone
    assert fake_discord.alice.id in fake_discord.notified_users(loud_message)

    await fake_discord.react(posted, "🔁", user=fake_discord.bob)
    seen = await fake_discord.wait_for_message(
        fake_discord.general, lambda m: m.content == "saw 🔁"
    )
    assert seen.author is fake_discord.bot_user
    assert bot.reactions[-1] == ("🔁", fake_discord.bob.id)
    route = ("PATCH", "/channels/{channel_id}/messages/{message_id}")
    assert fake_discord.request_counts()[route] == 2


async def test_attachment_option_is_served(fake_discord: FakeDiscord, bot: MiniBot) -> None:
    png = io.BytesIO()
    Image.new("RGB", (32, 16), "red").save(png, format="PNG")
    image = FileUpload("cat.png", png.getvalue())
    handle = await fake_discord.invoke(
        "animate", user=fake_discord.alice, attachments={"image": image}
    )
    reply = await handle.response()
    assert reply.content == f"cat.png {len(png.getvalue())} 32x16 image/png"


async def test_direct_messages(fake_discord: FakeDiscord, bot: MiniBot) -> None:
    handle = await fake_discord.invoke("dm", user=fake_discord.alice)
    assert (await handle.response()).content == "sent"
    assert [m.content for m in fake_discord.dms(fake_discord.alice)] == ["psst"]
    fake_discord.bob.dms_open = False
    closed = await fake_discord.invoke("dm", user=fake_discord.bob)
    assert (await closed.response()).content == "your DMs are closed"


async def test_autocomplete(fake_discord: FakeDiscord, bot: MiniBot) -> None:
    handle = await fake_discord.autocomplete(
        "pick", {"fruit": "ap"}, focused="fruit", user=fake_discord.alice
    )
    await handle.acknowledged()
    assert [c["value"] for c in handle.choices or []] == ["apple", "apricot"]


async def test_reconnect_resumes_without_losing_an_interaction(
    fake_discord: FakeDiscord, bot: MiniBot
) -> None:
    resumed = asyncio.Event()

    async def on_resumed() -> None:
        resumed.set()

    bot.add_listener(on_resumed)
    reconnect = asyncio.create_task(fake_discord.force_reconnect())
    await asyncio.sleep(0)  # RECONNECT is queued before the interaction below
    handle = await fake_discord.invoke("hello", {"name": "again"}, user=fake_discord.alice)
    await reconnect
    assert (await handle.response()).content == "Hello again!"
    await asyncio.wait_for(resumed.wait(), 5)
    assert len(fake_discord.channel_messages(fake_discord.general)) == 1


async def test_bad_token_is_refused(fake_discord: FakeDiscord) -> None:
    client = MiniBot(fake_discord.guild.id)
    with pytest.raises(discord.LoginFailure):
        await client.start("not-the-token")
    await client.close()


async def test_gateway_closes_4004_on_bad_token_and_speaks_zlib(fake_discord: FakeDiscord) -> None:
    inflate = zlib.decompressobj()
    url = fake_discord.gateway_url + "?v=10&encoding=json&compress=zlib-stream"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        hello = json.loads(inflate.decompress(await ws.receive_bytes()))
        assert hello["op"] == 10
        await ws.send_json({"op": 2, "d": {"token": "wrong", "intents": 0, "properties": {}}})
        closing = await ws.receive()
        assert closing.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 4004


async def test_gateway_invalidates_an_unknown_session(fake_discord: FakeDiscord) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(fake_discord.gateway_url) as ws,
    ):
        assert (await ws.receive_json())["op"] == 10
        resume = {"token": fake_discord.token, "session_id": "gone", "seq": 3}
        await ws.send_json({"op": 6, "d": resume})
        assert await ws.receive_json() == {"op": 9, "d": False, "s": None, "t": None}


async def test_unknown_routes_are_recorded(fake_discord: FakeDiscord) -> None:
    status, _ = await rest(fake_discord, "GET", "/no/such/route")
    assert status == 404
    assert fake_discord.problems() == ["unknown route: GET /api/v10/no/such/route"]
    fake_discord.server.unknown_routes.clear()


async def test_history_and_interaction_webhook_messages(
    fake_discord: FakeDiscord, bot: MiniBot
) -> None:
    first = await (
        await fake_discord.invoke("hello", {"name": "1"}, user=fake_discord.bob)
    ).response()
    handle = await fake_discord.invoke("hello", {"name": "2"}, user=fake_discord.bob)
    second = await handle.response()
    channel = bot.get_channel(fake_discord.general.id)
    assert isinstance(channel, discord.TextChannel)
    history = [
        m.content async for m in channel.history(limit=10, after=discord.Object(first.id - 1))
    ]
    assert history == [first.content, second.content]

    app, token = fake_discord.world.application_id, handle.record.token
    original = f"/webhooks/{app}/{token}/messages/@original"
    status, body = await rest(fake_discord, "GET", original, auth=False)
    assert (status, body["content"]) == (200, "Hello 2!")
    status, _ = await rest(fake_discord, "DELETE", original, auth=False)
    assert status == 204
    assert fake_discord.message(second.id).deleted
    status, body = await rest(fake_discord, "GET", original, auth=False)
    assert (status, body["code"]) == (404, 10008)


async def test_buttons_work_after_the_bot_restarts(fake_discord: FakeDiscord) -> None:
    async with fake_discord.running(MiniBot(fake_discord.guild.id)):
        handle = await fake_discord.invoke("panel", user=fake_discord.alice)
        panel_message = await handle.response()
    assert fake_discord.server.gateway.connected_session() is None

    async with fake_discord.running(MiniBot(fake_discord.guild.id)):
        click = await fake_discord.click(panel_message, "panel:bump", user=fake_discord.bob)
        assert await click.acknowledged() == 7
    assert fake_discord.message(panel_message.id).content == "bumped 1"
