"""/queue (your jobs, their place in line and the queue's length) and /cancel."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import render
from bot.permissions import is_moderator
from bot.replies import acknowledge, reply_privately
from jobqueue.errors import QueueError
from jobqueue.models import Job, JobStatus
from jobqueue.moderation.models import AuditAction

if TYPE_CHECKING:
    from bot.client import ReelBot

MAX_LISTED = 10


class QueueCommands(commands.Cog):
    def __init__(self, bot: ReelBot) -> None:
        self.bot = bot

    @app_commands.command(name="queue")
    @app_commands.guild_only()
    async def show_queue(self, interaction: discord.Interaction[ReelBot]) -> None:
        """See your clips in the queue, their place in line, and how long the queue is."""
        if not await acknowledge(interaction):
            return
        stats = await self.bot.queue.stats()
        lines = [
            f"The queue has {stats.waiting} waiting and {stats.running} running"
            + (" and is paused by the moderators." if stats.paused else ".")
        ]
        jobs = await self.bot.queue.user_jobs(interaction.user.id)
        if not jobs:
            lines.append("You have no clips waiting or being made.")
        for job in jobs[:MAX_LISTED]:
            lines.append(await self.job_line(job))
        if len(jobs) > MAX_LISTED:
            lines.append(f"…and {len(jobs) - MAX_LISTED} more.")
        await reply_privately(interaction, "\n".join(lines))

    async def job_line(self, job: Job) -> str:
        prompt = render.shown(job.request.prompt, 80)
        if job.status is JobStatus.QUEUED:
            position = await self.bot.queue.position(job.id)
            if position is not None:
                return (
                    f"• {render.job_label(job)}: number {position.position} in line, starts in"
                    f" {render.duration_words(position.eta_seconds)} — {prompt}"
                )
        where = render.STAGE_LINES[job.stage]
        return f"• {render.job_label(job)}: {where}, {job.percent}% — {prompt}"

    @app_commands.command(name="cancel")
    @app_commands.guild_only()
    @app_commands.describe(job="The job number to cancel (your latest if left out)")
    async def cancel(
        self, interaction: discord.Interaction[ReelBot], job: int | None = None
    ) -> None:
        """Cancel one of your clips that is waiting or being made."""
        if not await acknowledge(interaction):
            return
        job_id = job if job is not None else await self.latest_active(interaction.user.id)
        if job_id is None:
            await reply_privately(interaction, "You have no clips waiting or being made.")
            return
        moderator = await is_moderator(self.bot, interaction.user, interaction.guild_id)
        try:
            cancelled = await self.bot.queue.cancel(
                job_id, by_user_id=interaction.user.id, is_moderator=moderator
            )
        except QueueError as exc:
            await reply_privately(interaction, str(exc))
            return
        if cancelled.user_id != interaction.user.id and cancelled.guild_id is not None:
            await self.bot.moderation.audit(
                cancelled.guild_id,
                actor_id=interaction.user.id,
                action=AuditAction.JOB_CANCEL,
                target_user_id=cancelled.user_id,
                target_job_id=cancelled.id,
                reason="/cancel",
            )
        await reply_privately(interaction, cancel_sentence(cancelled))

    @cancel.autocomplete("job")
    async def cancel_choices(
        self, interaction: discord.Interaction[ReelBot], current: str
    ) -> list[app_commands.Choice[int]]:
        jobs = await self.bot.queue.user_jobs(interaction.user.id)
        return [
            app_commands.Choice(name=f"#{job.id}: {job.request.prompt}"[:100], value=job.id)
            for job in jobs
            if current in str(job.id)
        ][:25]

    async def latest_active(self, user_id: int) -> int | None:
        jobs = await self.bot.queue.user_jobs(user_id)
        return max((job.id for job in jobs), default=None)


def cancel_sentence(job: Job) -> str:
    if job.status is JobStatus.CANCELLED:
        return f"Cancelled {render.job_label(job)}."
    if job.status.is_terminal:
        return f"{render.job_label(job).capitalize()} had already ended."
    return f"{render.job_label(job).capitalize()} will stop after its current step."


async def setup(bot: ReelBot) -> None:
    await bot.add_cog(QueueCommands(bot))
