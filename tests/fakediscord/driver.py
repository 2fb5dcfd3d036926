"""The test driver: what Discord users do (commands, buttons, modals, reactions) and what
they see (channel messages, files, DMs, pings). See README.md for a tour."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar

import discord

from tests.fakediscord.commands import InvocationBuilder, check_visible
from tests.fakediscord.errors import ApiError, DriverError
from tests.fakediscord.interactions import (
    APPLICATION_COMMAND,
    AUTOCOMPLETE,
    COMPONENT,
    MODAL_SUBMIT,
    InteractionRecord,
)
from tests.fakediscord.limits import LINK_STYLE, SELECT_TYPES, modal_inputs
from tests.fakediscord.mentions import notified_users
from tests.fakediscord.ratelimits import REALISTIC, RateLimiter, RateLimitProfile
from tests.fakediscord.server import FakeDiscordServer
from tests.fakediscord.state import (
    ADMINISTRATOR,
    Channel,
    Guild,
    Message,
    Role,
    User,
    World,
)

T = TypeVar("T")
MANAGE_GUILD = discord.Permissions(manage_guild=True).value


def default_world() -> World:
    """Guild "Test Server": @everyone, Admin (Administrator), Moderators (no permissions);
    #general and #other; alice and bob (plain), carol (Manage Server), dave (Moderators);
    the bot. The guild's owner is a separate user, "owner"."""
    world = World()
    owner = world.add_user("owner")
    guild = world.add_guild("Test Server", owner=owner)
    admin = world.add_role(guild, "Admin", ADMINISTRATOR)
    moderators = world.add_role(guild, "Moderators", 0)
    managers = world.add_role(guild, "Managers", MANAGE_GUILD)
    world.add_channel(guild, "general")
    world.add_channel(guild, "other")
    for name in ("alice", "bob", "carol", "dave", "erin"):
        world.add_member(guild, world.add_user(name))
    world.add_member(guild, world.add_user("admin"), admin)
    guild.members[_named(world, "carol").id].role_ids.append(managers.id)
    guild.members[_named(world, "dave").id].role_ids.append(moderators.id)
    return world


def _named(world: World, name: str) -> User:
    for user in world.users.values():
        if user.name == name:
            return user
    raise DriverError(f"no user named {name!r}")


class InteractionHandle:
    """One interaction a test started, and everything the bot did with it."""

    def __init__(self, fake: FakeDiscord, record: InteractionRecord) -> None:
        self.fake = fake
        self.record = record

    @property
    def id(self) -> int:
        return self.record.id

    @property
    def user(self) -> User:
        return self.record.user

    @property
    def ack_type(self) -> int | None:
        """4 message, 5 deferred (thinking), 6 deferred update, 7 update, 8 choices, 9 modal."""
        return self.record.ack_type

    @property
    def acked(self) -> bool:
        return self.record.ack_type is not None

    @property
    def deferred(self) -> bool:
        return self.record.ack_type in (5, 6)

    @property
    def ack_latency(self) -> float | None:
        """Seconds from dispatch to the accepted acknowledgement."""
        if self.record.acked_at is None:
            return None
        return self.record.acked_at - self.record.created_at

    @property
    def original(self) -> Message | None:
        message_id = self.record.original_message_id
        return None if message_id is None else self.fake.world.messages[message_id]

    @property
    def ephemeral(self) -> bool:
        return self.original is not None and self.original.ephemeral

    @property
    def followups(self) -> list[Message]:
        return [self.fake.world.messages[i] for i in self.record.followup_ids]

    @property
    def modal(self) -> dict[str, Any] | None:
        return self.record.modal

    @property
    def choices(self) -> list[dict[str, Any]] | None:
        return self.record.choices

    @property
    def rejections(self) -> list[ApiError]:
        """Calls on this interaction the fake refused (e.g. code 10062, 40060)."""
        return list(self.record.rejections)

    async def _wait(self, what: str, predicate: Callable[[], T | None], timeout: float) -> T:
        try:
            return await self.fake.wait_for(predicate, timeout)
        except DriverError:
            refused = [str(e) for e in self.record.rejections]
            raise DriverError(
                f"/{self.record.name or 'component'} by {self.user.name}: no {what} within "
                f"{timeout}s (ack type {self.ack_type}, refused calls {refused}, "
                f"bot connected: {self.fake.server.gateway.connected_session() is not None})"
            ) from None

    async def acknowledged(self, timeout: float = 5.0) -> int:
        """Wait for the acknowledgement; returns its callback type."""
        return await self._wait("acknowledgement", lambda: self.record.ack_type, timeout)

    async def response(self, timeout: float = 5.0) -> Message:
        """Wait for the original response to have content (a deferral to be edited)."""

        def ready() -> Message | None:
            original = self.original
            return original if original is not None and not original.loading else None

        return await self._wait("response", ready, timeout)

    async def followup(self, index: int = 0, timeout: float = 5.0) -> Message:
        """Wait for the index-th follow-up (the first may be the edited deferral)."""
        await self._wait(f"follow-up #{index}", lambda: len(self.followups) > index, timeout)
        return self.followups[index]

    async def modal_opened(self, timeout: float = 5.0) -> dict[str, Any]:
        return await self._wait("modal", lambda: self.record.modal, timeout)

    async def rejected(self, code: int | None = None, timeout: float = 5.0) -> ApiError:
        """Wait until the fake refuses a call on this interaction (with this error code)."""

        def found() -> ApiError | None:
            matching = [e for e in self.record.rejections if code is None or e.code == code]
            return matching[0] if matching else None

        return await self._wait(f"refusal (code {code})", found, timeout)


