"""/animate: a clip that starts from an uploaded picture."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.followups import FollowUp
from bot.options import CommandOptions, clip_options
from bot.replies import acknowledge, reply_privately
from bot.submit import Refused, checked, request_from_options, submit_from_interaction
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
    @clip_options(
        "i2v",
        image="The picture the clip starts from (PNG, JPEG or WebP, up to 10 MB)",
        prompt="What happens in the clip",
        model="Image-to-video model (the server's default if left out)",
    )
    async def animate(
        self, interaction: discord.Interaction[ReelBot], image: discord.Attachment, **options: Any
    ) -> None:
        """Bring a picture to life as a short video clip."""
        if not await acknowledge(interaction):
            return
        request = await request_from_options(self.bot, interaction, CommandOptions(**options))
        try:
            # Submitting checks the request again; checking first costs no download when
            # the prompt or the length is refused.
            checked(self.bot.settings, FollowUp(JobKind.ANIMATE, request, parent_id=None))
            path = await self.keep_image(image, name=f"{interaction.id}.png")
        except (Refused, ImageRefused) as refusal:
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
