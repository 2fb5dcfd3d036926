"""Each requester's own reply to /create (or to a button), kept current: place in line, ETA,
progress, and finally the link to the clip.

The reply is edited through the interaction's token, which Discord limits per token (about 5
edits per 2 s) and not per channel, so keeping a hundred requesters informed costs the busy
channel nothing. A token lives 15 minutes: a minute before that the reply says it stops
updating and where to look instead (the queue board, /queue). Tokens are kept in memory only;
after a restart the queue board and status messages are what requesters see. While the job
waits with its scene written, the reply carries the Edit scene button (:mod:`bot.scene`); while
it renders in a busy channel (no status message of its own), the live preview
(:mod:`bot.previews`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import discord

from bot import render
from bot.channel_writes import ChannelWrites, Priority, Route
from bot.previews import Preview, attachments_for, version
from bot.render import NO_PINGS
from bot.scene import scene_view

log = logging.getLogger(__name__)

TOKEN_LIFETIME_S = 15 * 60.0
STOP_BEFORE_EXPIRY_S = 60.0


@dataclass
class PrivateReply:
    interaction: discord.Interaction
    opened_at: float
    shown: str
    updated_at: float
    closing: bool = False
    button_shown: bool = False
    """It carries the Edit scene button."""
    preview_shown: int | None = None
    """The version of the live preview attached (None: none)."""


class PrivateReplies:
    """The private replies being kept current, by job id."""

    def __init__(
        self,
        writes: ChannelWrites,
        *,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.writes = writes
        self.interval_s = interval_s
        self.clock = clock
        self.replies: dict[int, PrivateReply] = {}

    def follow(self, job_id: int, interaction: discord.Interaction, shown: str) -> None:
        """Keep the reply ``interaction`` shows (now ``shown``) current for ``job_id``."""
        now = self.clock()
        self.replies[job_id] = PrivateReply(interaction, now, shown, now)

    def update(
        self,
        job_id: int,
        text: str,
        *,
        news: bool = False,
        edit_scene: bool = False,
        preview: Preview | None = None,
    ) -> None:
        """Show ``text`` (with the Edit scene button if ``edit_scene``, the live ``preview``)
        if it changed and the reply was not edited in the last interval (``news``, a change
        of state, does not wait for the interval)."""
        reply = self.replies.get(job_id)
        if reply is None or reply.closing:
            return
        now = self.clock()
        if now - reply.opened_at >= TOKEN_LIFETIME_S - STOP_BEFORE_EXPIRY_S:
            self.finish(job_id, render.private_handoff(text))
            return
        wanted = (text, edit_scene, version(preview))
        unchanged = wanted == (reply.shown, reply.button_shown, reply.preview_shown)
        if unchanged or (now - reply.updated_at < self.interval_s and not news):
            return
        reply.updated_at = now
        self.offer(job_id, reply, text, Priority.UPDATE, edit_scene=edit_scene, preview=preview)

    def finish(self, job_id: int, text: str) -> None:
        """Show the job's outcome (or the hand-off before the token expires), then let go."""
        reply = self.replies.get(job_id)
        if reply is None or (reply.closing and text == reply.shown):
            return
        reply.closing = True
        self.offer(job_id, reply, text, Priority.FINAL)

    def offer(
        self,
        job_id: int,
        reply: PrivateReply,
        text: str,
        priority: Priority,
        *,
        edit_scene: bool = False,
        preview: Preview | None = None,
    ) -> None:
        async def edit() -> None:
            await self.edit(job_id, reply, text, edit_scene=edit_scene, preview=preview)

        token = reply.interaction.token
        self.writes.offer(token, Route.PRIVATE, priority, ("private", job_id), edit)

    async def edit(
        self,
        job_id: int,
        reply: PrivateReply,
        text: str,
        *,
        edit_scene: bool = False,
        preview: Preview | None = None,
    ) -> None:
        view = scene_view(job_id) if edit_scene else None
        attached, shown_preview = await attachments_for(preview, reply.preview_shown)
        try:
            await reply.interaction.edit_original_response(
                content=text, view=view, allowed_mentions=NO_PINGS, **attached
            )
        except discord.HTTPException as exc:
            if exc.status == 429:
                raise  # the scheduler puts it back in line
            # The token ran out (401, 50027) or the user dismissed the reply (404): stop.
            log.info("stopped updating the private reply of job %s: %s", job_id, exc)
            self.replies.pop(job_id, None)
            return
        reply.shown, reply.button_shown, reply.preview_shown = text, edit_scene, shown_preview
        if reply.closing:
            self.replies.pop(job_id, None)
