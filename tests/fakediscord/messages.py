"""Messages: creating, editing and deleting them (shared by channel routes and webhooks),
plus the channel REST routes discord.py calls."""

from __future__ import annotations

import io
import mimetypes
from typing import Any

from aiohttp import web
from PIL import Image

from tests.fakediscord import errors, limits
from tests.fakediscord.errors import ApiError, json_response
from tests.fakediscord.gateway import DIRECT_MESSAGES, GUILD_MESSAGES, Gateway
from tests.fakediscord.mentions import compute_pings
from tests.fakediscord.multipart import UploadedFile, read_body
from tests.fakediscord.routing import RouteSpec
from tests.fakediscord.state import EPHEMERAL, LOADING, Attachment, Channel, Message, User, World

SUPPRESS_EMBEDS = 1 << 2
SEND_MESSAGES = 1 << 11
SEND_MESSAGES_IN_THREADS = 1 << 38
EDITABLE_FLAGS = SUPPRESS_EMBEDS | limits.COMPONENTS_V2_FLAG


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height Discord would report for an image upload, None for other files."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (OSError, Image.DecompressionBombError):
        return None


class Messages:
    """Message lifecycle with Discord's checks, gateway events and recorded pings."""

    def __init__(self, world: World, gateway: Gateway) -> None:
        self.world = world
        self.gateway = gateway

    def create(
        self,
        channel: Channel,
        author: User,
        payload: dict[str, Any],
        files: list[UploadedFile],
        *,
        interaction: dict[str, Any] | None = None,
        message_type: int = 0,
        visible_to: int | None = None,
        loading: bool = False,
    ) -> Message:
        self._check_upload_sizes(channel, files)
        listed = payload.get("attachments")
        count = len(files) if listed is None else len(listed)
        limits.check_message(payload, attachment_count=count)
        if not loading:
            limits.check_not_empty(payload, attachment_count=count)
        replied_to = self._replied_to(channel, payload)
        message = Message(
            id=self.world.snowflakes.next(),
            channel_id=channel.id,
            author=author,
            content=payload.get("content") or "",
            embeds=list(payload.get("embeds") or []),
            components=list(payload.get("components") or []),
            attachments=self._attachments(channel, payload, files, existing=[]),
            flags=int(payload.get("flags") or 0) | (LOADING if loading else 0),
            type=19 if replied_to is not None else message_type,
            timestamp=self.world.clock.timestamp(),
            created_at=self.world.clock.now(),
            allowed_mentions=payload.get("allowed_mentions"),
            interaction_metadata=interaction,
        )
        if message.ephemeral:
            message.visible_to = visible_to
        message.pings = compute_pings(
            self.world,
            channel,
            author,
            message.content,
            message.allowed_mentions,
            replied_to=replied_to,
        )
        self.world.messages[message.id] = message
        if channel.thread is not None:
            channel.thread.message_count += 1
        self._announce("MESSAGE_CREATE", channel, message)
        return message

    def edit(self, message: Message, payload: dict[str, Any], files: list[UploadedFile]) -> Message:
        channel = self.world.channel(message.channel_id)
        self._check_upload_sizes(channel, files)
        merged: dict[str, Any] = {
            "content": message.content,
            "embeds": message.embeds,
            "components": message.components,
            "flags": message.flags,
        }
        merged.update({k: payload[k] for k in merged if k in payload})
        count = len(message.attachments) + len(files)
        if "attachments" in payload:
            count = len(payload["attachments"] or [])
        limits.check_message(merged, attachment_count=count)
        message.revisions.append(self.world.message_payload(message))
        message.content = merged["content"] or ""
        message.embeds = list(merged["embeds"] or [])
        message.components = list(merged["components"] or [])
        kept = message.flags & ~(EDITABLE_FLAGS | LOADING)
        message.flags = kept | (int(merged["flags"] or 0) & EDITABLE_FLAGS)
        if "attachments" in payload:
            message.attachments = self._attachments(
                channel, payload, files, existing=message.attachments
            )
        elif files:
            message.attachments += self._attachments(channel, {}, files, existing=[])
        if "allowed_mentions" in payload:
            message.allowed_mentions = payload["allowed_mentions"]
        message.pings = compute_pings(
            self.world, channel, message.author, message.content, message.allowed_mentions
        )
        message.edited_timestamp = self.world.clock.timestamp()
        message.edit_times.append(self.world.clock.now())
        self._announce("MESSAGE_UPDATE", channel, message)
        return message

    def delete(self, message: Message) -> None:
        message.deleted = True
        if message.ephemeral:
            return
        channel = self.world.channel(message.channel_id)
        data = {"id": str(message.id), "channel_id": str(channel.id)}
        if channel.guild_id is not None:
            data["guild_id"] = str(channel.guild_id)
        self.gateway.dispatch("MESSAGE_DELETE", data, intent=_message_intent(channel))

    def _announce(self, event: str, channel: Channel, message: Message) -> None:
        if message.flags & EPHEMERAL:
            return
        data = self.world.message_payload(message)
        guild = self.world.guild_of(channel)
        if guild is not None:
            data["guild_id"] = str(guild.id)
            if message.author.id in guild.members:
                data["member"] = self.world.member_payload(guild, message.author, with_user=False)
        private = self._without_content(channel, message, data)
        self.gateway.dispatch(event, data, intent=_message_intent(channel), without_content=private)

    def _without_content(
        self, channel: Channel, message: Message, data: dict[str, Any]
    ) -> dict[str, Any] | None:
        """What a bot without the message content intent sees (its own, DMs, mentions: all)."""
        bot = self.world.bot
        if channel.is_dm or message.author is bot or bot.id in message.pings.users:
            return None
        return data | {"content": "", "embeds": [], "attachments": [], "components": []}

    def _check_upload_sizes(self, channel: Channel, files: list[UploadedFile]) -> None:
        limit = self.world.upload_limit(channel)
        if any(len(f.data) > limit for f in files):
            raise ApiError(413, 40005, "Request entity too large")

    def _attachments(
        self,
        channel: Channel,
        payload: dict[str, Any],
        files: list[UploadedFile],
        *,
        existing: list[Attachment],
    ) -> list[Attachment]:
        """Attachments named by the payload: kept ones by id, new ones by files[n] index."""
        uploads = {f.index: f for f in files}
        listed = payload.get("attachments")
        if listed is None:
            listed = [{"id": f.index, "filename": f.filename} for f in files]
        kept = {a.id: a for a in existing}
        result = []
        for entry in listed:
            entry_id = int(entry["id"])
            if entry_id in kept:
                result.append(kept[entry_id])
            elif entry_id in uploads:
                upload = uploads[entry_id]
                filename = entry.get("filename") or upload.filename
                result.append(
                    self.world.store_attachment(
                        channel.id,
                        filename,
                        upload.data,
                        content_type=mimetypes.guess_type(filename)[0],
                        size=image_size(upload.data),
                    )
                )
            else:
                raise ApiError(400, 50035, f"Invalid Form Body: unknown attachment {entry_id}")
        return result

    def _replied_to(self, channel: Channel, payload: dict[str, Any]) -> Message | None:
        reference = payload.get("message_reference")
        if not reference or "message_id" not in reference:
            return None
        return self.world.message(channel, reference["message_id"])


