"""/info (your usage and limits) and /help (what the bot does and how to use it)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.render import NO_PINGS
from bot.replies import acknowledge, reply_privately
from jobqueue.models import JobStatus

if TYPE_CHECKING:
    from bot.client import ReelBot

DAY_S = 24 * 3600

HELP = (
    ("/create prompt", "Make a clip from a text prompt: first four quick drafts to choose from."
     " Options: negative prompt, aspect, duration, seed, enhance (let a language model expand"
     " the prompt), model, drafts (False: the clip at once)."),
    ("/animate image prompt", "Make a clip that starts from your picture. Options: end_image (a"
     " second picture the clip ends on), loop (True: it ends where it began, a seamless loop)."),
    ("/storyboard idea", "Plan a film of several shots (a language model writes them), check"
     " or edit the plan, then Shoot: the film is posted in a thread, with Reshoot 1-N."),
    ("/queue", "See your clips in the queue, their place in line and when they should start."),
    ("/cancel [job]", "Cancel a clip that is waiting or being made (your latest by default)."),
    ("/settings", "Set your default aspect, whether prompts are enhanced and whether /create"
     " makes drafts first."),
    ("/info", "See how many clips you made today and your limits."),
    ("Buttons under drafts", "Render 1-4: the full clip from that draft · Vary 1-4: four new"
     " drafts near it · 🔁 New drafts · 🗑️ Delete."),
    ("Buttons under a clip", "🔁 Retry with a new seed · ✏️ Remix the prompt · ➕ Extend from the"
     " last frame · ⬆️ HD (same seed, higher quality) · 🗑️ Delete (yours, or as a moderator)."),
    ("Reactions on a clip", "🔁 retry · ❌ delete (yours, or as a moderator) · ✉️ get the clip's"
     " seed, prompts and settings by direct message."),
)  # fmt: skip


class Info(commands.Cog):
    def __init__(self, bot: ReelBot) -> None:
        self.bot = bot

    @app_commands.command(name="info")
    @app_commands.guild_only()
    async def info(self, interaction: discord.Interaction[ReelBot]) -> None:
        """See your usage today and your limits."""
        if not await acknowledge(interaction):
            return
        user_id = interaction.user.id
        limits = await self.bot.queue.limits_for(user_id)
        jobs = await self.bot.queue.user_jobs(user_id, active_only=False)
        today = sum(1 for job in jobs if job.created_at >= time.time() - DAY_S)
        waiting = sum(1 for job in jobs if job.status is JobStatus.QUEUED)
        running = sum(1 for job in jobs if job.status is JobStatus.RUNNING)
        daily = (
            f"up to {limits.max_daily_per_user} a day"
            if limits.max_daily_per_user
            else "no daily limit"
        )
        await reply_privately(
            interaction,
            f"In the last 24 hours you asked for {today} clips ({daily}). You have {waiting}"
            f" waiting (up to {limits.max_waiting_per_user}) and {running} being made"
            f" (up to {limits.max_running_per_user} at once).",
        )

    @app_commands.command(name="help")
    async def show_help(self, interaction: discord.Interaction[ReelBot]) -> None:
        """How to make clips and what the buttons and reactions do."""
        embed = discord.Embed(
            title="Making clips",
            description="Clips are made one after another on this server's own GPU.",
        )
        for name, value in HELP:
            embed.add_field(name=name, value=value, inline=False)
        await interaction.response.send_message(
            embed=embed, ephemeral=True, allowed_mentions=NO_PINGS
        )


async def setup(bot: ReelBot) -> None:
    await bot.add_cog(Info(bot))
