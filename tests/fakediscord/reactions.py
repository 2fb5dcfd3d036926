"""Reactions: adding and removing them (bot via REST, users via the driver) and their events."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.fakediscord.errors import ApiError, json_response
from tests.fakediscord.gateway import DIRECT_MESSAGE_REACTIONS, GUILD_MESSAGE_REACTIONS, Gateway
from tests.fakediscord.routing import RouteSpec
from tests.fakediscord.state import Channel, Message, User, World, emoji_payload

DISTINCT_REACTIONS_MAX = 20


class Reactions:
    def __init__(self, world: World, gateway: Gateway) -> None:
        self.world = world
        self.gateway = gateway

    def add(self, message: Message, emoji: str, user: User) -> None:
        users = message.reactions.get(emoji)
        if users is None:
            if len(message.reactions) >= DISTINCT_REACTIONS_MAX:
                raise ApiError(400, 30010, "Maximum number of reactions reached (20)")
            users = message.reactions[emoji] = []
        if user.id in users:
            return
        users.append(user.id)
        channel = self.world.channel(message.channel_id)
        data = self._event(channel, message, emoji, user)
        data["message_author_id"] = str(message.author.id)
        guild = self.world.guild_of(channel)
        if guild is not None:
            data["member"] = self.world.member_payload(guild, user)
        self.gateway.dispatch("MESSAGE_REACTION_ADD", data, intent=_intent(channel))

    def remove(self, message: Message, emoji: str, user: User) -> None:
        users = message.reactions.get(emoji, [])
        if user.id not in users:
            return
        users.remove(user.id)
        if not users:
            del message.reactions[emoji]
        channel = self.world.channel(message.channel_id)
        data = self._event(channel, message, emoji, user)
        self.gateway.dispatch("MESSAGE_REACTION_REMOVE", data, intent=_intent(channel))

    def clear(self, message: Message, emoji: str | None = None) -> None:
        channel = self.world.channel(message.channel_id)
        data: dict[str, Any] = {"channel_id": str(channel.id), "message_id": str(message.id)}
        if channel.guild_id is not None:
            data["guild_id"] = str(channel.guild_id)
        if emoji is None:
            message.reactions.clear()
            self.gateway.dispatch("MESSAGE_REACTION_REMOVE_ALL", data, intent=_intent(channel))
        elif message.reactions.pop(emoji, None) is not None:
            data["emoji"] = emoji_payload(emoji)
            self.gateway.dispatch("MESSAGE_REACTION_REMOVE_EMOJI", data, intent=_intent(channel))

    def _event(self, channel: Channel, message: Message, emoji: str, user: User) -> dict[str, Any]:
        data: dict[str, Any] = {
            "user_id": str(user.id),
            "channel_id": str(channel.id),
            "message_id": str(message.id),
            "emoji": emoji_payload(emoji),
            "burst": False,
            "burst_colors": [],
            "type": 0,
        }
        if channel.guild_id is not None:
            data["guild_id"] = str(channel.guild_id)
        return data


def _intent(channel: Channel) -> int:
    return DIRECT_MESSAGE_REACTIONS if channel.is_dm else GUILD_MESSAGE_REACTIONS


class ReactionRoutes:
    def __init__(self, world: World, reactions: Reactions) -> None:
        self.world = world
        self.reactions = reactions

    def routes(self) -> list[RouteSpec]:
        base = "/channels/{channel_id}/messages/{message_id}/reactions"
        return [
            ("PUT", base + "/{emoji}/@me", self.add_own),
            ("DELETE", base + "/{emoji}/@me", self.remove_own),
            ("DELETE", base + "/{emoji}/{user_id}", self.remove_user),
            ("GET", base + "/{emoji}", self.list_users),
            ("DELETE", base + "/{emoji}", self.clear_emoji),
            ("DELETE", base, self.clear_all),
        ]

    def _message(self, request: web.Request) -> Message:
        channel = self.world.channel(request.match_info["channel_id"])
        return self.world.message(channel, request.match_info["message_id"])

    async def add_own(self, request: web.Request) -> web.Response:
        self.reactions.add(self._message(request), request.match_info["emoji"], self.world.bot)
        return web.Response(status=204)

    async def remove_own(self, request: web.Request) -> web.Response:
        self.reactions.remove(self._message(request), request.match_info["emoji"], self.world.bot)
        return web.Response(status=204)

    async def remove_user(self, request: web.Request) -> web.Response:
        user = self.world.user(request.match_info["user_id"])
        self.reactions.remove(self._message(request), request.match_info["emoji"], user)
        return web.Response(status=204)

    async def list_users(self, request: web.Request) -> web.Response:
        users = self._message(request).reaction_users(request.match_info["emoji"])
        after = int(request.query.get("after", 0))
        limit = int(request.query.get("limit", 25))
        chosen = sorted(u for u in users if u > after)[:limit]
        return json_response([self.world.users[u].payload() for u in chosen])

    async def clear_emoji(self, request: web.Request) -> web.Response:
        self.reactions.clear(self._message(request), request.match_info["emoji"])
        return web.Response(status=204)

    async def clear_all(self, request: web.Request) -> web.Response:
        self.reactions.clear(self._message(request))
        return web.Response(status=204)
