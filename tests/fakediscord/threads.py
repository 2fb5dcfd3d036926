"""Threads: starting one from a message or in a channel, and THREAD_CREATE on the gateway.

A thread is a channel (type 11 public, 12 private) with a parent text channel; messages are
posted into it, edited and reacted to through the ordinary channel routes, and its rate-limit
buckets are its own, keyed by its id like any channel's. A thread started from a message has
the message's id, and the message then carries the thread (`thread`, flag HAS_THREAD).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.fakediscord import errors
from tests.fakediscord.errors import ApiError, FormErrors, json_response
from tests.fakediscord.gateway import Gateway
from tests.fakediscord.messages import Messages
from tests.fakediscord.multipart import read_body
from tests.fakediscord.routing import RouteSpec
from tests.fakediscord.state import (
    CREATE_PRIVATE_THREADS,
    CREATE_PUBLIC_THREADS,
    HAS_THREAD,
    PRIVATE_THREAD,
    PUBLIC_THREAD,
    THREAD_ARCHIVE_MINUTES,
    THREAD_TYPES,
    Channel,
    Message,
    User,
    World,
)

GUILDS_INTENT = 1 << 0
THREAD_NAME_MAX = 100
THREAD_CREATED_MESSAGE = 18
CANNOT_ON_CHANNEL_TYPE = 50024
THREAD_ALREADY_CREATED = 160004
MISSING_PERMISSIONS = 50013


class Threads:
    """Creating threads with Discord's checks, and announcing them."""

    def __init__(self, world: World, gateway: Gateway, messages: Messages) -> None:
        self.world = world
        self.gateway = gateway
        self.messages = messages

    def from_message(
        self, channel: Channel, message: Message, owner: User, payload: dict[str, Any]
    ) -> Channel:
        """A public thread started from ``message`` (it takes the message's id)."""
        self._check_parent(channel, owner, PUBLIC_THREAD)
        if message.thread_id is not None:
            raise ApiError(400, THREAD_ALREADY_CREATED, "A thread has already been created")
        name, archive = _checked_settings(payload)
        thread = self.world.add_thread(
            channel,
            name,
            owner=owner,
            auto_archive_duration=archive,
            thread_id=message.id,
        )
        message.thread_id = thread.id
        message.flags |= HAS_THREAD
        self._announce(thread)
        return thread

    def in_channel(self, channel: Channel, owner: User, payload: dict[str, Any]) -> Channel:
        """A thread without a starter message; the channel shows a "started a thread" line."""
        thread_type = int(payload.get("type") or PUBLIC_THREAD)
        if thread_type not in THREAD_TYPES:
            form = FormErrors()
            form.add("type", "BASE_TYPE_CHOICES", f"Value must be one of {THREAD_TYPES}.")
            form.raise_if_any()
        self._check_parent(channel, owner, thread_type)
        name, archive = _checked_settings(payload)
        thread = self.world.add_thread(
            channel, name, owner=owner, thread_type=thread_type, auto_archive_duration=archive
        )
        if thread_type == PUBLIC_THREAD:
            self.messages.create(
                channel, owner, {"content": name}, [], message_type=THREAD_CREATED_MESSAGE
            )
        self._announce(thread)
        return thread

    def _check_parent(self, channel: Channel, owner: User, thread_type: int) -> None:
        """Threads only in a guild's text channel, by a member allowed to start them."""
        if channel.is_dm or channel.is_thread or channel.voice:
            raise ApiError(
                400, CANNOT_ON_CHANNEL_TYPE, "Cannot execute action on this channel type"
            )
        guild = self.world.guild_of(channel)
        assert guild is not None
        needed = CREATE_PRIVATE_THREADS if thread_type == PRIVATE_THREAD else CREATE_PUBLIC_THREADS
        if not self.world.permissions(guild, owner.id) & needed:
            raise ApiError(403, MISSING_PERMISSIONS, "Missing Permissions")

    def payload_for_bot(self, thread: Channel) -> dict[str, Any]:
        """The thread as the bot sees it: with its own thread member when it started it."""
        data = thread.payload()
        assert thread.thread is not None
        if thread.thread.owner_id == self.world.bot.id:
            data["member"] = {
                "id": str(thread.id),
                "user_id": str(self.world.bot.id),
                "join_timestamp": thread.thread.created_at,
                "flags": 0,
            }
        return data

    def _announce(self, thread: Channel) -> None:
        data = self.payload_for_bot(thread) | {"newly_created": True}
        self.gateway.dispatch("THREAD_CREATE", data, intent=GUILDS_INTENT)


def _checked_settings(payload: dict[str, Any]) -> tuple[str, int]:
    """The name and auto-archive minutes, or Discord's 400 50035 naming the bad field."""
    form = FormErrors()
    name = payload.get("name")
    if not isinstance(name, str) or not name.strip():
        form.add("name", "BASE_TYPE_REQUIRED", "This field is required")
        name = ""
    form.max_length("name", name, THREAD_NAME_MAX)
    archive = payload.get("auto_archive_duration") or 1440
    if archive not in THREAD_ARCHIVE_MINUTES:
        form.add(
            "auto_archive_duration",
            "BASE_TYPE_CHOICES",
            f"Value must be one of {THREAD_ARCHIVE_MINUTES}.",
        )
    form.raise_if_any()
    return name, int(archive)


class ThreadRoutes:
    """REST: `POST /channels/{c}/messages/{m}/threads` and `POST /channels/{c}/threads`."""

    def __init__(self, world: World, threads: Threads) -> None:
        self.world = world
        self.threads = threads

    def routes(self) -> list[RouteSpec]:
        channel = "/channels/{channel_id}"
        return [
            ("POST", channel + "/messages/{message_id}/threads", self.start_from_message),
            ("POST", channel + "/threads", self.start_in_channel),
        ]

    async def start_from_message(self, request: web.Request) -> web.Response:
        channel = self.world.channel(request.match_info["channel_id"])
        message = self.world.message(channel, request.match_info["message_id"])
        if message.ephemeral:
            raise errors.not_found(errors.UNKNOWN_MESSAGE, "Message")
        payload, _ = await read_body(request)
        thread = self.threads.from_message(channel, message, self.world.bot, payload)
        return json_response(self.threads.payload_for_bot(thread), 201)

    async def start_in_channel(self, request: web.Request) -> web.Response:
        channel = self.world.channel(request.match_info["channel_id"])
        payload, _ = await read_body(request)
        thread = self.threads.in_channel(channel, self.world.bot, payload)
        return json_response(self.threads.payload_for_bot(thread), 201)
