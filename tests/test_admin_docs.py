"""Every /admin subcommand and option is described in Discord and in the README."""

from __future__ import annotations

from pathlib import Path

import pytest
from discord import app_commands

from bot.cogs.admin import Admin

README = Path(__file__).resolve().parent.parent / "README.md"


def moderation_section() -> str:
    text = README.read_text()
    start = text.index("## Moderation\n")
    return text[start : text.find("\n## ", start + 1)]


def subcommands() -> list[app_commands.Command[Admin, ..., None]]:
    found: list[app_commands.Command[Admin, ..., None]] = []
    for item in Admin.__cog_app_commands__:
        if isinstance(item, app_commands.Group):
            found.extend(c for c in item.walk_commands() if isinstance(c, app_commands.Command))
        else:
            found.append(item)
    return found


def name(command: app_commands.Command[Admin, ..., None]) -> str:
    return f"admin {command.qualified_name}"


def test_the_subcommands_are_found() -> None:
    names = {name(command) for command in subcommands()}
    assert len(names) == 28
    assert {"admin ban", "admin blocklist add", "admin queue pause", "admin stats"} <= names


@pytest.mark.parametrize("command", subcommands(), ids=name)
def test_every_subcommand_is_described_and_documented(
    command: app_commands.Command[Admin, ..., None],
) -> None:
    assert command.description != "…"
    for parameter in command.parameters:
        assert parameter.description != "…", f"/{name(command)} {parameter.name}"
    section = moderation_section()
    # "`/admin queue pause` / `resume`" documents both of a pair on one line.
    pair = f"` / `{command.name}" in section
    assert f"`/{name(command)}" in section or pair
