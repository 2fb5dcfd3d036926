"""/animate: a clip that starts from an uploaded picture."""

from __future__ import annotations

import asyncio
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
from bot.replies import acknowledge, reply_privately
from bot.submit import request_from_options, submit_from_interaction
from bot.uploads import (
    MAX_IMAGE_BYTES,
    ImageRefused,
    check_attachment,
    download,
    save_start_image,
)
from jobqueue.models import JobKind

if TYPE_CHECKING:
    from pathlib import Path

    from bot.client import ReelBot


class Animate(commands.Cog):
    def __init__(self, bot: ReelBot) -> None:
        self.bot = bot

    @app_commands.command(name="animate")
    @app_commands.guild_only()
    @app_commands.describe(
        image="The picture the clip starts from (PNG, JPEG or WebP, up to 10 MB)",
        prompt="What happens in the clip",
        negative="What to keep out of the clip",
        aspect="Shape of the clip (your /settings default if left out)",
        duration="Length in seconds (the model's default if left out)",
        seed="Seed for a repeatable clip (random if left out)",
        enhance="Let a language model expand the prompt first (your /settings default)",
        model="Image-to-video model (the server's default if left out)",
    )
    @app_commands.choices(aspect=ASPECT_CHOICES, model=model_choices("i2v"))
    async def animate(
        self,
        interaction: discord.Interaction[ReelBot],
        image: discord.Attachment,
        prompt: app_commands.Range[str, 1, PROMPT_MAX],
        negative: app_commands.Range[str, 1, NEGATIVE_MAX] | None = None,
        aspect: str | None = None,
        duration: app_commands.Range[float, 0.1, 60.0] | None = None,
        seed: app_commands.Range[int, 0, SEED_MAX] | None = None,
        enhance: bool | None = None,
        model: str | None = None,
    ) -> None:
        """Bring a picture to life as a short video clip."""
        if not await acknowledge(interaction):
            return
        options = CommandOptions(prompt, negative, aspect, duration, seed, enhance, model)
        request = await request_from_options(self.bot, interaction, options, "i2v")
        if request is None:
            return
        try:
            path = await self.keep_image(image, name=f"{interaction.id}.png")
        except ImageRefused as refusal:
            await reply_privately(interaction, str(refusal))
            return
        request.image_path = str(path)
        follow = FollowUp(JobKind.ANIMATE, request, parent_id=None)
        await submit_from_interaction(self.bot, interaction, follow)

    async def keep_image(self, image: discord.Attachment, *, name: str) -> Path:
        """Check, download and save the start image under data/uploads/."""
        check_attachment(image)
        data = await download(self.bot.session, image.url, max_bytes=MAX_IMAGE_BYTES)
        path = self.bot.settings.data_dir / "uploads" / name
        return await asyncio.to_thread(save_start_image, data, path)


async def setup(bot: ReelBot) -> None:
    await bot.add_cog(Animate(bot))
