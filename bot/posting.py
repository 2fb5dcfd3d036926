"""Posting a finished clip as an ordinary channel message (never through an interaction token).

The clip is either a new message or the job's status message edited into it (attachment,
embed and buttons; one write instead of two) when that status message is the newest thing the
bot posted in the channel. Every write waits for its turn in the channel's budget
(:mod:`bot.channel_writes`) at the clip's priority, ahead of every status update.

The clip must fit the guild's upload limit: a larger file is re-encoded smaller in a thread
(``pipeline.provenance.fit_clip_signed``, which keeps its content credentials); when even the
smallest encode is too large the clip is not posted and the file stays on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import discord

from bot.buttons import clip_view
from bot.channel_writes import Priority, Route
from bot.drafts import drafts_embed, drafts_view
from bot.extend_chain import segments_of
from bot.render import NO_PINGS, clip_embed
from bot.web.links import clip_page_url
from jobqueue.clipfiles import fitted_clip_path
from jobqueue.gallery import Gallery
from jobqueue.models import Job
from jobqueue.safety import HeldState
from pipeline.encode import ClipTooLarge
from pipeline.provenance import fit_clip_signed

if TYPE_CHECKING:
    from bot.client import ReelBot

log = logging.getLogger(__name__)

REACTIONS = ("🔁", "❌", "✉️")
HISTORY_SCAN = 50
PAYLOAD_TOO_LARGE = 40005
SHRINK_AFTER_REFUSAL = 0.8


@dataclass(frozen=True)
class Dressing:
    """The embed and buttons a clip is posted with instead of its own (a storyboard's film
    has Reshoot N, not a clip's buttons)."""

    embed: discord.Embed
    view: discord.ui.View


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


async def post_clip(
    bot: ReelBot,
    job: Job,
    *,
    replacing: int | None = None,
    dressing: Dressing | None = None,
) -> discord.Message:
    """Post ``job``'s clip with its embed and buttons (``dressing``'s, else the clip's own),
    in place of the message ``replacing`` if it still exists; raises :class:`ClipWontFit`."""
    if job.result_path is None:
        raise ValueError(f"job {job.id} is done but has no clip")
    limit = bot.upload_limit(job.guild_id)
    path = await fitted(bot, job, Path(job.result_path), limit)
    try:
        return await put_clip(bot, job, path, replacing, dressing)
    except discord.HTTPException as exc:
        if exc.status != 413 and exc.code != PAYLOAD_TOO_LARGE:
            raise
        # Discord knows the real limit better than we do (a guild that lost its boosts).
        size = (await asyncio.to_thread(path.stat)).st_size
        smaller = int(min(limit, size) * SHRINK_AFTER_REFUSAL)
        log.warning("upload of job %s refused at %d bytes; trying %d", job.id, limit, smaller)
        smaller_path = await fitted(bot, job, path, smaller)
        return await put_clip(bot, job, smaller_path, replacing, dressing)


async def put_clip(
    bot: ReelBot,
    job: Job,
    path: Path,
    replacing: int | None,
    dressing: Dressing | None = None,
) -> discord.Message:
    channel = channel_of(bot, job)
    # A dressed clip (a film in its thread) never had a status message to become.
    if replacing is not None and dressing is None:
        try:
            return await bot.writes.run(
                channel.id,
                Route.EDIT,
                Priority.CLIP,
                lambda: edit_into_clip(bot, job, path, replacing),
            )
        except discord.NotFound:
            log.info("status message of job %s is gone; posting its clip anew", job.id)
    message = await bot.writes.run(
        channel.id, Route.SEND, Priority.CLIP, lambda: send_clip(bot, job, path, dressing)
    )
    bot.writes.sent(channel.id, message.id)
    return message


async def send_clip(
    bot: ReelBot, job: Job, path: Path, dressing: Dressing | None = None
) -> discord.Message:
    return await channel_of(bot, job).send(
        embed=dressing.embed if dressing is not None else await embed_of(bot, job),
        file=clip_file(job, path),
        view=dressing.view if dressing is not None else view_of(job),
        allowed_mentions=NO_PINGS,
    )


async def edit_into_clip(bot: ReelBot, job: Job, path: Path, message_id: int) -> discord.Message:
    message = channel_of(bot, job).get_partial_message(message_id)
    return await message.edit(
        content=None,
        embed=await embed_of(bot, job),
        attachments=[clip_file(job, path)],
        view=view_of(job),
        allowed_mentions=NO_PINGS,
    )


def view_of(job: Job) -> discord.ui.View:
    """The buttons under the posted clip: a grid's Render and Vary, else the clip's."""
    return drafts_view(job) if job.kind.makes_drafts else clip_view(job)


async def embed_of(bot: ReelBot, job: Job) -> discord.Embed:
    """The clip's (or grid's) embed, linking to its page in the web gallery when it has one."""
    page_url = await clip_page_url(bot.settings.public_url, Gallery(bot.queue.db), job.id)
    if job.kind.makes_drafts:
        return drafts_embed(job, page_url=page_url)
    return clip_embed(job, page_url=page_url, segments=await segments_of(bot.queue, job))


def clip_file(job: Job, path: Path) -> discord.File:
    # A clip the safety check held goes to an age-restricted channel only as a spoiler.
    spoiler = job.safety_state == HeldState.SPOILERED
    return discord.File(path, filename=clip_file_name(job.id), spoiler=spoiler)


def clip_file_name(job_id: int) -> str:
    return f"reelbot-{job_id}.mp4"


def carries_clip_of(message: discord.Message, job_id: int) -> bool:
    """Whether ``message`` is job ``job_id``'s posted clip: by its Retry button, or by the
    file's name (a film's buttons are its storyboard's, the same for every take)."""
    named = clip_file_name(job_id)
    return f"job:{job_id}:retry" in custom_ids(message) or any(
        attachment.filename.removeprefix("SPOILER_") == named for attachment in message.attachments
    )


async def fitted(bot: ReelBot, job: Job, path: Path, limit: int) -> Path:
    """``path`` if it fits ``limit``, else a re-encoded copy that does."""
    if (await asyncio.to_thread(path.stat)).st_size <= limit:
        return path
    out_path = fitted_clip_path(bot.settings.clips_dir, job.id, limit)
    try:
        # The copy keeps content credentials of its own (signed again, naming the original).
        clip = await asyncio.to_thread(
            fit_clip_signed,
            path,
            limit,
            out_path=out_path,
            identity=bot.settings.signing_identity(),
        )
    except ClipTooLarge as exc:
        log.warning("clip of job %s cannot fit %d bytes: %s", job.id, limit, exc)
        raise ClipWontFit(exc.best.size_bytes, limit) from exc
    log.info(
        "re-encoded clip of job %s to %d bytes for a %d byte limit", job.id, clip.size_bytes, limit
    )
    return clip.path


def offer_reactions(bot: ReelBot, message: discord.Message) -> None:
    """Offer the reactions users can click, as the channel's budget allows (last of all
    writes); a clip without them still works."""
    for emoji in REACTIONS:

        async def react(emoji: str = emoji) -> None:
            try:
                await message.add_reaction(emoji)
            except discord.HTTPException as exc:
                if exc.status == 429:
                    raise  # the scheduler puts it back in line
                log.info("could not add %s to message %s: %s", emoji, message.id, exc)

        key = ("reaction", message.id, emoji)
        bot.writes.offer(message.channel.id, Route.REACT, Priority.UPDATE, key, react)


async def find_posted_clip(bot: ReelBot, job: Job) -> discord.Message | None:
    """A clip of ``job`` already in its channel (posted before a crash could record it)."""
    if bot.user is None or job.finished_at is None:
        return None
    since = dt.datetime.fromtimestamp(job.finished_at - 60, tz=dt.UTC)
    channel = channel_of(bot, job)
    try:
        # The status message may have become the clip, however long ago it was posted.
        if job.status_message_id is not None:
            with contextlib.suppress(discord.NotFound):
                status = await channel.fetch_message(job.status_message_id)
                if carries_clip_of(status, job.id):
                    return status
        async for message in channel.history(limit=HISTORY_SCAN, after=since):
            if message.author.id == bot.user.id and carries_clip_of(message, job.id):
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
