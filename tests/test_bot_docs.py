"""Every command and option is described, in Discord and in the README; the invite is right;
the README's commands, limits and benchmarks say what the code and CI do."""

from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path

import pytest
from discord import app_commands
from discord.ext import commands

from bot.cli import build_parser
from bot.invite import invite_url
from pipeline.text import MAX_NEGATIVE_CHARS, MAX_PROMPT_CHARS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BENCHMARKS = ROOT / "benchmarks"
USER_COGS = ("create", "animate", "storyboard", "queue_cmds", "usersettings", "info")


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
    expected = {"create", "animate", "storyboard", "queue", "cancel", "settings", "info", "help"}
    assert names == expected


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


def cli_options() -> list[tuple[str, tuple[str, ...]]]:
    """Each ``reelbot`` subcommand, alone and with the spellings of each of its options."""
    parser = build_parser()
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                found.append((name, ()))
                found.extend(
                    (name, tuple(argument.option_strings))
                    for argument in subparser._actions
                    if argument.option_strings and "--help" not in argument.option_strings
                )
    return found


def readme_examples(name: str) -> list[list[str]]:
    """The words of each line of the README's shell examples that runs ``reelbot name``."""
    blocks = re.findall(r"```bash\n(.*?)\n```", README.read_text(), re.DOTALL)
    lines = [line.split() for block in blocks for line in block.splitlines()]
    return [words for words in lines if words[:2] == ["reelbot", name]]


@pytest.mark.parametrize(
    ("name", "spellings"),
    cli_options(),
    ids=[f"{name} {'/'.join(spellings)}".strip() for name, spellings in cli_options()],
)
def test_every_cli_command_and_option_is_in_the_readme(
    name: str, spellings: tuple[str, ...]
) -> None:
    text = README.read_text()
    examples = readme_examples(name)
    if not spellings:
        assert f"`reelbot {name}" in text or examples
        return
    in_prose = any(
        f"`{spelling}" in text or f"`reelbot {name} {spelling}" in text for spelling in spellings
    )
    in_example = any(spelling in words for spelling in spellings for words in examples)
    assert in_prose or in_example


def test_the_readme_test_command_is_the_one_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    ci_command = next(line for line in ci.splitlines() if line.startswith("pip install torch"))
    blocks = re.findall(r"```bash\n(.*?)\n```", readme_section("Quick start"), re.DOTALL)
    assert ci_command in blocks


def test_the_readme_states_the_prompt_limits_the_pipeline_enforces() -> None:
    commands_section = readme_section("Commands")
    assert f"prompt may be up to {MAX_PROMPT_CHARS:,} characters" in commands_section
    assert f"negative prompt up to {MAX_NEGATIVE_CHARS:,}" in commands_section


def test_every_benchmark_is_described_in_the_benchmarks_readme() -> None:
    described = (BENCHMARKS / "README.md").read_text()
    for script in sorted(BENCHMARKS.glob("bench_*.py")):
        assert f"`python benchmarks/{script.name}`" in described, script.name
    assert "(benchmarks/README.md)" in readme_section("Performance")
