"""A fake Discord (REST + gateway) for driving the real discord.py client in tests."""

from __future__ import annotations

from tests.fakediscord.commands import CommandNotVisible
from tests.fakediscord.driver import FakeDiscord, InteractionHandle, default_world
from tests.fakediscord.errors import ApiError, DriverError
from tests.fakediscord.state import (
    Attachment,
    Channel,
    FileUpload,
    Message,
    Pings,
    Role,
    User,
    World,
)

__all__ = [
    "ApiError",
    "Attachment",
    "Channel",
    "CommandNotVisible",
    "DriverError",
    "FakeDiscord",
    "FileUpload",
    "InteractionHandle",
    "Message",
    "Pings",
    "Role",
    "User",
    "World",
    "default_world",
]
