"""The fake's world: users, guilds, roles, channels, members, messages, attachments.

Everything the REST routes, the gateway and the driver read or change lives here, and every
change is followed by `notify()` so that `wait_for` wakes up without polling.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import discord

from tests.fakediscord import errors
from tests.fakediscord.errors import DriverError

T = TypeVar("T")

DISCORD_EPOCH_MS = 1420070400000
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
EPHEMERAL = 64
LOADING = 128
HAS_THREAD = 1 << 5  # message flag: a thread was started from this message
TEXT_CHANNEL, DM_CHANNEL, PUBLIC_THREAD, PRIVATE_THREAD = 0, 1, 11, 12
VOICE_CHANNEL = 2  # its text chat takes messages, not threads
THREAD_TYPES = (PUBLIC_THREAD, PRIVATE_THREAD)
THREAD_ARCHIVE_MINUTES = (60, 1440, 4320, 10080)

EVERYONE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    read_message_history=True,
    add_reactions=True,
    embed_links=True,
    attach_files=True,
    use_application_commands=True,
).value
CREATE_PUBLIC_THREADS = discord.Permissions(create_public_threads=True).value
CREATE_PRIVATE_THREADS = discord.Permissions(create_private_threads=True).value
# What reelbot's invite link asks for (bot/invite.py), plus Mention Everyone for ping tests.
BOT_PERMISSIONS = (
    EVERYONE_PERMISSIONS
    | CREATE_PUBLIC_THREADS
    | discord.Permissions(mention_everyone=True, send_messages_in_threads=True).value
)
ALL_PERMISSIONS = discord.Permissions.all().value
ADMINISTRATOR = discord.Permissions(administrator=True).value


class Clock:
    """Monotonic time the tests can move forward (interaction deadlines, token expiry)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def timestamp(self) -> str:
        moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.offset)
        return moment.isoformat()


