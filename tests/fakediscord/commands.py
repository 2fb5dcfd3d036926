"""Application commands: registration routes, and turning a driver invocation into the
`data` of an INTERACTION_CREATE, validated against the registered schema."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakediscord.errors import ApiError, DriverError, FormErrors, json_response
from tests.fakediscord.messages import image_size
from tests.fakediscord.multipart import read_body
from tests.fakediscord.routing import RouteSpec
from tests.fakediscord.state import ADMINISTRATOR, Channel, FileUpload, Guild, Role, User, World

SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = range(3, 12)
_NAME = re.compile(r"^[-_\w]{1,32}$")


class CommandNotVisible(DriverError):
    """Discord would not offer this command to this user (default_member_permissions, DMs)."""


class CommandRegistry:
    """Global and per-guild commands as Discord stores them (ids kept across re-syncs)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.scopes: dict[int | None, list[dict[str, Any]]] = {None: []}

    def replace(self, guild_id: int | None, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        form = FormErrors()
        form.max_items("commands", specs, 100)
        for index, spec in enumerate(specs):
            _check_command(form, str(index), spec)
        form.raise_if_any()
        previous = {(c["name"], c["type"]): c["id"] for c in self.scopes.get(guild_id, [])}
        stored = [self._stored(guild_id, spec, previous) for spec in specs]
        self.scopes[guild_id] = stored
        return stored

    def add(self, guild_id: int | None, spec: dict[str, Any]) -> dict[str, Any]:
        kept = [
            c
            for c in self.scopes.get(guild_id, [])
            if (c["name"], c["type"]) != (spec["name"], spec.get("type", 1))
        ]
        return self.replace(guild_id, [*kept, spec])[-1]

    def _stored(
        self, guild_id: int | None, spec: dict[str, Any], previous: dict[tuple[str, int], str]
    ) -> dict[str, Any]:
        kind = spec.get("type", 1)
        command_id = previous.get((spec["name"], kind)) or str(self.world.snowflakes.next())
        stored = {
            "id": command_id,
            "application_id": str(self.world.application_id),
            "version": str(self.world.snowflakes.next()),
            "type": kind,
            "description": "",
            "options": [],
            "default_member_permissions": None,
            "nsfw": False,
        } | spec
        stored["id"] = command_id
        if stored["default_member_permissions"] is not None:
            # Discord answers with a string, whatever number type the client sent.
            stored["default_member_permissions"] = str(int(stored["default_member_permissions"]))
        if guild_id is not None:
            stored["guild_id"] = str(guild_id)
        return stored

    def find(self, guild: Guild | None, name: str) -> dict[str, Any]:
        scopes = ([guild.id] if guild is not None else []) + [None]
        for scope in scopes:
            for command in self.scopes.get(scope, []):
                if command["name"] == name and command["type"] == 1:
                    return command
        known = sorted(c["name"] for s in scopes for c in self.scopes.get(s, []))
        raise DriverError(f"no slash command /{name} is registered here; registered: {known}")


def _check_command(form: FormErrors, path: str, spec: dict[str, Any]) -> None:
    if not _NAME.match(spec.get("name", "")) or spec["name"] != spec["name"].lower():
        form.add(f"{path}.name", "APPLICATION_COMMAND_INVALID_NAME", "Invalid command name")
    if spec.get("type", 1) == 1 and not 1 <= len(spec.get("description", "")) <= 100:
        form.add(f"{path}.description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100")
    _check_options(form, f"{path}.options", spec.get("options") or [])


def _check_options(form: FormErrors, path: str, options: list[dict[str, Any]]) -> None:
    form.max_items(path, options, 25)
    names = [o.get("name") for o in options]
    if len(names) != len(set(names)):
        form.add(path, "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS", "Duplicate names")
    seen_optional = False
    for index, option in enumerate(options):
        here = f"{path}.{index}"
        if not _NAME.match(option.get("name", "")):
            form.add(f"{here}.name", "APPLICATION_COMMAND_INVALID_NAME", "Invalid option name")
        if not 1 <= len(option.get("description", "")) <= 100:
            form.add(f"{here}.description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100")
        form.max_items(f"{here}.choices", option.get("choices"), 25)
        if option.get("required"):
            if seen_optional:
                form.add(here, "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID", "Required first")
        elif option["type"] not in (SUB_COMMAND, SUB_COMMAND_GROUP):
            seen_optional = True
        _check_options(form, f"{here}.options", option.get("options") or [])


class CommandRoutes:
    def __init__(self, world: World, registry: CommandRegistry) -> None:
        self.world = world
        self.registry = registry

    def routes(self) -> list[RouteSpec]:
        app = "/applications/{application_id}"
        routes: list[RouteSpec] = []
        for base in (app + "/commands", app + "/guilds/{guild_id}/commands"):
            routes += [
                ("GET", base, self.list_commands),
                ("PUT", base, self.replace_commands),
                ("POST", base, self.add_command),
                ("DELETE", base + "/{command_id}", self.delete_command),
            ]
        return routes

    def _scope(self, request: web.Request) -> int | None:
        if request.match_info["application_id"] != str(self.world.application_id):
            raise ApiError(403, 50001, "Missing Access")
        guild_id = request.match_info.get("guild_id")
        return None if guild_id is None else self.world.guild(guild_id).id

    async def list_commands(self, request: web.Request) -> web.Response:
        return json_response(self.registry.scopes.get(self._scope(request), []))

    async def replace_commands(self, request: web.Request) -> web.Response:
        scope = self._scope(request)
        body = await request.json()
        return json_response(self.registry.replace(scope, body))

    async def add_command(self, request: web.Request) -> web.Response:
        scope = self._scope(request)
        payload, _ = await read_body(request)
        return json_response(self.registry.add(scope, payload), status=201)

    async def delete_command(self, request: web.Request) -> web.Response:
        scope = self._scope(request)
        commands = self.registry.scopes.get(scope, [])
        self.registry.scopes[scope] = [
            c for c in commands if c["id"] != request.match_info["command_id"]
        ]
        return web.Response(status=204)


@dataclass
class InvocationBuilder:
    """Builds `data` (options + resolved) for one invocation, failing like Discord's UI would."""

    world: World
    channel: Channel
    user: User
    focused: str | None = None
    client_checks: bool = True
    """False: send values Discord's client would not (out of bounds, not a choice)."""
    resolved: dict[str, dict[str, Any]] = field(default_factory=dict)

    def build(
        self, command: dict[str, Any], path: list[str], values: Mapping[str, Any]
    ) -> dict[str, Any]:
        specs: list[dict[str, Any]] = command.get("options") or []
        nesting: list[tuple[str, int]] = []
        for part in path:
            spec = _option_named(specs, part, f"/{command['name']}")
            if spec["type"] not in (SUB_COMMAND, SUB_COMMAND_GROUP):
                raise DriverError(f"{part!r} is an option of /{command['name']}, not a subcommand")
            nesting.append((part, spec["type"]))
            specs = spec.get("options") or []
        if any(s["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for s in specs):
            names = [s["name"] for s in specs]
            raise DriverError(f"/{command['name']} {' '.join(path)} needs a subcommand: {names}")
        options = self._leaf_options(specs, values, " ".join([command["name"], *path]))
        for name, kind in reversed(nesting):
            options = [{"name": name, "type": kind, "options": options}]
        data: dict[str, Any] = {"id": command["id"], "name": command["name"], "type": 1}
        data["options"] = options
        if self.resolved:
            data["resolved"] = self.resolved
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        return data

    def _leaf_options(
        self, specs: list[dict[str, Any]], values: Mapping[str, Any], where: str
    ) -> list[dict[str, Any]]:
        options = []
        for name, value in values.items():
            spec = _option_named(specs, name, f"/{where}")
            option: dict[str, Any] = {"name": name, "type": spec["type"]}
            if name == self.focused:
                option |= {"value": str(value), "focused": True}
            else:
                option["value"] = self._value(spec, value, f"/{where} {name}")
            options.append(option)
        for spec in specs:
            if spec.get("required") and spec["name"] not in values:
                raise DriverError(f"/{where} requires option {spec['name']!r}")
        return options

    def _value(self, spec: dict[str, Any], value: Any, where: str) -> Any:
        kind = spec["type"]
        if kind in (STRING, INTEGER, NUMBER):
            return _scalar(spec, value, where, client_checks=self.client_checks)
        if kind == BOOLEAN and isinstance(value, bool):
            return value
        if kind in (USER, MENTIONABLE) and isinstance(value, User):
            return self._resolve_user(value)
        if kind in (ROLE, MENTIONABLE) and isinstance(value, Role):
            self.resolved.setdefault("roles", {})[str(value.id)] = value.payload()
            return str(value.id)
        if kind == CHANNEL and isinstance(value, Channel):
            return self._resolve_channel(spec, value, where)
        if kind == ATTACHMENT and isinstance(value, FileUpload):
            return self._resolve_attachment(value)
        raise DriverError(f"{where}: {value!r} does not fit option type {kind}")

    def _resolve_user(self, user: User) -> str:
        self.resolved.setdefault("users", {})[str(user.id)] = user.payload()
        guild = self.world.guild_of(self.channel)
        if guild is not None and user.id in guild.members:
            member = self.world.member_payload(guild, user, with_user=False, with_permissions=True)
            self.resolved.setdefault("members", {})[str(user.id)] = member
        return str(user.id)

    def _resolve_channel(self, spec: dict[str, Any], channel: Channel, where: str) -> str:
        allowed = spec.get("channel_types")
        kind = 1 if channel.is_dm else 0
        if allowed and kind not in allowed:
            raise DriverError(f"{where}: channel type {kind} is not one of {allowed}")
        entry = {k: v for k, v in channel.payload().items() if k != "recipients"}
        guild = self.world.guild_of(channel)
        user_permissions = 0 if guild is None else self.world.permissions(guild, self.user.id)
        self.resolved.setdefault("channels", {})[str(channel.id)] = entry | {
            "name": channel.name,
            "permissions": str(user_permissions),
        }
        return str(channel.id)

    def _resolve_attachment(self, upload: FileUpload) -> str:
        size = image_size(upload.data)
        if upload.width is not None and upload.height is not None:
            size = (upload.width, upload.height)
        content_type = upload.content_type or mimetypes.guess_type(upload.filename)[0]
        attachment = self.world.store_attachment(
            self.channel.id, upload.filename, upload.data, content_type=content_type, size=size
        )
        self.resolved.setdefault("attachments", {})[str(attachment.id)] = attachment.payload() | {
            "ephemeral": True
        }
        return str(attachment.id)


def _option_named(specs: list[dict[str, Any]], name: str, where: str) -> dict[str, Any]:
    for spec in specs:
        if spec["name"] == name:
            return spec
    raise DriverError(f"{where} has no option {name!r}; it has {[s['name'] for s in specs]}")


def _scalar(spec: dict[str, Any], value: Any, where: str, *, client_checks: bool) -> Any:
    kind = spec["type"]
    fits = {
        STRING: isinstance(value, str),
        INTEGER: isinstance(value, int) and not isinstance(value, bool),
        NUMBER: isinstance(value, int | float) and not isinstance(value, bool),
    }[kind]
    if not fits:
        raise DriverError(f"{where}: {value!r} does not fit option type {kind}")
    if not client_checks:
        return value
    choices = spec.get("choices")
    if choices and value not in [c["value"] for c in choices]:
        raise DriverError(f"{where}: {value!r} is not one of the choices {choices}")
    if kind == STRING:
        if not spec.get("min_length", 0) <= len(value) <= spec.get("max_length", 6000):
            raise DriverError(f"{where}: length {len(value)} is outside the option's bounds")
    elif not spec.get("min_value", value) <= value <= spec.get("max_value", value):
        raise DriverError(f"{where}: {value} is outside the option's bounds")
    return value


def check_visible(world: World, command: dict[str, Any], channel: Channel, user: User) -> None:
    """Discord hides commands from users without default_member_permissions, and guild-only
    commands in DMs."""
    guild = world.guild_of(channel)
    if guild is None:
        contexts = command.get("contexts")
        if (
            "guild_id" in command
            or command.get("dm_permission") is False
            or (contexts is not None and 1 not in contexts)
        ):
            raise CommandNotVisible(f"/{command['name']} is not available in DMs")
        return
    needed = command.get("default_member_permissions")
    if needed is None:
        return
    required = int(needed) or ADMINISTRATOR  # "0" leaves the command to administrators
    if world.permissions(guild, user.id) & required != required:
        raise CommandNotVisible(f"{user.name} cannot see /{command['name']} (needs {needed})")
