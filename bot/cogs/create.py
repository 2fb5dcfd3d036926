"""/create: a clip from a text prompt, by default four quick drafts of it first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.drafts import drafts_first
from bot.followups import FollowUp
from bot.options import CommandOptions, clip_options
from bot.replies import acknowledge
from bot.submit import request_from_options, submit_from_interaction
from jobqueue.models import JobKind

if TYPE_CHECKING:
    from bot.client import ReelBot


class Create(commands.Cog):
    def __init__(self, bot: ReelBot) -> None:
        self.bot = bot

    @app_commands.command(name="create")
    @app_commands.guild_only()
    @clip_options(
        "t2v",
        prompt="What the clip shows: subject, action, setting, style",
        model="Video model (the server's default if left out)",
        drafts="Four quick drafts first, to pick the one to render (your /settings default)",
    )
    async def create(
        self,
        interaction: discord.Interaction[ReelBot],
        drafts: bool | None = None,
        **options: Any,
    ) -> None:
        """Make a short video clip from a text prompt (four quick drafts first, to choose from)."""
        if not await acknowledge(interaction):
            return
        request = await request_from_options(self.bot, interaction, CommandOptions(**options))
        first = await drafts_first(self.bot, interaction, request, asked=drafts)
        follow = FollowUp(JobKind.DRAFTS if first else JobKind.CREATE, request, parent_id=None)
        await submit_from_interaction(self.bot, interaction, follow)


async def setup(bot: ReelBot) -> None:
    await bot.add_cog(Create(bot))