class Snowflakes:
    """Discord ids from the wall clock, so discord.py's snowflake_time() stays sensible."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        candidate = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last = max(candidate, self._last + 1)
        return self._last


@dataclass(eq=False)
class User:
    id: int
    name: str
    bot: bool = False
    dms_open: bool = True

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "username": self.name,
            "discriminator": "0",
            "global_name": self.name,
            "avatar": None,
            "public_flags": 0,
        }
        if self.bot:
            data["bot"] = True
        return data


@dataclass(eq=False)
class Role:
    id: int
    name: str
    permissions: int
    position: int
    mentionable: bool = True
    managed: bool = False

    @property
    def mention(self) -> str:
        return f"<@&{self.id}>"

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "hoist": False,
            "managed": self.managed,
            "mentionable": self.mentionable,
            "flags": 0,
        }


@dataclass(eq=False)
class Member:
    user: User
    role_ids: list[int]
    joined_at: str

    def payload(self, *, with_user: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "roles": [str(r) for r in self.role_ids],
            "joined_at": self.joined_at,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
        }
        if with_user:
            data["user"] = self.user.payload()
        return data


@dataclass(eq=False)
class Thread:
    """What makes a channel a thread: its parent text channel, who started it, its settings."""

    parent_id: int
    owner_id: int
    type: int = PUBLIC_THREAD
    auto_archive_duration: int = 1440
    created_at: str = ""  # ISO timestamp, Discord's `create_timestamp`
    message_count: int = 0


@dataclass(eq=False)
class Channel:
    id: int
    name: str
    guild_id: int | None
    position: int = 0
    recipient: User | None = None  # set for DM channels
    nsfw: bool = False  # Discord's "age-restricted channel"
    thread: Thread | None = None  # set for thread channels (type 11 or 12)
    voice: bool = False  # a voice channel (type 2), whose text chat takes messages

    @property
    def is_dm(self) -> bool:
        return self.guild_id is None

    @property
    def is_thread(self) -> bool:
        return self.thread is not None

    @property
    def parent_id(self) -> int | None:
        return None if self.thread is None else self.thread.parent_id

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    def payload(self) -> dict[str, Any]:
        if self.recipient is not None:
            return {
                "id": str(self.id),
                "type": DM_CHANNEL,
                "recipients": [self.recipient.payload()],
            }
        if self.thread is not None:
            return self._thread_payload(self.thread)
        if self.voice:
            return self._voice_payload()
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": TEXT_CHANNEL,
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [],
            "nsfw": self.nsfw,
            "topic": None,
            "rate_limit_per_user": 0,
        }
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        return data

    def _voice_payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "type": VOICE_CHANNEL,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [],
            "nsfw": self.nsfw,
            "rate_limit_per_user": 0,
            "bitrate": 64000,
            "user_limit": 0,
        }

    def _thread_payload(self, thread: Thread) -> dict[str, Any]:
        # Every key discord.py's Thread reads without a default is present (no nulls for
        # nested objects: its parser trips on them).
        return {
            "id": str(self.id),
            "type": thread.type,
            "guild_id": str(self.guild_id),
            "parent_id": str(thread.parent_id),
            "owner_id": str(thread.owner_id),
            "name": self.name,
            "nsfw": self.nsfw,
            "rate_limit_per_user": 0,
            "message_count": thread.message_count,
            "total_message_sent": thread.message_count,
            "member_count": 1,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": thread.auto_archive_duration,
                "archive_timestamp": thread.created_at,
                "locked": False,
                "create_timestamp": thread.created_at,
            },
        }


@dataclass(eq=False)
class Guild:
    id: int
    name: str
    owner_id: int
    upload_limit: int = DEFAULT_UPLOAD_LIMIT
    roles: dict[int, Role] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    threads: dict[int, Channel] = field(default_factory=dict)  # the active threads
    members: dict[int, Member] = field(default_factory=dict)

    @property
    def everyone(self) -> Role:
        return self.roles[self.id]

    def premium_tier(self) -> int:
        # discord.py derives Guild.filesize_limit from the tier; keep the two in agreement.
        if self.upload_limit >= 100 * 1024 * 1024:
            return 3
        return 2 if self.upload_limit >= 50 * 1024 * 1024 else 0

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "owner_id": str(self.owner_id),
            "unavailable": False,
            "large": False,
            "member_count": len(self.members),
            "premium_tier": self.premium_tier(),
            "preferred_locale": "en-US",
            "features": [],
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "system_channel_flags": 0,
            "emojis": [],
            "stickers": [],
            "roles": [role.payload() for role in self.roles.values()],
            "channels": [
                {k: v for k, v in ch.payload().items() if k != "guild_id"}
                for ch in self.channels.values()
            ],
            "members": [member.payload() for member in self.members.values()],
            "threads": [thread.payload() for thread in self.threads.values()],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }


@dataclass(eq=False)
class Attachment:
    id: int
    filename: str
    data: bytes
    url: str
    content_type: str | None = None
    width: int | None = None
    height: int | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.url,
        }
        if self.content_type is not None:
            data["content_type"] = self.content_type
        if self.width is not None and self.height is not None:
            data["width"] = self.width
            data["height"] = self.height
        return data


@dataclass(frozen=True)
class Pings:
    """Who a message notifies, given its content and allowed_mentions."""

    users: frozenset[int] = frozenset()
    roles: frozenset[int] = frozenset()
    everyone: bool = False

    @property
    def nobody(self) -> bool:
        return not (self.users or self.roles or self.everyone)


@dataclass(eq=False)
class Message:
    """One message as Discord stores it; `revisions` keeps every earlier version."""

    id: int
    channel_id: int
    author: User
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    flags: int = 0
    type: int = 0
    timestamp: str = ""
    edited_timestamp: str | None = None
    allowed_mentions: dict[str, Any] | None = None
    pings: Pings = field(default_factory=Pings)
    reactions: dict[str, list[int]] = field(default_factory=dict)
    interaction_metadata: dict[str, Any] | None = None
    thread_id: int | None = None  # the thread started from this message
    visible_to: int | None = None  # ephemeral: the only user who sees it
    deleted: bool = False
    revisions: list[dict[str, Any]] = field(default_factory=list)
    created_at: float = 0.0  # Clock.now() when it was posted
    edit_times: list[float] = field(default_factory=list)  # Clock.now() of every edit

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & LOADING)

    def all_components(self) -> list[dict[str, Any]]:
        """Every component, depth first (rows, containers, sections and their children)."""
        found: list[dict[str, Any]] = []
        stack = list(reversed(self.components))
        while stack:
            component = stack.pop()
            found.append(component)
            children = list(component.get("components", []))
            for key in ("component", "accessory"):
                if key in component:
                    children.append(component[key])
            stack.extend(reversed(children))
        return found

    def buttons(self) -> list[dict[str, Any]]:
        return [c for c in self.all_components() if c.get("type") == 2]

    def custom_ids(self) -> list[str]:
        return [c["custom_id"] for c in self.all_components() if "custom_id" in c]

    def component(self, custom_id: str) -> dict[str, Any]:
        for component in self.all_components():
            if component.get("custom_id") == custom_id:
                return component
        raise DriverError(f"message {self.id} has no component {custom_id!r}: {self.custom_ids()}")

    def attachment(self, filename: str) -> Attachment:
        for attachment in self.attachments:
            if attachment.filename == filename:
                return attachment
        names = [a.filename for a in self.attachments]
        raise DriverError(f"message {self.id} has no attachment {filename!r}: {names}")

    def reaction_users(self, emoji: str) -> list[int]:
        return list(self.reactions.get(emoji, []))


@dataclass(frozen=True)
class FileUpload:
    """A file a user attaches to a slash command option; width/height are read from images."""

    filename: str
    data: bytes
    content_type: str | None = None
    width: int | None = None
    height: int | None = None


class World:
    """All state of the fake Discord. Lookups raise the ApiError Discord would answer with."""

    def __init__(self, *, token: str = "fake-bot-token", bot_name: str = "reelbot") -> None:
        self.clock = Clock()
        self.snowflakes = Snowflakes()
        self.token = token
        self.application_id = self.snowflakes.next()
        self.bot = User(self.application_id, bot_name, bot=True)
        self.users: dict[int, User] = {self.bot.id: self.bot}
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, Message] = {}
        self.attachments: dict[int, Attachment] = {}
        self.cdn_base = ""  # set once the server knows its address
        self._changed = asyncio.Condition()

    # building

    def add_user(self, name: str, *, bot: bool = False) -> User:
        user = User(self.snowflakes.next(), name, bot=bot)
        self.users[user.id] = user
        return user

    def add_guild(self, name: str, *, owner: User) -> Guild:
        guild = Guild(self.snowflakes.next(), name, owner.id)
        guild.roles[guild.id] = Role(guild.id, "@everyone", EVERYONE_PERMISSIONS, 0)
        self.guilds[guild.id] = guild
        self.add_member(guild, owner)
        bot_role = self.add_role(guild, self.bot.name, BOT_PERMISSIONS, managed=True)
        self.add_member(guild, self.bot, bot_role)
        return guild

    def add_role(
        self, guild: Guild, name: str, permissions: int = 0, *, managed: bool = False
    ) -> Role:
        role = Role(self.snowflakes.next(), name, permissions, len(guild.roles), managed=managed)
        guild.roles[role.id] = role
        return role

    def add_member(self, guild: Guild, user: User, *roles: Role) -> Member:
        member = Member(user, [r.id for r in roles], self.clock.timestamp())
        guild.members[user.id] = member
        return member

    def add_channel(
        self, guild: Guild, name: str, *, nsfw: bool = False, voice: bool = False
    ) -> Channel:
        """A text channel (``voice``: a voice channel, posted in through its text chat);
        ``nsfw`` marks it age-restricted."""
        channel = Channel(
            self.snowflakes.next(),
            name,
            guild.id,
            position=len(guild.channels),
            nsfw=nsfw,
            voice=voice,
        )
        guild.channels[channel.id] = channel
        self.channels[channel.id] = channel
        return channel

    def add_thread(
        self,
        parent: Channel,
        name: str,
        *,
        owner: User,
        thread_type: int = PUBLIC_THREAD,
        auto_archive_duration: int = 1440,
        thread_id: int | None = None,
    ) -> Channel:
        """A thread in ``parent``; one started from a message shares the message's id."""
        guild = self.guild_of(parent)
        assert guild is not None, "threads live in guilds"
        assert not parent.is_thread, "no thread in a thread"
        info = Thread(
            parent.id,
            owner.id,
            thread_type,
            auto_archive_duration,
            created_at=self.clock.timestamp(),
        )
        thread = Channel(
            thread_id or self.snowflakes.next(), name, guild.id, nsfw=parent.nsfw, thread=info
        )
        guild.threads[thread.id] = thread
        self.channels[thread.id] = thread
        return thread

    def dm_channel(self, user: User) -> Channel:
        for channel in self.channels.values():
            if channel.recipient is user:
                return channel
        channel = Channel(self.snowflakes.next(), "", None, recipient=user)
        self.channels[channel.id] = channel
        return channel

    def store_attachment(
        self,
        channel_id: int,
        filename: str,
        data: bytes,
        *,
        content_type: str | None,
        size: tuple[int, int] | None = None,
    ) -> Attachment:
        attachment_id = self.snowflakes.next()
        url = f"{self.cdn_base}/attachments/{channel_id}/{attachment_id}/{filename}"
        attachment = Attachment(attachment_id, filename, data, url, content_type)
        if size is not None:
            attachment.width, attachment.height = size
        self.attachments[attachment_id] = attachment
        return attachment

    # lookups

    def user(self, user_id: int | str) -> User:
        try:
            return self.users[int(user_id)]
        except (KeyError, ValueError):
            raise errors.not_found(errors.UNKNOWN_USER, "User") from None

    def guild(self, guild_id: int | str) -> Guild:
        try:
            return self.guilds[int(guild_id)]
        except (KeyError, ValueError):
            raise errors.not_found(errors.UNKNOWN_GUILD, "Guild") from None

    def member(self, guild: Guild, user_id: int | str) -> Member:
        try:
            return guild.members[int(user_id)]
        except (KeyError, ValueError):
            raise errors.not_found(errors.UNKNOWN_MEMBER, "Member") from None

    def channel(self, channel_id: int | str) -> Channel:
        try:
            return self.channels[int(channel_id)]
        except (KeyError, ValueError):
            raise errors.not_found(errors.UNKNOWN_CHANNEL, "Channel") from None

    def message(self, channel: Channel, message_id: int | str) -> Message:
        try:
            message = self.messages[int(message_id)]
        except (KeyError, ValueError):
            raise errors.not_found(errors.UNKNOWN_MESSAGE, "Message") from None
        if message.deleted or message.channel_id != channel.id:
            raise errors.not_found(errors.UNKNOWN_MESSAGE, "Message")
        return message

    def guild_of(self, channel: Channel) -> Guild | None:
        return None if channel.guild_id is None else self.guilds[channel.guild_id]

    def upload_limit(self, channel: Channel) -> int:
        guild = self.guild_of(channel)
        return DEFAULT_UPLOAD_LIMIT if guild is None else guild.upload_limit

    def permissions(self, guild: Guild, user_id: int) -> int:
        """The member's guild permissions as Discord computes them (no channel overwrites)."""
        if user_id == guild.owner_id:
            return ALL_PERMISSIONS
        value = guild.everyone.permissions
        for role_id in guild.members[user_id].role_ids:
            value |= guild.roles[role_id].permissions
        return ALL_PERMISSIONS if value & ADMINISTRATOR else value

    def visible_messages(self, channel: Channel, *, viewer: User | None = None) -> list[Message]:
        """The channel's live messages, oldest first; ephemeral ones only for their user."""
        return [
            m
            for m in self.messages.values()
            if m.channel_id == channel.id
            and not m.deleted
            and (m.visible_to is None or (viewer is not None and m.visible_to == viewer.id))
        ]

    # payloads

    def member_payload(
        self, guild: Guild, user: User, *, with_user: bool = True, with_permissions: bool = False
    ) -> dict[str, Any]:
        data = self.member(guild, user.id).payload(with_user=with_user)
        if with_permissions:
            data["permissions"] = str(self.permissions(guild, user.id))
        return data

    def message_payload(self, message: Message) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(message.id),
            "channel_id": str(message.channel_id),
            "author": message.author.payload(),
            "content": message.content,
            "timestamp": message.timestamp,
            "edited_timestamp": message.edited_timestamp,
            "tts": False,
            "mention_everyone": message.pings.everyone,
            "mentions": [self.users[u].payload() for u in message.pings.users if u in self.users],
            "mention_roles": [str(r) for r in message.pings.roles],
            "attachments": [a.payload() for a in message.attachments],
            "embeds": message.embeds,
            "components": message.components,
            "pinned": False,
            "type": message.type,
            "flags": message.flags,
        }
        if message.reactions:
            data["reactions"] = [
                self._reaction_payload(emoji, users) for emoji, users in message.reactions.items()
            ]
        if message.thread_id is not None:
            data["thread"] = self.channels[message.thread_id].payload()
        if message.interaction_metadata is not None:
            data["webhook_id"] = str(self.application_id)
            data["application_id"] = str(self.application_id)
            data["interaction_metadata"] = message.interaction_metadata
        return data

    def _reaction_payload(self, emoji: str, users: list[int]) -> dict[str, Any]:
        return {
            "emoji": emoji_payload(emoji),
            "count": len(users),
            "count_details": {"burst": 0, "normal": len(users)},
            "me": self.bot.id in users,
            "me_burst": False,
            "burst_colors": [],
        }

    # change notification

    async def notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], T | None], timeout: float = 5.0) -> T:
        """Wait until `predicate()` is truthy (re-checked on every change) and return it."""
        async with self._changed:
            try:
                result = await asyncio.wait_for(self._changed.wait_for(predicate), timeout)
            except TimeoutError:
                name = getattr(predicate, "__qualname__", repr(predicate))
                raise DriverError(f"timed out after {timeout}s waiting for {name}") from None
        assert result is not None  # Condition.wait_for returns only once it is truthy
        return result


def emoji_payload(emoji: str) -> dict[str, Any]:
    """'🔁' -> {id: None, name: '🔁'}; 'name:123' (custom emoji) -> {id: '123', name: 'name'}."""
    name, _, emoji_id = emoji.rpartition(":")
    if name and emoji_id.isdigit():
        return {"id": emoji_id, "name": name}
    return {"id": None, "name": emoji}
