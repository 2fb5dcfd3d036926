"""The aiohttp application: route wiring, auth, request log, unknown-route detection."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakediscord.commands import CommandRegistry, CommandRoutes
from tests.fakediscord.errors import ApiError, json_response
from tests.fakediscord.gateway import Gateway
from tests.fakediscord.interactions import InteractionRoutes, Interactions
from tests.fakediscord.messages import ChannelRoutes, Messages
from tests.fakediscord.ratelimits import REALISTIC, RateLimiter, RateLimitProfile, Verdict
from tests.fakediscord.reactions import ReactionRoutes, Reactions
from tests.fakediscord.routing import Handler, RouteSpec
from tests.fakediscord.state import World
from tests.fakediscord.threads import ThreadRoutes, Threads

log = logging.getLogger(__name__)

API_PREFIX = "/api/v10"
GATEWAY_PATH = "/gateway"
# Interaction callbacks and webhooks authenticate by their token, not the bot's.
_TOKEN_AUTHENTICATED = ("/interactions/", "/webhooks/")


@dataclass(frozen=True)
class RequestRecord:
    at: float
    method: str
    route: str  # the template, e.g. "/channels/{channel_id}/messages/{message_id}"
    path: str  # the concrete path
    rate_limited: bool = False  # answered 429; discord.py sends it again


class FakeDiscordServer:
    """REST + gateway + CDN on one aiohttp app, listening on 127.0.0.1:<free port>."""

    def __init__(self, world: World, rate_limits: RateLimitProfile = REALISTIC) -> None:
        self.world = world
        self.rate_limits = RateLimiter(world.clock, rate_limits)
        self.gateway = Gateway(world)
        self.messages = Messages(world, self.gateway)
        self.reactions = Reactions(world, self.gateway)
        self.threads = Threads(world, self.gateway, self.messages)
        self.commands = CommandRegistry(world)
        self.interactions = Interactions(world, self.gateway, self.messages)
        self.requests: list[RequestRecord] = []
        self.unknown_routes: list[str] = []
        self.server_errors: list[str] = []
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    @property
    def api_base(self) -> str:
        return self.base_url + API_PREFIX

    def request_counts(self) -> Counter[tuple[str, str]]:
        """How often each (method, route template) was served (429s are not counted)."""
        return Counter((r.method, r.route) for r in self.requests if not r.rate_limited)

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=1024**3)
        app.router.add_get(GATEWAY_PATH, self.gateway.handle)
        app.router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self._cdn)
        for method, path, handler in self._api_routes():
            app.router.add_route(method, API_PREFIX + path, handler)
        self._runner = web.AppRunner(
            app, shutdown_timeout=1.0, handle_signals=False, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        self.world.cdn_base = self.base_url
        self.gateway.url = f"ws://{host}:{port}{GATEWAY_PATH}"

    async def stop(self) -> None:
        for session in self.gateway.sessions.values():
            if session.connection is not None:
                await session.connection.ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()

    def _api_routes(self) -> list[RouteSpec]:
        own: list[RouteSpec] = [
            ("GET", "/users/@me", self._me),
            ("GET", "/oauth2/applications/@me", self._application),
            ("GET", "/gateway", self._gateway_url),
            ("GET", "/gateway/bot", self._gateway_bot),
            ("GET", "/users/{user_id}", self._user),
            ("GET", "/guilds/{guild_id}", self._guild),
            ("GET", "/guilds/{guild_id}/channels", self._guild_channels),
            ("GET", "/guilds/{guild_id}/roles", self._guild_roles),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self._member),
        ]
        return [
            *own,
            *ChannelRoutes(self.world, self.messages).routes(),
            *ReactionRoutes(self.world, self.reactions).routes(),
            *ThreadRoutes(self.world, self.threads).routes(),
            *CommandRoutes(self.world, self.commands).routes(),
            *InteractionRoutes(self.world, self.interactions).routes(),
        ]

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        info = request.match_info
        if info.http_exception is not None:
            self.unknown_routes.append(f"{request.method} {request.path}")
            log.error("fake discord: unknown route %s %s", request.method, request.path)
            return json_response({"message": "404: Not Found", "code": 0}, 404)
        route = _api_path(info.route.resource.canonical if info.route.resource else request.path)
        verdict = self._admit(request, route)
        limited = verdict.refusal is not None
        self.requests.append(
            RequestRecord(self.world.clock.now(), request.method, route, request.path, limited)
        )
        try:
            if verdict.refusal is not None:
                return verdict.refusal
            response = await self._handle(request, handler)
            verdict.stamp(response)
            return response
        finally:
            await self.world.notify()

    def _admit(self, request: web.Request, route: str) -> Verdict:
        if not request.path.startswith(API_PREFIX):
            return Verdict({})
        return self.rate_limits.admit(request.method, route, request.match_info)

    async def _handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            self._authenticate(request)
            return await handler(request)
        except ApiError as error:
            return error.response()
        except Exception as error:
            # A bug in the fake, or a body it cannot read. Recorded so the fixture fails the
            # test; answered with 400 because discord.py retries any 5xx for ~25 s.
            log.exception("fake discord failed on %s %s", request.method, request.path)
            self.server_errors.append(f"{request.method} {request.path}: {error!r}")
            return json_response({"message": f"fake discord error: {error!r}", "code": 0}, 400)

    def _authenticate(self, request: web.Request) -> None:
        path = request.path
        if not path.startswith(API_PREFIX) or path.startswith(
            tuple(API_PREFIX + p for p in _TOKEN_AUTHENTICATED)
        ):
            return
        if request.headers.get("Authorization") != f"Bot {self.world.token}":
            raise ApiError(401, 0, "401: Unauthorized")

    async def _cdn(self, request: web.Request) -> web.Response:
        attachment = self.world.attachments.get(int(request.match_info["attachment_id"]))
        if attachment is None or attachment.filename != request.match_info["filename"]:
            return web.Response(status=404, text="Not Found")
        content_type = attachment.content_type or "application/octet-stream"
        return web.Response(body=attachment.data, content_type=content_type)

    async def _me(self, request: web.Request) -> web.Response:
        extra = {"verified": True, "mfa_enabled": False, "flags": 0}
        return json_response(self.world.bot.payload() | extra)

    async def _application(self, request: web.Request) -> web.Response:
        owner = self.world.guilds[min(self.world.guilds)].owner_id if self.world.guilds else 0
        data: dict[str, Any] = {
            "id": str(self.world.application_id),
            "name": self.world.bot.name,
            "description": "",
            "icon": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": self.world.users[owner].payload() if owner else self.world.bot.payload(),
            "verify_key": "0" * 64,
            "flags": 0,
            "bot": self.world.bot.payload(),
        }
        return json_response(data)

    async def _gateway_url(self, request: web.Request) -> web.Response:
        return json_response({"url": self.gateway.url})

    async def _gateway_bot(self, request: web.Request) -> web.Response:
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        return json_response({"url": self.gateway.url, "shards": 1, "session_start_limit": limit})

    async def _user(self, request: web.Request) -> web.Response:
        return json_response(self.world.user(request.match_info["user_id"]).payload())

    async def _guild(self, request: web.Request) -> web.Response:
        guild = self.world.guild(request.match_info["guild_id"])
        data = guild.payload()
        for key in ("channels", "members", "threads", "voice_states", "presences"):
            data.pop(key)
        return json_response(data)

    async def _guild_channels(self, request: web.Request) -> web.Response:
        guild = self.world.guild(request.match_info["guild_id"])
        return json_response([c.payload() for c in guild.channels.values()])

    async def _guild_roles(self, request: web.Request) -> web.Response:
        guild = self.world.guild(request.match_info["guild_id"])
        return json_response([r.payload() for r in guild.roles.values()])

    async def _member(self, request: web.Request) -> web.Response:
        guild = self.world.guild(request.match_info["guild_id"])
        member = self.world.member(guild, request.match_info["user_id"])
        return json_response(member.payload())


def _api_path(route: str) -> str:
    return route.removeprefix(API_PREFIX)
