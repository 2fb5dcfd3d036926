"""/create: a clip from a text prompt."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.followups import FollowUp
from bot.options import (
    ASPECT_CHOICES,
    NEGATIVE_MAX,
    PROMPT_MAX,
    SEED_MAX,
    CommandOptions,
    model_choices,
)
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
    @app_commands.describe(
        prompt="What the clip shows: subject, action, setting, style",
        negative="What to keep out of the clip",
        aspect="Shape of the clip (your /settings default if left out)",
        duration="Length in seconds (the model's default if left out)",
        seed="Seed for a repeatable clip (random if left out)",
        enhance="Let a language model expand the prompt first (your /settings default)",
        model="Video model (the server's default if left out)",
    )
    @app_commands.choices(aspect=ASPECT_CHOICES, model=model_choices("t2v"))
    async def create(
        self,
        interaction: discord.Interaction[ReelBot],
        prompt: app_commands.Range[str, 1, PROMPT_MAX],
        negative: app_commands.Range[str, 1, NEGATIVE_MAX] | None = None,
        aspect: str | None = None,
        duration: app_commands.Range[float, 0.1, 60.0] | None = None,
        seed: app_commands.Range[int, 0, SEED_MAX] | None = None,
        enhance: bool | None = None,
        model: str | None = None,
    ) -> None:
        """Make a short video clip from a text prompt."""
        if not await acknowledge(interaction):
            return
        options = CommandOptions(prompt, negative, aspect, duration, seed, enhance, model)
        request = await request_from_options(self.bot, interaction, options, "t2v")
        if request is None:
            return
        follow = FollowUp(JobKind.CREATE, request, parent_id=None)
        await submit_from_interaction(self.bot, interaction, follow)


async def setup(bot: ReelBot) -> None:
    await bot.add_cog(Create(bot))