class FakeDiscord:
    """A fake Discord server plus the driver API the tests use."""

    def __init__(
        self, world: World | None = None, *, rate_limits: RateLimitProfile = REALISTIC
    ) -> None:
        self.world = world or default_world()
        self.server = FakeDiscordServer(self.world, rate_limits)

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()

    # addresses and identities

    @property
    def api_base(self) -> str:
        """What discord.http.Route.BASE (DISCORD_API_BASE) must be set to."""
        return self.server.api_base

    @property
    def gateway_url(self) -> str:
        """What DiscordWebSocket.DEFAULT_GATEWAY (DISCORD_GATEWAY_URL) must be set to."""
        return self.server.gateway.url

    @property
    def token(self) -> str:
        return self.world.token

    @property
    def rate_limits(self) -> RateLimiter:
        """Discord's rate limits as emulated: `.profile` (switch any time), `.stats()`,
        `.exhaust(...)`, `.records`."""
        return self.server.rate_limits

    @property
    def bot_user(self) -> User:
        return self.world.bot

    @property
    def guild(self) -> Guild:
        return self.world.guilds[min(self.world.guilds)]

    def user(self, name: str) -> User:
        return _named(self.world, name)

    def channel(self, name: str, guild: Guild | None = None) -> Channel:
        """A text channel or thread by name."""
        found = guild or self.guild
        for channel in (*found.channels.values(), *found.threads.values()):
            if channel.name == name:
                return channel
        raise DriverError(f"no channel #{name}")

    def threads(self, parent: Channel | None = None) -> list[Channel]:
        """The guild's threads (in ``parent`` only, if given), oldest first."""
        guild = self.guild if parent is None else self.world.guild_of(parent)
        assert guild is not None
        return [t for t in guild.threads.values() if parent is None or t.parent_id == parent.id]

    def thread_of(self, message: Message | int) -> Channel | None:
        """The thread started from the message, if any."""
        current = self.world.messages[message if isinstance(message, int) else message.id]
        return None if current.thread_id is None else self.world.channels[current.thread_id]

    def role(self, name: str, guild: Guild | None = None) -> Role:
        for role in (guild or self.guild).roles.values():
            if role.name == name:
                return role
        raise DriverError(f"no role {name!r}")

    @property
    def alice(self) -> User:
        return self.user("alice")

    @property
    def bob(self) -> User:
        return self.user("bob")

    @property
    def carol(self) -> User:
        """Has Manage Server (through the "Managers" role)."""
        return self.user("carol")

    @property
    def dave(self) -> User:
        """Has the "Moderators" role, which carries no permissions."""
        return self.user("dave")

    @property
    def general(self) -> Channel:
        return self.channel("general")

    @property
    def other(self) -> Channel:
        return self.channel("other")

    def add_member(self, name: str, *roles: Role, guild: Guild | None = None) -> User:
        """A new user in the guild (no GUILD_MEMBER_ADD: that needs the privileged intent)."""
        user = self.world.add_user(name)
        self.world.add_member(guild or self.guild, user, *roles)
        return user

    def set_upload_limit(self, limit_bytes: int, guild: Guild | None = None) -> None:
        (guild or self.guild).upload_limit = limit_bytes

    # the bot's connection

    async def wait_connected(self, timeout: float = 10.0) -> None:
        """Wait until a client has identified (READY and GUILD_CREATEs sent)."""
        await self.wait_for(lambda: self.server.gateway.connected_session() is not None, timeout)

    @contextlib.asynccontextmanager
    async def running(
        self,
        client: discord.Client,
        *,
        token: str | None = None,
        wait_ready: bool = True,
        timeout: float = 15.0,
    ) -> AsyncIterator[discord.Client]:
        """Run `client.start()` against the fake until the block ends, then close it."""
        task = asyncio.create_task(client.start(token or self.token))
        ready = asyncio.create_task(self._client_ready(client, wait_ready, timeout))
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            ready.cancel()
            task.result()
            raise DriverError("the client stopped before it was ready")
        try:
            ready.result()
            yield client
        finally:
            await client.close()
            await asyncio.wait_for(task, timeout)

    async def _client_ready(self, client: discord.Client, wait_ready: bool, timeout: float) -> None:
        await self.wait_connected(timeout)
        if wait_ready:
            await asyncio.wait_for(client.wait_until_ready(), timeout)

    async def force_reconnect(self, *, resume: bool = True, timeout: float = 10.0) -> None:
        """Send RECONNECT (op 7; resume=False: INVALID_SESSION) and wait for the client to
        RESUME (or re-IDENTIFY)."""
        await self.server.gateway.force_reconnect(resume=resume, timeout=timeout)

    # users acting

    def registered_commands(self, guild: Guild | None = None) -> list[dict[str, Any]]:
        return list(self.server.commands.scopes.get(None if guild is None else guild.id, []))

    async def invoke(
        self,
        command: str,
        options: Mapping[str, Any] | None = None,
        *,
        user: User,
        channel: Channel | None = None,
        attachments: Mapping[str, Any] | None = None,
        forge_member: dict[str, Any] | None = None,
        skip_permission_check: bool = False,
        client_checks: bool = True,
    ) -> InteractionHandle:
        """Use a slash command: `invoke("admin ban", {"user": fake.bob}, user=fake.carol)`.

        Option values: str/int/float/bool, User, Role, Channel, FileUpload (also accepted in
        `attachments`). `forge_member` overrides fields of the member payload (e.g.
        {"permissions": "8"}) the way a tampered client could not, but a bug in your
        reasoning could assume. `skip_permission_check` mimics a guild admin granting the
        command to someone lacking default_member_permissions. `client_checks=False` sends
        values Discord's client would refuse to send (out of an option's length or range, not
        a choice), as a modified client or a script can.
        """
        root, *path = command.split()
        channel = channel or self.general
        spec = self.server.commands.find(self.world.guild_of(channel), root)
        if not skip_permission_check:
            check_visible(self.world, spec, channel, user)
        self._check_can_see(channel, user)
        values = {**(options or {}), **(attachments or {})}
        builder = InvocationBuilder(self.world, channel, user, client_checks=client_checks)
        data = builder.build(spec, path, values)
        record = self.server.interactions.create(
            APPLICATION_COMMAND,
            data,
            user=user,
            channel=channel,
            name=root,
            forge_member=forge_member,
        )
        return await self._started(record)

    async def autocomplete(
        self,
        command: str,
        options: Mapping[str, Any],
        *,
        focused: str,
        user: User,
        channel: Channel | None = None,
    ) -> InteractionHandle:
        """Type into an autocomplete option; the bot's suggestions land in handle.choices."""
        root, *path = command.split()
        channel = channel or self.general
        spec = self.server.commands.find(self.world.guild_of(channel), root)
        builder = InvocationBuilder(self.world, channel, user, focused=focused)
        data = builder.build(spec, path, options)
        record = self.server.interactions.create(
            AUTOCOMPLETE, data, user=user, channel=channel, name=root
        )
        return await self._started(record)

    async def click(
        self,
        message: Message | int,
        custom_id: str,
        *,
        user: User,
        forge_member: dict[str, Any] | None = None,
    ) -> InteractionHandle:
        """Press a button on the message as it is now."""
        current = self._visible_message(message, user)
        component = current.component(custom_id)
        if component.get("type") != 2 or component.get("style") == LINK_STYLE:
            raise DriverError(f"{custom_id!r} is not a clickable button: {component}")
        if component.get("disabled"):
            raise DriverError(f"button {custom_id!r} is disabled")
        return await self._component(current, component, {}, user, forge_member)

    async def forge_click(
        self, message: Message | int, custom_id: str, *, user: User
    ) -> InteractionHandle:
        """Press a button the message does not show, as a tampered client could were Discord
        not to check: the click's copy of the message carries the button (discord.py
        dispatches only ids it finds there); the message itself stays as it is."""
        current = self._visible_message(message, user)
        shown = current.components
        button = {"type": 2, "style": 1, "label": "forged", "custom_id": custom_id}
        current.components = [*shown, {"type": 1, "components": [button]}]
        try:
            record = self.server.interactions.create(
                COMPONENT,
                {"custom_id": custom_id, "component_type": 2},
                user=user,
                channel=self.world.channel(current.channel_id),
                source=current,
            )
        finally:
            current.components = shown
        return await self._started(record)

    async def select(
        self, message: Message | int, custom_id: str, values: list[str], *, user: User
    ) -> InteractionHandle:
        """Choose values in a select menu on the message."""
        current = self._visible_message(message, user)
        component = current.component(custom_id)
        if component.get("type") not in SELECT_TYPES:
            raise DriverError(f"{custom_id!r} is not a select menu: {component}")
        if not component.get("min_values", 1) <= len(values) <= component.get("max_values", 1):
            raise DriverError(f"{len(values)} values are outside the select's bounds")
        return await self._component(current, component, {"values": values}, user, None)

    async def _component(
        self,
        message: Message,
        component: dict[str, Any],
        extra: dict[str, Any],
        user: User,
        forge_member: dict[str, Any] | None,
    ) -> InteractionHandle:
        data = {"custom_id": component["custom_id"], "component_type": component["type"]} | extra
        if "id" in component:
            data["id"] = component["id"]
        record = self.server.interactions.create(
            COMPONENT,
            data,
            user=user,
            channel=self.world.channel(message.channel_id),
            source=message,
            forge_member=forge_member,
        )
        return await self._started(record)

    async def submit_modal(
        self,
        handle: InteractionHandle,
        values: Mapping[str, str | list[str]],
        *,
        user: User | None = None,
        client_checks: bool = True,
    ) -> InteractionHandle:
        """Fill in and submit the modal the bot opened on `handle` (defaults kept).

        `client_checks=False` submits values Discord's client would not (a required input
        left empty, a value longer than the input allows).
        """
        opened = handle.record
        if opened.modal is None:
            raise DriverError("the bot opened no modal on this interaction")
        if opened.modal_submitted:
            raise DriverError("this modal was already submitted")
        components = _modal_submission(opened.modal, values, client_checks=client_checks)
        opened.modal_submitted = True
        source = None
        if opened.source_message_id is not None:
            source = self.world.messages[opened.source_message_id]
        record = self.server.interactions.create(
            MODAL_SUBMIT,
            {"custom_id": opened.modal["custom_id"], "components": components},
            user=user or opened.user,
            channel=opened.channel,
            source=source,
        )
        return await self._started(record)

    async def react(self, message: Message | int, emoji: str, *, user: User) -> None:
        self.server.reactions.add(self._visible_message(message, user), emoji, user)
        await self.world.notify()

    async def unreact(self, message: Message | int, emoji: str, *, user: User) -> None:
        self.server.reactions.remove(self._visible_message(message, user), emoji, user)
        await self.world.notify()

    async def post(self, channel: Channel, content: str, *, user: User) -> Message:
        """A user writes a plain message in a channel."""
        self._check_can_see(channel, user)
        message = self.server.messages.create(channel, user, {"content": content}, [])
        await self.world.notify()
        return message

    async def _started(self, record: InteractionRecord) -> InteractionHandle:
        await self.world.notify()
        return InteractionHandle(self, record)

    def _check_can_see(self, channel: Channel, user: User) -> None:
        guild = self.world.guild_of(channel)
        if guild is not None and user.id not in guild.members:
            raise DriverError(f"{user.name} is not a member of {guild.name}")
        if channel.recipient is not None and channel.recipient is not user:
            raise DriverError(f"{user.name} cannot see another user's DMs")

    def _visible_message(self, message: Message | int, user: User) -> Message:
        message_id = message if isinstance(message, int) else message.id
        current = self.world.messages.get(message_id)
        if current is None or current.deleted:
            raise DriverError(f"message {message_id} does not exist (any more)")
        self._check_can_see(self.world.channel(current.channel_id), user)
        if current.visible_to is not None and current.visible_to != user.id:
            raise DriverError(f"{user.name} cannot see ephemeral message {message_id}")
        return current

    # what users see

    def message(self, message_id: int) -> Message:
        """The message's current state (edits applied), deleted ones included."""
        return self.world.messages[message_id]

    def channel_messages(self, channel: Channel, *, viewer: User | None = None) -> list[Message]:
        """Live messages, oldest first; ephemeral ones only when `viewer` is their user."""
        return self.world.visible_messages(channel, viewer=viewer)

    def dms(self, user: User) -> list[Message]:
        """Messages in the user's DM channel with the bot."""
        return self.world.visible_messages(self.world.dm_channel(user))

    def notified_users(self, message: Message) -> set[int]:
        """Every user the message pinged (role members and @everyone expanded)."""
        channel = self.world.channel(message.channel_id)
        return notified_users(self.world, channel, message.pings)

    async def wait_for(self, predicate: Callable[[], T | None], timeout: float = 5.0) -> T:
        """Re-check `predicate` on every change of the fake until truthy; return its value."""
        return await self.world.wait_for(predicate, timeout)

    async def wait_for_message(
        self,
        channel: Channel,
        predicate: Callable[[Message], bool] = lambda m: True,
        *,
        viewer: User | None = None,
        timeout: float = 5.0,
    ) -> Message:
        """The newest message in the channel matching `predicate`, once there is one."""

        def newest() -> Message | None:
            matching = [m for m in self.channel_messages(channel, viewer=viewer) if predicate(m)]
            return matching[-1] if matching else None

        return await self.wait_for(newest, timeout)

    # bookkeeping

    def request_counts(self) -> Counter[tuple[str, str]]:
        """Calls per (method, route template), e.g. ("PATCH", "/channels/{channel_id}/...")."""
        return self.server.request_counts()

    def problems(self) -> list[str]:
        """What makes the fixture fail a test: unknown routes, fake crashes, bad frames."""
        server = self.server
        return [
            *(f"unknown route: {r}" for r in server.unknown_routes),
            *(f"fake discord crashed: {e}" for e in server.server_errors),
            *(f"gateway protocol error: {e}" for e in server.gateway.protocol_errors),
        ]


