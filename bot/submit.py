"""Submitting a job for a user: the gate's checks, then the queue, then a private answer.

The public status message is not posted here: the delivery cog posts and updates it for every
job it sees, whatever created the job, so one place owns each status message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

from bot import render
from bot.followups import FollowUp
from bot.gate import admit_user
from bot.options import CommandOptions, build_request, duration_problem
from bot.replies import reply_privately
from jobqueue.errors import QueueError
from jobqueue.models import Job, JobRequest
from pipeline.presets import Task

if TYPE_CHECKING:
    from bot.client import ReelBot


class Refused(Exception):
    """The job was not submitted; ``str(error)`` is the sentence for the user."""


async def submit_for_user(
    bot: ReelBot,
    follow: FollowUp,
    *,
    user_id: int,
    guild_id: int | None,
    channel_id: int | None,
    idempotency_key: str,
) -> Job:
    """Check and submit ``follow`` for ``user_id``; raises :class:`Refused` with the reason."""
    refusal = await admit_user(
        bot, guild_id=guild_id, channel_id=channel_id, user_id=user_id, request=follow.request
    )
    if refusal is not None:
        raise Refused(refusal)
    try:
        return await bot.queue.submit(
            follow.kind,
            follow.request,
            user_id=user_id,
            guild_id=guild_id,
            channel_id=channel_id,
            parent_id=follow.parent_id,
            idempotency_key=idempotency_key,
        )
    except QueueError as exc:
        raise Refused(str(exc)) from exc


async def submit_from_interaction(
    bot: ReelBot, interaction: discord.Interaction, follow: FollowUp
) -> Job | None:
    """Submit for the user of an acknowledged interaction and tell them privately how it went.

    The interaction's id is the idempotency key: an interaction delivered twice (a gateway
    RESUME replaying it) can never queue two jobs.
    """
    try:
        job = await submit_for_user(
            bot,
            follow,
            user_id=interaction.user.id,
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            idempotency_key=f"interaction:{interaction.id}",
        )
    except Refused as refusal:
        await reply_privately(interaction, str(refusal))
        return None
    position = await bot.queue.position(job.id)
    await reply_privately(interaction, render.queued_ack(job, position))
    return job


async def request_from_options(
    bot: ReelBot, interaction: discord.Interaction, options: CommandOptions, task: Task
) -> JobRequest | None:
    """The request a command's options ask for, filled from the user's /settings defaults.

    ``None`` after telling the user privately why the options cannot make a clip.
    """
    prefs = await bot.store.prefs(interaction.user.id)
    request = build_request(options, prefs, bot.settings)
    problem = duration_problem(request, bot.settings, task)
    if problem is not None:
        await reply_privately(interaction, problem)
        return None
    return request
