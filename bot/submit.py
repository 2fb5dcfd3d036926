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

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import discord
import sqlite_utils

from bot import render
from bot.extend_chain import too_long_extension
from bot.followups import FollowUp
from bot.gate import admit_user
from bot.options import CommandOptions, build_request, job_preset
from bot.replies import reply_privately
from bot.settings import Settings
from jobqueue.errors import QueueError
from jobqueue.models import Job, JobRequest, JobStatus
from jobqueue.safety import withheld_start_refusal
from jobqueue.scenes import inherit_scene
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
    parent = await parent_to_start_from(bot, follow, user_id)
    too_long = await too_long_extension(bot.queue, bot.settings, follow)
    if too_long is not None:
        raise Refused(too_long)
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
            then=drafts_scene(parent, follow),
        )
    except QueueError as exc:
        raise Refused(str(exc)) from exc


NO_DRAFTS = "There are no drafts #{id} to start from."
DRAFTS_NOT_READY = "The drafts #{id} are not finished yet."
DRAFTS_NEVER_FINISHED = "The drafts #{id} were never finished; make new ones."
RENDER_FIRST = "That is a grid of drafts: render one of them first, with Render N."


async def parent_to_start_from(bot: ReelBot, follow: FollowUp, user_id: int) -> Job | None:
    """The job ``follow`` starts from; raises :class:`Refused` when it cannot start from it.

    A Render or Vary needs a finished grid, and a grid makes nothing but renders and new
    drafts. A withheld clip or grid starts nothing but its owner's Extend
    (:func:`~jobqueue.safety.withheld_start_refusal`; the worker checks the parent again),
    whether it is the parent or the grid pressed: buttons are not shown on what was
    withheld, but a custom id can be forged.
    """
    if follow.parent_id is None:
        return None
    parent = await bot.queue.get(follow.parent_id)
    refusal = unfit_parent(parent, follow)
    if refusal is None:
        pressed = None if follow.pressed_id is None else await bot.queue.get(follow.pressed_id)
        refusal = withheld_refusal([parent, pressed], follow, user_id)
    if refusal is not None:
        raise Refused(refusal)
    return parent


def unfit_parent(parent: Job | None, follow: FollowUp) -> str | None:
    """Why ``follow`` cannot start from ``parent`` whoever asks (a forged id, a stale grid)."""
    if follow.kind.starts_from_draft:
        if parent is None or not parent.kind.makes_drafts:
            return NO_DRAFTS.format(id=follow.parent_id)
        if parent.status.is_active:
            return DRAFTS_NOT_READY.format(id=parent.id)
        if parent.status is not JobStatus.DONE:
            return DRAFTS_NEVER_FINISHED.format(id=parent.id)
    elif parent is not None and parent.kind.makes_drafts and not follow.kind.makes_drafts:
        return RENDER_FIRST
    return None


def withheld_refusal(jobs: list[Job | None], follow: FollowUp, user_id: int) -> str | None:
    """The safety check's refusal of ``follow`` from the first of ``jobs`` that has one."""
    for job in jobs:
        refusal = None if job is None else withheld_start_refusal(job, follow.kind, user_id)
        if refusal is not None:
            return refusal
    return None


DRAFTS_SCENE = "drafts"
"""``backend`` of a scene a Render or Vary took from its drafts."""

SceneWrite = Callable[[sqlite_utils.Database, Job], None]


def drafts_scene(parent: Job | None, follow: FollowUp) -> SceneWrite | None:
    """A Render or Vary of the drafts' own prompt is made from the scene the drafts were
    made from (a new rewrite would render another clip than the one chosen). It is written
    in the transaction that adds the job, so no worker or scene writer sees the job without
    it."""
    request = follow.request
    if (
        not follow.kind.starts_from_draft
        or parent is None
        or not request.enhance
        or parent.request.prompt != request.prompt
    ):
        return None
    scene = parent.rewritten_prompt

    def write(db: sqlite_utils.Database, job: Job) -> None:
        inherit_scene(db, job.id, text=scene, backend=DRAFTS_SCENE, now=time.time())

    return write


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
