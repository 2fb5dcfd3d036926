"""/settings: a user's own defaults for aspect, prompt enhancing and drafts first."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.options import ASPECT_CHOICES
from bot.replies import acknowledge, reply_privately
from bot.store import UserPrefs

if TYPE_CHECKING:
    from bot.client import ReelBot


class UserSettings(commands.Cog):
    def __init__(self, bot: ReelBot) -> None:
        self.bot = bot

    @app_commands.command(name="settings")
    @app_commands.describe(
        aspect="Your default shape for new clips",
        enhance="Whether a language model expands your prompts by default",
        drafts="Whether /create makes four quick drafts first, to pick the one to render",
    )
    @app_commands.choices(aspect=ASPECT_CHOICES)
    async def settings(
        self,
        interaction: discord.Interaction[ReelBot],
        aspect: str | None = None,
        enhance: bool | None = None,
        drafts: bool | None = None,
    ) -> None:
        """See or change your defaults for new clips."""
        if not await acknowledge(interaction):
            return
        store = self.bot.store
        prefs = await store.prefs(interaction.user.id)
        if aspect is not None or enhance is not None or drafts is not None:
            prefs = replace(
                prefs,
                aspect=aspect if aspect is not None else prefs.aspect,
                enhance=enhance if enhance is not None else prefs.enhance,
                drafts=drafts if drafts is not None else prefs.drafts,
            )
            await store.set_prefs(interaction.user.id, prefs)
            await reply_privately(interaction, f"Saved. {self.describe(prefs)}")
            return
        await reply_privately(interaction, self.describe(prefs))

    def describe(self, prefs: UserPrefs) -> str:
        aspect = prefs.aspect or "16:9 (the server's default)"
        enhance = prefs.enhance if prefs.enhance is not None else self.bot.settings.enhance_default
        enhancing = "are expanded by a language model" if enhance else "are used as you write them"
        if prefs.drafts is None:
            drafting = "/create follows the server's choice on drafts"
        elif prefs.drafts:
            drafting = "/create makes four quick drafts first"
        else:
            drafting = "/create renders your clip straight away"
        return f"Your new clips are {aspect}, your prompts {enhancing}, and {drafting}."


async def setup(bot: ReelBot) -> None:
    await bot.add_cog(UserSettings(bot))
