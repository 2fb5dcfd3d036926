"""Interactions: INTERACTION_CREATE payloads, the callback endpoint, and the interaction
webhook (follow-ups, @original), with Discord's deadlines and acknowledgement rules."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import discord
from aiohttp import web

from tests.fakediscord import errors, limits
from tests.fakediscord.errors import ApiError, json_response
from tests.fakediscord.gateway import Gateway
from tests.fakediscord.messages import Messages
from tests.fakediscord.multipart import UploadedFile, read_body
from tests.fakediscord.routing import RouteSpec
from tests.fakediscord.state import EPHEMERAL, Channel, Message, User, World

ACK_DEADLINE_S = 3.0
TOKEN_LIFETIME_S = 15 * 60.0
PING, APPLICATION_COMMAND, COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 1, 2, 3, 4, 5
MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE = 4, 5, 6, 7
AUTOCOMPLETE_RESULT, MODAL = 8, 9
# What Discord reports as an app's permissions in a DM.
DM_APP_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,
    add_reactions=True,
).value
ALLOWED_RESPONSES = {
    APPLICATION_COMMAND: {MESSAGE, DEFERRED_MESSAGE, MODAL},
    COMPONENT: {MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE, MODAL},
    AUTOCOMPLETE: {AUTOCOMPLETE_RESULT},
    MODAL_SUBMIT: {MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE},
}


@dataclass(eq=False)
class InteractionRecord:
    """One interaction and everything the bot did with it."""

    id: int
    token: str
    type: int
    user: User
    channel: Channel
    name: str
    created_at: float
    source_message_id: int | None = None  # the message whose component was used
    payload: dict[str, Any] = field(default_factory=dict)
    ack_type: int | None = None
    acked_at: float | None = None
    original_message_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)
    modal: dict[str, Any] | None = None
    modal_submitted: bool = False
    choices: list[dict[str, Any]] | None = None
    rejections: list[ApiError] = field(default_factory=list)


class Interactions:
    def __init__(self, world: World, gateway: Gateway, messages: Messages) -> None:
        self.world = world
        self.gateway = gateway
        self.messages = messages
        self.records: dict[int, InteractionRecord] = {}

    def create(
        self,
        kind: int,
        data: dict[str, Any],
        *,
        user: User,
        channel: Channel,
        name: str = "",
        source: Message | None = None,
        forge_member: dict[str, Any] | None = None,
    ) -> InteractionRecord:
        """Record an interaction and dispatch its INTERACTION_CREATE (the 3 s clock starts)."""
        record = InteractionRecord(
            id=self.world.snowflakes.next(),
            token=f"aW50ZXJhY3Rpb24{secrets.token_urlsafe(48)}",
            type=kind,
            user=user,
            channel=channel,
            name=name,
            created_at=self.world.clock.now(),
            source_message_id=None if source is None else source.id,
        )
        record.payload = self._payload(record, data, source, forge_member or {})
        self.records[record.id] = record
        self.gateway.dispatch("INTERACTION_CREATE", record.payload)
        return record

    def _payload(
        self,
        record: InteractionRecord,
        data: dict[str, Any],
        source: Message | None,
        forge_member: dict[str, Any],
    ) -> dict[str, Any]:
        world, channel = self.world, record.channel
        guild = world.guild_of(channel)
        payload: dict[str, Any] = {
            "id": str(record.id),
            "application_id": str(world.application_id),
            "type": record.type,
            "data": data,
            "token": record.token,
            "version": 1,
            "channel": channel.payload(),
            "channel_id": str(channel.id),
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": world.upload_limit(channel),
        }
        if guild is None:
            payload |= {
                "user": record.user.payload(),
                "app_permissions": str(DM_APP_PERMISSIONS),
                "authorizing_integration_owners": {"0": str(record.user.id)},
                "context": 1,
            }
        else:
            member = world.member_payload(guild, record.user, with_permissions=True)
            payload |= {
                "guild_id": str(guild.id),
                "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
                "guild_locale": "en-US",
                "member": member | forge_member,
                "app_permissions": str(world.permissions(guild, world.bot.id)),
                "authorizing_integration_owners": {"0": str(guild.id)},
                "context": 0,
            }
        if source is not None:
            payload["message"] = world.message_payload(source)
        return payload

    def metadata(self, record: InteractionRecord, *, followup: bool = False) -> dict[str, Any]:
        """The interaction_metadata Discord puts on messages created through an interaction."""
        meta: dict[str, Any] = {
            "id": str(record.id),
            "type": record.type,
            "user": record.user.payload(),
            "authorizing_integration_owners": record.payload["authorizing_integration_owners"],
        }
        if record.type == APPLICATION_COMMAND:
            meta |= {"name": record.name, "command_type": 1}
        if record.source_message_id is not None:
            meta["interacted_message_id"] = str(record.source_message_id)
        if followup and record.original_message_id is not None:
            meta["original_response_message_id"] = str(record.original_message_id)
        return meta

    # rules

    def _check_callback(self, record: InteractionRecord) -> None:
        if self.world.clock.now() - record.created_at > ACK_DEADLINE_S:
            raise errors.not_found(errors.UNKNOWN_INTERACTION, "interaction")
        if record.ack_type is not None:
            raise ApiError(
                400, errors.ALREADY_ACKNOWLEDGED, "Interaction has already been acknowledged."
            )

    def _check_webhook(self, record: InteractionRecord) -> None:
        if self.world.clock.now() - record.created_at > TOKEN_LIFETIME_S:
            raise ApiError(401, errors.INVALID_WEBHOOK_TOKEN, "Invalid Webhook Token")
        if record.ack_type is None:
            raise errors.not_found(errors.UNKNOWN_WEBHOOK, "Webhook")

    # responding

    def respond(
        self, record: InteractionRecord, kind: int, data: dict[str, Any], files: list[UploadedFile]
    ) -> Message | None:
        """Apply one callback; returns the message it created or changed."""
        self._check_callback(record)
        if kind not in ALLOWED_RESPONSES.get(record.type, set()):
            raise _invalid_response_type(kind, record.type)
        if kind == UPDATE_MESSAGE and record.source_message_id is None:
            raise _invalid_response_type(kind, record.type)
        message = self._apply_response(record, kind, data, files)
        record.ack_type = kind
        record.acked_at = self.world.clock.now()
        if message is not None:
            record.original_message_id = message.id
        return message

    def _apply_response(
        self, record: InteractionRecord, kind: int, data: dict[str, Any], files: list[UploadedFile]
    ) -> Message | None:
        source = None
        if record.source_message_id is not None:
            source = self.world.messages[record.source_message_id]
        if kind == MESSAGE:
            return self._new_message(record, data, files)
        if kind == DEFERRED_MESSAGE:
            flags = {"flags": int(data.get("flags") or 0) & EPHEMERAL}
            return self._new_message(record, flags, [], loading=True)
        if kind == UPDATE_MESSAGE and source is not None:
            return self.messages.edit(source, data, files)
        if kind == AUTOCOMPLETE_RESULT:
            form = errors.FormErrors()
            form.max_items("data.choices", data.get("choices"), 25)
            form.raise_if_any()
            record.choices = list(data.get("choices") or [])
        if kind == MODAL:
            limits.check_modal(data)
            record.modal = data
        return source if kind == DEFERRED_UPDATE else None

    def _new_message(
        self,
        record: InteractionRecord,
        data: dict[str, Any],
        files: list[UploadedFile],
        *,
        loading: bool = False,
        followup: bool = False,
    ) -> Message:
        return self.messages.create(
            record.channel,
            self.world.bot,
            data,
            files,
            interaction=self.metadata(record, followup=followup),
            message_type=20 if record.type == APPLICATION_COMMAND and not followup else 0,
            visible_to=record.user.id,
            loading=loading,
        )

    def followup(
        self, record: InteractionRecord, data: dict[str, Any], files: list[UploadedFile]
    ) -> Message:
        self._check_webhook(record)
        original = self._original(record)
        if original is not None and original.loading and not record.followup_ids:
            # Discord's first follow-up after a "thinking" defer replaces the loading message.
            data = {k: v for k, v in data.items() if k != "flags"}
            message = self.messages.edit(original, data, files)
        else:
            message = self._new_message(record, data, files, followup=True)
        record.followup_ids.append(message.id)
        return message

    def _original(self, record: InteractionRecord) -> Message | None:
        if record.original_message_id is None:
            return None
        return self.world.messages[record.original_message_id]

    def webhook_message(self, record: InteractionRecord, message_id: str) -> Message:
        self._check_webhook(record)
        if message_id == "@original":
            found = self._original(record)
        else:
            ids = [record.original_message_id, *record.followup_ids]
            found = self.world.messages.get(int(message_id)) if int(message_id) in ids else None
        if found is None or found.deleted:
            raise errors.not_found(errors.UNKNOWN_MESSAGE, "Message")
        return found


def _invalid_response_type(kind: int, interaction_type: int) -> ApiError:
    form = errors.FormErrors()
    form.add(
        "type",
        "INTERACTION_RESPONSE_TYPE_INVALID",
        f"Response type {kind} is not valid for interaction type {interaction_type}",
    )
    return ApiError(400, errors.INVALID_FORM_BODY, "Invalid Form Body", form.tree)


RecordHandler = Callable[[web.Request, InteractionRecord], Awaitable[web.Response]]


class InteractionRoutes:
    def __init__(self, world: World, interactions: Interactions) -> None:
        self.world = world
        self.interactions = interactions

    def routes(self) -> list[RouteSpec]:
        webhook = "/webhooks/{application_id}/{token}"
        message = webhook + "/messages/{message_id}"
        return [
            ("POST", "/interactions/{interaction_id}/{token}/callback", self.callback),
            ("POST", webhook, self._by_token(self.execute)),
            ("GET", message, self._by_token(self.get_message)),
            ("PATCH", message, self._by_token(self.edit_message)),
            ("DELETE", message, self._by_token(self.delete_message)),
        ]

    def _by_token(self, handler: RecordHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def wrapper(request: web.Request) -> web.Response:
            record = self._record_for_webhook(request)
            try:
                return await handler(request, record)
            except ApiError as error:
                record.rejections.append(error)
                raise

        return wrapper

    def _record_for_webhook(self, request: web.Request) -> InteractionRecord:
        token = request.match_info["token"]
        if request.match_info["application_id"] == str(self.world.application_id):
            for record in self.interactions.records.values():
                if record.token == token:
                    return record
        raise errors.not_found(errors.UNKNOWN_WEBHOOK, "Webhook")

    async def callback(self, request: web.Request) -> web.Response:
        record = self.interactions.records.get(int(request.match_info["interaction_id"]))
        if record is None or record.token != request.match_info["token"]:
            raise errors.not_found(errors.UNKNOWN_INTERACTION, "interaction")
        try:
            payload, files = await read_body(request)
            kind = int(payload.get("type", 0))
            message = self.interactions.respond(record, kind, payload.get("data") or {}, files)
        except ApiError as error:
            record.rejections.append(error)
            raise
        if request.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204)
        return json_response(self._callback_body(record, kind, message))

    def _callback_body(
        self, record: InteractionRecord, kind: int, message: Message | None
    ) -> dict[str, Any]:
        interaction: dict[str, Any] = {
            "id": str(record.id),
            "type": record.type,
            "response_message_loading": kind == DEFERRED_MESSAGE,
            "response_message_ephemeral": message is not None and message.ephemeral,
        }
        body: dict[str, Any] = {"interaction": interaction}
        if message is not None:
            interaction["response_message_id"] = str(message.id)
            if kind in (MESSAGE, DEFERRED_MESSAGE, UPDATE_MESSAGE):
                body["resource"] = {"type": kind, "message": self.world.message_payload(message)}
        return body

    async def execute(self, request: web.Request, record: InteractionRecord) -> web.Response:
        payload, files = await read_body(request)
        message = self.interactions.followup(record, payload, files)
        if request.query.get("wait") not in ("1", "true", "True"):
            return web.Response(status=204)
        return json_response(self.world.message_payload(message))

    async def get_message(self, request: web.Request, record: InteractionRecord) -> web.Response:
        message = self.interactions.webhook_message(record, request.match_info["message_id"])
        return json_response(self.world.message_payload(message))

    async def edit_message(self, request: web.Request, record: InteractionRecord) -> web.Response:
        message = self.interactions.webhook_message(record, request.match_info["message_id"])
        payload, files = await read_body(request)
        self.interactions.messages.edit(message, payload, files)
        return json_response(self.world.message_payload(message))

    async def delete_message(self, request: web.Request, record: InteractionRecord) -> web.Response:
        message = self.interactions.webhook_message(record, request.match_info["message_id"])
        self.interactions.messages.delete(message)
        return web.Response(status=204)
