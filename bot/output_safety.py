"""The bot's side of the output safety check: what a held clip becomes, and what people see.

The worker stores each clip's verdict; a clip it held (``job.safety_hold``) reaches the
delivery cog like any finished clip, which asks :func:`disposition` what to do with it:

- in an ordinary channel (and in every channel when the server's mode is ``withhold``) the
  clip is **withheld**: nothing of it is posted. The job's status message (or a new line, in
  a busy channel) says only "clip #N was withheld by the safety check", without media; the
  requester is told privately, in their reply to the command while Discord still lets the bot
  edit it (15 minutes), else by direct message when their DMs are open (a finished job has no
  interaction token in general); the audit row reaches the mod-log channel.
- in an age-restricted channel of a server whose mode is ``spoiler`` it is posted with its
  file marked as a spoiler.

A moderator's ``/admin safety release`` makes the job undelivered again, so the delivery cog
posts it once like any clip.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

import discord

from bot.admin_render import ADMIN_COLOUR, list_embed
from bot.render import NO_PINGS, job_label, mention, shown
from jobqueue.models import Job
from jobqueue.safety import (
    MODE_MEANINGS,
    HeldClip,
    HeldClips,
    HeldState,
    SafetyMode,
    SafetyPolicy,
)

if TYPE_CHECKING:
    from bot.client import ReelBot
    from bot.cogs.delivery import Delivery, StatusMessage

log = logging.getLogger(__name__)

PROMPT_IN_REVIEW = 80


class Disposition(Enum):
    POST = "post"
    WITHHOLD = "withhold"
    SPOILER = "spoiler"


def held_clips(bot: ReelBot) -> HeldClips:
    """Held clips and policies, on the bot's moderation (whose audit rows reach the mod-log)."""
    return HeldClips(bot.moderation, bot.settings.safety_policy())


def is_age_restricted(bot: ReelBot, channel_id: int | None) -> bool:
    """Whether Discord marks the channel age-restricted (a thread: its parent). A channel the
    bot cannot see counts as not age-restricted."""
    if channel_id is None:
        return False
    channel = bot.get_channel(channel_id)
    if isinstance(channel, discord.Thread):
        channel = channel.parent
    is_nsfw = getattr(channel, "is_nsfw", None)
    return bool(is_nsfw()) if callable(is_nsfw) else False


async def disposition(bot: ReelBot, job: Job) -> Disposition:
    """Post, withhold or post as a spoiler: what becomes of ``job``'s finished clip."""
    if not job.safety_hold or job.safety_state == HeldState.RELEASED:
        return Disposition.POST
    if job.safety_state == HeldState.SPOILERED:
        return Disposition.SPOILER  # decided before a restart; its audit row is written
    policy = await held_clips(bot).policy(job.guild_id)
    if policy.mode is SafetyMode.SPOILER and is_age_restricted(bot, job.channel_id):
        return Disposition.SPOILER
    return Disposition.WITHHOLD


def withheld_line(job: Job) -> str:
    """What the channel sees of a withheld clip: one line, no media."""
    return f"🛡️ {job_label(job)} for {mention(job.user_id)} was withheld by the safety check."


def withheld_private(job: Job) -> str:
    """What the requester is told privately, in one sentence."""
    return (
        f"🛡️ Your {job_label(job)} was withheld by this server's safety check and not posted;"
        " its moderators can review it."
    )


async def withhold(delivery: Delivery, job: Job, status: StatusMessage) -> None:
    """Deliver ``job`` withheld: audited (and a strike where the server counts them), one
    line in the channel, the requester told privately (their reply, else a DM)."""
    bot = delivery.bot
    first = await held_clips(bot).withhold(job)
    reply = bot.private_replies.replies.get(job.id)
    if first and (reply is None or reply.closing):
        await tell_owner(bot, job)
    await delivery.say_finished(job, status, withheld_line(job), private=withheld_private(job))


async def mark_spoilered(bot: ReelBot, job: Job) -> Job:
    """``job`` as it goes to its age-restricted channel: as a spoiler (audited once)."""
    await held_clips(bot).spoilered(job)
    return replace(job, safety_state=HeldState.SPOILERED)


async def tell_owner(bot: ReelBot, job: Job) -> None:
    """A direct message to the requester; closed DMs just get none."""
    try:
        user = bot.get_user(job.user_id) or await bot.fetch_user(job.user_id)
        await user.send(withheld_private(job), allowed_mentions=NO_PINGS)
    except discord.HTTPException:
        log.info("could not DM user %s about withheld job %s", job.user_id, job.id)


# --- /admin safety -------------------------------------------------------------------------


def policy_embed(
    policy: SafetyPolicy, thresholds: Mapping[str, float], status: Mapping[str, Any]
) -> discord.Embed:
    """``/admin safety show``: the mode and what it means, thresholds, strikes, classifiers."""
    embed = discord.Embed(
        title="Output safety check",
        description=f"**{policy.mode}**: {MODE_MEANINGS[policy.mode]}.",
        colour=ADMIN_COLOUR,
    )
    lines = []
    for category, default in thresholds.items():
        own = policy.thresholds.get(category)
        value = f"{own:.2f}" if own is not None else f"{default:.2f} (default)"
        lines.append(f"{category}: {value}")
    embed.add_field(name="Thresholds", value="\n".join(lines) or "none", inline=False)
    embed.add_field(name="Strikes", value="counted" if policy.strikes else "not counted")
    embed.add_field(name="Clips nobody could check", value=str(policy.if_unchecked))
    embed.add_field(name="Classifiers", value=classifiers_words(status), inline=False)
    return embed


def classifiers_words(status: Mapping[str, Any]) -> str:
    if not status:
        return "no worker has started yet"
    if status.get("error"):
        return f"⚠️ could not load: {shown(str(status['error']), 900)}"
    return ", ".join(status.get("classifiers") or []) or "none"


def review_embed(clips: Sequence[HeldClip], page: int) -> discord.Embed:
    """``/admin safety review``: the withheld clips, newest first, with why."""
    lines = [review_line(clip) for clip in clips]
    return list_embed(
        "Withheld clips",
        lines,
        page,
        empty="No clip is withheld.",
        hint="/admin safety review",
    )


def review_line(clip: HeldClip) -> str:
    job = clip.job
    when = discord.utils.format_dt(datetime.fromtimestamp(clip.withheld_at, tz=UTC), "R")
    flagged = job.safety_flagged
    why = ", ".join(f"{name} {job.safety_scores.get(name, 0.0):.2f}" for name in flagged)
    where = f"<#{job.channel_id}>" if job.channel_id else "DM"
    prompt = shown(job.request.prompt, PROMPT_IN_REVIEW)
    why = why or "not checked"
    return f"**#{job.id}** by {mention(job.user_id)} in {where} {when} · {why} · {prompt}"
