"""The gateway WebSocket: HELLO, heartbeats, IDENTIFY/READY/GUILD_CREATE, RESUME, dispatch.

Each session keeps every event it was sent (with its sequence number), so a client that
RESUMEs after a RECONNECT or a dropped socket gets exactly the events it missed.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import secrets
import zlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakediscord.state import World

log = logging.getLogger(__name__)

HEARTBEAT_MS = 41250
BUFFER_EVENTS = 5000
GUILD_MESSAGES = 1 << 9
GUILD_MESSAGE_REACTIONS = 1 << 10
DIRECT_MESSAGES = 1 << 12
DIRECT_MESSAGE_REACTIONS = 1 << 13
MESSAGE_CONTENT = 1 << 15
CLIENT_CLOSES_ENDING_SESSION = (1000, 1001)


class Connection:
    """One WebSocket; frames go out in order through one writer task."""

    def __init__(self, ws: web.WebSocketResponse, *, zlib_stream: bool) -> None:
        self.ws = ws
        self._compressor = zlib.compressobj() if zlib_stream else None
        self._outbox: asyncio.Queue[dict[str, Any] | int] = asyncio.Queue()

    def send(self, frame: dict[str, Any]) -> None:
        self._outbox.put_nowait(frame)

    def close(self, code: int) -> None:
        self._outbox.put_nowait(code)

    async def write_loop(self) -> None:
        while True:
            item = await self._outbox.get()
            if isinstance(item, int):
                await self.ws.close(code=item)
                return
            data = json.dumps(item)
            try:
                if self._compressor is None:
                    await self.ws.send_str(data)
                else:
                    chunk = self._compressor.compress(data.encode())
                    await self.ws.send_bytes(chunk + self._compressor.flush(zlib.Z_SYNC_FLUSH))
            except ConnectionError:
                return


@dataclass(eq=False)
class Session:
    id: str
    intents: int
    seq: int = 0
    sent: collections.deque[dict[str, Any]] = field(
        default_factory=lambda: collections.deque(maxlen=BUFFER_EVENTS)
    )
    connection: Connection | None = None
    resumes: int = 0

    def dispatch(self, event: str, data: Any) -> None:
        self.seq += 1
        frame = {"op": 0, "t": event, "s": self.seq, "d": data}
        self.sent.append(frame)
        if self.connection is not None:
            self.connection.send(frame)


class Gateway:
    def __init__(self, world: World) -> None:
        self.world = world
        self.url = ""  # set once the server knows its address
        self.sessions: dict[str, Session] = {}
        self.protocol_errors: list[str] = []
        self.identifies = 0

    def connected_session(self) -> Session | None:
        for session in self.sessions.values():
            if session.connection is not None:
                return session
        return None

    def dispatch(
        self,
        event: str,
        data: dict[str, Any],
        *,
        intent: int = 0,
        without_content: dict[str, Any] | None = None,
    ) -> None:
        """Send an event to every session whose intents ask for it.

        `without_content` is what sessions lacking the message content intent get instead.
        """
        for session in self.sessions.values():
            if intent and not session.intents & intent:
                continue
            lacks_content = without_content is not None and not session.intents & MESSAGE_CONTENT
            session.dispatch(event, without_content if lacks_content else data)

    async def force_reconnect(self, *, resume: bool = True, timeout: float = 10.0) -> None:
        """Ask the connected client to reconnect (op 7) or re-identify (op 9), and wait for it."""
        session = self.connected_session()
        if session is None or session.connection is None:
            raise AssertionError("no client is connected to the fake gateway")
        resumes, identifies = session.resumes, self.identifies
        if resume:
            session.connection.send({"op": 7, "d": None, "s": None, "t": None})
            await self.world.wait_for(
                lambda: session.resumes > resumes and session.connection is not None, timeout
            )
        else:
            session.connection.send({"op": 9, "d": False, "s": None, "t": None})
            await self.world.wait_for(
                lambda: self.identifies > identifies and self.connected_session() is not None,
                timeout,
            )

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        connection = Connection(ws, zlib_stream=request.query.get("compress") == "zlib-stream")
        writer = asyncio.create_task(connection.write_loop())
        connection.send({"op": 10, "d": {"heartbeat_interval": HEARTBEAT_MS}, "s": None, "t": None})
        session: Session | None = None
        try:
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    continue
                session = self._on_frame(connection, session, json.loads(message.data))
                await self.world.notify()
        finally:
            self._on_close(connection, session, ws.close_code)
            writer.cancel()
            await self.world.notify()
        return ws

    def _on_close(self, connection: Connection, session: Session | None, code: int | None) -> None:
        if session is None or session.connection is not connection:
            return
        session.connection = None
        if code in CLIENT_CLOSES_ENDING_SESSION:
            self.sessions.pop(session.id, None)

    def _on_frame(
        self, connection: Connection, session: Session | None, frame: dict[str, Any]
    ) -> Session | None:
        op: Any = frame.get("op")
        data: Any = frame.get("d")
        if op == 1:
            connection.send({"op": 11, "d": None, "s": None, "t": None})
        elif op in (3, 4):
            pass  # presence and voice updates change nothing the tests look at
        elif op == 2 and session is None:
            return self._identify(connection, data)
        elif op == 6 and session is None:
            return self._resume(connection, data)
        elif op == 8 and session is not None:
            self._send_members(session, data)
        else:
            self._protocol_error(connection, f"unexpected gateway frame {frame!r}")
        return session

    def _protocol_error(self, connection: Connection, problem: str) -> None:
        log.error("fake gateway: %s", problem)
        self.protocol_errors.append(problem)
        connection.close(4002)

    def _identify(self, connection: Connection, data: dict[str, Any]) -> Session | None:
        if data.get("token") != self.world.token:
            connection.close(4004)
            return None
        self.identifies += 1
        session = Session(secrets.token_hex(16), int(data.get("intents", 0)))
        session.connection = connection
        self.sessions[session.id] = session
        guilds = [g for g in self.world.guilds.values() if self.world.bot.id in g.members]
        shard = data.get("shard")
        if shard is not None:
            # A sharded client gets its shard's guilds only (Discord's rule), and READY says
            # which shard it is.
            guilds = [g for g in guilds if (g.id >> 22) % shard[1] == shard[0]]
        ready = self._ready_payload(session, [g.id for g in guilds])
        if shard is not None:
            ready["shard"] = list(shard)
        session.dispatch("READY", ready)
        for guild in guilds:
            session.dispatch("GUILD_CREATE", guild.payload())
        return session

    def _ready_payload(self, session: Session, guild_ids: list[int]) -> dict[str, Any]:
        user = self.world.bot.payload() | {"verified": True, "mfa_enabled": False, "flags": 0}
        return {
            "v": 10,
            "user": user,
            "guilds": [{"id": str(g), "unavailable": True} for g in guild_ids],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.url,
            "application": {"id": str(self.world.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
        }

    def _resume(self, connection: Connection, data: dict[str, Any]) -> Session | None:
        if data.get("token") != self.world.token:
            connection.close(4004)
            return None
        session = self.sessions.get(str(data.get("session_id")))
        if session is None:
            connection.send({"op": 9, "d": False, "s": None, "t": None})
            return None
        after = int(data.get("seq") or 0)
        for frame in session.sent:
            if frame["s"] > after:
                connection.send(frame)
        session.connection = connection
        session.resumes += 1
        session.dispatch("RESUMED", {})
        return session

    def _send_members(self, session: Session, data: dict[str, Any]) -> None:
        guild = self.world.guild(data["guild_id"])
        chunk = {
            "guild_id": str(guild.id),
            "members": [m.payload() for m in guild.members.values()],
            "chunk_index": 0,
            "chunk_count": 1,
        }
        if "nonce" in data:
            chunk["nonce"] = data["nonce"]
        session.dispatch("GUILD_MEMBERS_CHUNK", chunk)
