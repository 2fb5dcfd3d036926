"""Posting a finished clip as an ordinary channel message (never through an interaction token).

The clip must fit the guild's upload limit: a larger file is re-encoded smaller in a thread
(``pipeline.encode.fit_clip``); when even the smallest encode is too large the clip is not
posted and the file stays on disk.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import discord

from bot.buttons import clip_view
from bot.render import NO_PINGS, clip_embed
from jobqueue.clipfiles import fitted_clip_path
from jobqueue.models import Job
from pipeline.encode import ClipTooLarge, fit_clip

if TYPE_CHECKING:
    from bot.client import ReelBot

log = logging.getLogger(__name__)

REACTIONS = ("🔁", "❌", "✉️")
HISTORY_SCAN = 50
PAYLOAD_TOO_LARGE = 40005
SHRINK_AFTER_REFUSAL = 0.8


class ClipWontFit(Exception):
    """The clip cannot be made small enough for the guild's upload limit."""

    def __init__(self, size_bytes: int, limit_bytes: int) -> None:
        super().__init__(f"{size_bytes} bytes do not fit {limit_bytes}")
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


def channel_of(bot: ReelBot, job: Job) -> discord.PartialMessageable:
    """The job's channel, usable without the channel being cached."""
    if job.channel_id is None:
        raise ValueError(f"job {job.id} has no channel")
    return bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)


async def post_clip(bot: ReelBot, job: Job) -> discord.Message:
    """Post ``job``'s clip with its embed and buttons; raises :class:`ClipWontFit`."""
    if job.result_path is None:
        raise ValueError(f"job {job.id} is done but has no clip")
    limit = bot.upload_limit(job.guild_id)
    path = await fitted(bot, job, Path(job.result_path), limit)
    try:
        return await send_clip(bot, job, path)
    except discord.HTTPException as exc:
        if exc.status != 413 and exc.code != PAYLOAD_TOO_LARGE:
            raise
        # Discord knows the real limit better than we do (a guild that lost its boosts).
        size = (await asyncio.to_thread(path.stat)).st_size
        smaller = int(min(limit, size) * SHRINK_AFTER_REFUSAL)
        log.warning("upload of job %s refused at %d bytes; trying %d", job.id, limit, smaller)
        return await send_clip(bot, job, await fitted(bot, job, path, smaller))


async def send_clip(bot: ReelBot, job: Job, path: Path) -> discord.Message:
    file = discord.File(path, filename=f"reelbot-{job.id}.mp4")
    return await channel_of(bot, job).send(
        embed=clip_embed(job), file=file, view=clip_view(job), allowed_mentions=NO_PINGS
    )


async def fitted(bot: ReelBot, job: Job, path: Path, limit: int) -> Path:
    """``path`` if it fits ``limit``, else a re-encoded copy that does."""
    if (await asyncio.to_thread(path.stat)).st_size <= limit:
        return path
    out_path = fitted_clip_path(bot.settings.clips_dir, job.id, limit)
    try:
        clip = await asyncio.to_thread(fit_clip, path, limit, out_path=out_path)
    except ClipTooLarge as exc:
        log.warning("clip of job %s cannot fit %d bytes: %s", job.id, limit, exc)
        raise ClipWontFit(exc.best.size_bytes, limit) from exc
    log.info(
        "re-encoded clip of job %s to %d bytes for a %d byte limit", job.id, clip.size_bytes, limit
    )
    return clip.path


async def add_reactions(message: discord.Message) -> None:
    """Offer the reactions users can click; a clip without them still works."""
    for emoji in REACTIONS:
        try:
            await message.add_reaction(emoji)
        except discord.HTTPException:
            log.info("could not add %s to message %s", emoji, message.id, exc_info=True)
            return


async def find_posted_clip(bot: ReelBot, job: Job) -> discord.Message | None:
    """A clip of ``job`` already in its channel (posted before a crash could record it)."""
    if bot.user is None or job.finished_at is None:
        return None
    marker = f"job:{job.id}:retry"
    since = dt.datetime.fromtimestamp(job.finished_at - 60, tz=dt.UTC)
    try:
        async for message in channel_of(bot, job).history(limit=HISTORY_SCAN, after=since):
            if message.author.id == bot.user.id and marker in custom_ids(message):
                return message
    except discord.HTTPException:
        log.info("could not read the history of channel %s", job.channel_id, exc_info=True)
    return None


def custom_ids(message: discord.Message) -> set[str]:
    found: set[str] = set()
    for row in message.components:
        for child in getattr(row, "children", ()):
            custom_id = getattr(child, "custom_id", None)
            if custom_id:
                found.add(custom_id)
    return found
