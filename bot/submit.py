"""Submitting a job for a user: the door check, the gate's checks, then the queue, then a
private answer.

Every way a job is asked for (both commands, the remix modal, buttons, reactions) comes through
:func:`submit_for_user`, so nothing is queued that the pipeline would refuse before it runs:
the request is checked here by the pipeline's own rules (:func:`checked`), with the preset the
job will use, and its text is cleaned. Discord's client enforces the option ranges it shows,
but a bot cannot rely on a client, and discord.py does not check them.

The public status message is not posted here: the delivery cog posts and updates it for every
job it sees, whatever created the job, so one place owns each status message.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import discord

from bot import render
from bot.extend_chain import too_long_extension
from bot.followups import FollowUp
from bot.gate import admit_user
from bot.options import CommandOptions, build_request, job_preset
from bot.replies import reply_privately
from bot.settings import Settings
from jobqueue.errors import QueueError
from jobqueue.models import Job, JobKind, JobRequest
from jobqueue.safety import PARENT_WITHHELD, may_extend
from jobqueue.scenes import Scenes
from pipeline.errors import InvalidRequest
from pipeline.request import check_request

if TYPE_CHECKING:
    from bot.client import ReelBot


class Refused(Exception):
    """The job was not submitted; ``str(error)`` is the sentence for the user."""


def checked(settings: Settings, follow: FollowUp) -> FollowUp:
    """``follow`` with its prompts cleaned as the pipeline cleans them.

    Raises :class:`Refused` with the pipeline's sentence for anything it would refuse that is
    known before the job runs: empty or over-long prompts, the aspect, the length for the
    model, seed, steps, guidance, a model the commands do not offer, and a loop or end image
    on a model that cannot end on a chosen frame.
    """
    request = follow.request
    try:
        preset = job_preset(settings, follow.kind, request.model, end_frame=request.ends_on_frame)
        asked = check_request(
            preset, request.as_asked(), end_image=request.end_image_path is not None
        )
    except InvalidRequest as exc:
        raise Refused(str(exc)) from exc
    cleaned = replace(request, prompt=asked.prompt, negative_prompt=asked.negative_prompt)
    return replace(follow, request=cleaned)


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
    follow = checked(bot.settings, follow)
    await refuse_withheld_parent(bot, follow, user_id)
    too_long = await too_long_extension(bot.queue, bot.settings, follow)
    if too_long is not None:
        raise Refused(too_long)
    refusal = await admit_user(
        bot, guild_id=guild_id, channel_id=channel_id, user_id=user_id, request=follow.request
    )
    if refusal is not None:
        raise Refused(refusal)
    try:
        job = await bot.queue.submit(
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
    await keep_drafts_scene(bot, job)
    return job


DRAFTS_SCENE = "drafts"
"""``backend`` of a scene a Render or Vary took from its drafts."""


async def keep_drafts_scene(bot: ReelBot, job: Job) -> None:
    """A Render or Vary of the drafts' own prompt is made from the scene the drafts were
    made from: a new rewrite would render another clip than the one chosen."""
    if not job.kind.starts_from_draft or job.parent_id is None or not job.request.enhance:
        return
    grid = await bot.queue.get(job.parent_id)
    if grid is None or grid.request.prompt != job.request.prompt:
        return
    await Scenes(bot.queue.db).inherit(job.id, text=grid.rewritten_prompt, backend=DRAFTS_SCENE)


async def refuse_withheld_parent(bot: ReelBot, follow: FollowUp, user_id: int) -> None:
    """A clip the safety check withheld starts nobody else's Extend (the worker checks again)."""
    if follow.kind is not JobKind.EXTEND or follow.parent_id is None:
        return
    parent = await bot.queue.get(follow.parent_id)
    if parent is not None and not may_extend(parent, user_id):
        raise Refused(PARENT_WITHHELD)


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
    ack = render.queued_ack(job, position)
    await reply_privately(interaction, ack)
    # The reply keeps the requester's place current, through the token's own rate limit.
    bot.private_replies.follow(job.id, interaction, ack)
    return job


async def request_from_options(
    bot: ReelBot, interaction: discord.Interaction, options: CommandOptions
) -> JobRequest:
    """The request a command's options ask for, filled from the user's /settings defaults."""
    prefs = await bot.store.prefs(interaction.user.id)
    return build_request(options, prefs, bot.settings)