def _message_intent(channel: Channel) -> int:
    return DIRECT_MESSAGES if channel.is_dm else GUILD_MESSAGES


class ChannelRoutes:
    """REST: channels, their messages, typing, DM channels."""

    def __init__(self, world: World, messages: Messages) -> None:
        self.world = world
        self.messages = messages

    def routes(self) -> list[RouteSpec]:
        channel = "/channels/{channel_id}"
        message = channel + "/messages/{message_id}"
        return [
            ("GET", channel, self.get_channel),
            ("GET", channel + "/messages", self.list_messages),
            ("POST", channel + "/messages", self.create_message),
            ("GET", message, self.get_message),
            ("PATCH", message, self.edit_message),
            ("DELETE", message, self.delete_message),
            ("POST", channel + "/typing", self.typing),
            ("POST", "/users/@me/channels", self.open_dm),
        ]

    def _channel(self, request: web.Request) -> Channel:
        return self.world.channel(request.match_info["channel_id"])

    async def get_channel(self, request: web.Request) -> web.Response:
        return json_response(self._channel(request).payload())

    async def list_messages(self, request: web.Request) -> web.Response:
        visible = self.world.visible_messages(self._channel(request))
        query = request.query
        limit = min(int(query.get("limit", 50)), 100)
        if "after" in query:
            chosen = [m for m in visible if m.id > int(query["after"])][:limit]
        else:
            if "before" in query:
                visible = [m for m in visible if m.id < int(query["before"])]
            chosen = visible[-limit:]
        newest_first = sorted(chosen, key=lambda m: m.id, reverse=True)
        return json_response([self.world.message_payload(m) for m in newest_first])

    async def create_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        if channel.recipient is not None and not channel.recipient.dms_open:
            raise ApiError(403, 50007, "Cannot send messages to this user")
        self._check_may_send(channel)
        payload, files = await read_body(request)
        message = self.messages.create(channel, self.world.bot, payload, files)
        return json_response(self.world.message_payload(message))

    def _check_may_send(self, channel: Channel) -> None:
        """Discord's 403 50013 for a bot without Send Messages (in Threads, in a thread)."""
        guild = self.world.guild_of(channel)
        if guild is None:
            return
        needed = SEND_MESSAGES_IN_THREADS if channel.is_thread else SEND_MESSAGES
        if not self.world.permissions(guild, self.world.bot.id) & needed:
            raise ApiError(403, 50013, "Missing Permissions")

    async def get_message(self, request: web.Request) -> web.Response:
        message = self.world.message(self._channel(request), request.match_info["message_id"])
        if message.ephemeral:
            raise errors.not_found(errors.UNKNOWN_MESSAGE, "Message")
        return json_response(self.world.message_payload(message))

    async def edit_message(self, request: web.Request) -> web.Response:
        message = self.world.message(self._channel(request), request.match_info["message_id"])
        if message.author is not self.world.bot:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        payload, files = await read_body(request)
        self.messages.edit(message, payload, files)
        return json_response(self.world.message_payload(message))

    async def delete_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        message = self.world.message(channel, request.match_info["message_id"])
        guild = self.world.guild_of(channel)
        manage_messages = 1 << 13
        may_delete = guild is None or (
            self.world.permissions(guild, self.world.bot.id) & manage_messages
        )
        if message.author is not self.world.bot and not may_delete:
            raise ApiError(403, 50013, "Missing Permissions")
        self.messages.delete(message)
        return web.Response(status=204)

    async def typing(self, request: web.Request) -> web.Response:
        self._channel(request)
        return web.Response(status=204)

    async def open_dm(self, request: web.Request) -> web.Response:
        payload, _ = await read_body(request)
        user = self.world.user(payload.get("recipient_id", ""))
        return json_response(self.world.dm_channel(user).payload())
