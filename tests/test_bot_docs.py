"""Every command and option is described, in Discord and in the README; the invite is right."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from discord import app_commands
from discord.ext import commands

from bot.invite import invite_url

README = Path(__file__).resolve().parent.parent / "README.md"
USER_COGS = ("create", "animate", "queue_cmds", "usersettings", "info")


def readme_section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end]


def slash_commands() -> list[app_commands.Command[commands.Cog, ..., None]]:
    found = []
    for name in USER_COGS:
        module = importlib.import_module(f"bot.cogs.{name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, commands.Cog):
                found.extend(value.__cog_app_commands__)
    return found


def test_the_user_commands_are_found() -> None:
    names = {command.name for command in slash_commands()}
    assert names == {"create", "animate", "queue", "cancel", "settings", "info", "help"}


@pytest.mark.parametrize("command", slash_commands(), ids=lambda command: command.name)
def test_every_command_and_option_is_described(
    command: app_commands.Command[commands.Cog, ..., None],
) -> None:
    assert command.description != "…"
    for parameter in command.parameters:
        assert parameter.description != "…", f"/{command.name} {parameter.name}"
    assert f"`/{command.name}" in readme_section("Commands")


def test_readme_invite_link_has_the_scopes_and_permissions_the_bot_needs() -> None:
    section = readme_section("Setting up the Discord application")
    link = re.search(r"https://discord\.com/oauth2/authorize\?\S+", section)
    assert link is not None
    assert link.group(0) == invite_url(0).replace("client_id=0", "client_id=APPLICATION_ID")
