"""/animate: a clip that starts from an uploaded picture (and may end on another, or loop)."""

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
    END_IMAGE,
    MAX_IMAGE_BYTES,
    START_IMAGE,
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
        end_image="A picture the clip ends on (PNG, JPEG or WebP, up to 10 MB)",
        loop="End on the start picture, so the clip plays as a seamless loop",
    )
    async def animate(
        self,
        interaction: discord.Interaction[ReelBot],
        image: discord.Attachment,
        end_image: discord.Attachment | None = None,
        loop: bool = False,
        **options: Any,
    ) -> None:
        """Bring a picture to life as a short video clip."""
        if not await acknowledge(interaction):
            return
        request = await request_from_options(self.bot, interaction, CommandOptions(**options))
        request.loop = loop
        if end_image is not None:
            # Named before the check: the check picks the model by whether one is given.
            request.end_image_path = str(self.upload_path(f"{interaction.id}-end.png"))
        try:
            # Submitting checks the request again; checking first costs no download when
            # the prompt or the length is refused.
            checked(self.bot.settings, FollowUp(JobKind.ANIMATE, request, parent_id=None))
            path = await self.keep_image(image, name=f"{interaction.id}.png")
            if end_image is not None:
                await self.keep_image(end_image, name=f"{interaction.id}-end.png", which=END_IMAGE)
        except (Refused, ImageRefused) as refusal:
            await reply_privately(interaction, str(refusal))
            return
        request.image_path = str(path)
        follow = FollowUp(JobKind.ANIMATE, request, parent_id=None)
        await submit_from_interaction(self.bot, interaction, follow)

    def upload_path(self, name: str) -> Path:
        return self.bot.settings.data_dir / "uploads" / name

    async def keep_image(
        self, image: discord.Attachment, *, name: str, which: str = START_IMAGE
    ) -> Path:
        """Check, download and save a picture under data/uploads/."""
        check_attachment(image, which=which)
        data = await download(self.bot.session, image.url, max_bytes=MAX_IMAGE_BYTES, which=which)
        path = self.upload_path(name)
        return await asyncio.to_thread(save_start_image, data, path, which=which)


async def setup(bot: ReelBot) -> None:
    await bot.add_cog(Animate(bot))