def _modal_submission(
    modal: dict[str, Any], values: Mapping[str, str | list[str]], *, client_checks: bool = True
) -> list[dict[str, Any]]:
    """The components of a modal submit, mirroring the modal, as Discord's client sends them."""
    known = {i["custom_id"] for i in modal_inputs(modal)}
    selects = {
        c["component"]["custom_id"]
        for c in modal.get("components") or []
        if c.get("type") == 18 and c.get("component", {}).get("type") in SELECT_TYPES
    }
    unknown = set(values) - known - selects
    if unknown:
        raise DriverError(f"the modal has no inputs {sorted(unknown)}; it has {sorted(known)}")
    submitted = []
    for component in modal.get("components") or []:
        if component.get("type") == 1:
            children = [
                _submitted(c, values, client_checks) for c in component.get("components") or []
            ]
            submitted.append({"type": 1, "components": children})
        elif component.get("type") == 18:
            submitted.append(
                {"type": 18, "component": _submitted(component["component"], values, client_checks)}
            )
    return submitted


def _submitted(
    component: dict[str, Any], values: Mapping[str, str | list[str]], client_checks: bool
) -> dict[str, Any]:
    custom_id = component["custom_id"]
    if component["type"] in SELECT_TYPES:
        chosen = values.get(custom_id, [])
        return {"type": component["type"], "custom_id": custom_id, "values": list(chosen)}
    value = values.get(custom_id, component.get("value") or "")
    if not isinstance(value, str):
        raise DriverError(f"text input {custom_id!r} takes a string, not {value!r}")
    if not client_checks:
        return {"type": 4, "custom_id": custom_id, "value": value}
    if component.get("required", True) and not value:
        raise DriverError(f"text input {custom_id!r} is required")
    if not component.get("min_length", 0) <= len(value) <= component.get("max_length", 4000):
        raise DriverError(f"text input {custom_id!r}: length {len(value)} is out of bounds")
    return {"type": 4, "custom_id": custom_id, "value": value}
