"""Reactions on a posted clip: 🔁 retry, ❌ delete (owner or moderator), ✉️ details by DM.

Reactions are not interactions, so answers that only the reacting user should see go by DM.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot import followups, render
from bot.buttons import NOT_YOURS, may_delete, remove_clip_message
from bot.posting import channel_of
from bot.render import NO_PINGS
from bot.submit import Refused, submit_for_user
from jobqueue.models import Job

if TYPE_CHECKING:
    from bot.client import ReelBot

log = logging.getLogger(__name__)

VARIATION_SELECTOR = "\ufe0f"

Person = discord.Member | discord.User
ReactionAction = Callable[[Job, discord.RawReactionActionEvent, Person], Awaitable[None]]


class Reactions(commands.Cog):
    def __init__(self, bot: ReelBot) -> None:
        self.bot = bot
        self.actions: dict[str, ReactionAction] = {
            "🔁": self.retry,
            "❌": self.delete,
            "✉": self.send_details,
        }

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        if self.bot.user is None or payload.user_id == self.bot.user.id:
            return
        action = self.actions.get(str(payload.emoji).replace(VARIATION_SELECTOR, ""))
        if action is None or payload.guild_id is None:
            return
        job_id = await self.bot.store.job_for_message(payload.message_id)
        job = await self.bot.queue.get(job_id) if job_id is not None else None
        if job is None:
            return
        user = payload.member or await self.bot.fetch_user(payload.user_id)
        await action(job, payload, user)

    async def retry(self, job: Job, payload: discord.RawReactionActionEvent, user: Person) -> None:
        try:
            await submit_for_user(
                self.bot,
                followups.retry(job),
                user_id=user.id,
                guild_id=payload.guild_id,
                channel_id=payload.channel_id,
                # One retry per user and clip by reaction: a replayed event never queues two.
                idempotency_key=f"reaction:{payload.message_id}:{user.id}:retry",
            )
        except Refused as refusal:
            await tell(user, str(refusal))

    async def delete(self, job: Job, payload: discord.RawReactionActionEvent, user: Person) -> None:
        if not await may_delete(self.bot, user, job):
            await tell(user, NOT_YOURS)
            return
        message = channel_of(self.bot, job).get_partial_message(payload.message_id)
        await remove_clip_message(self.bot, message, job, actor_id=user.id)

    async def send_details(
        self, job: Job, payload: discord.RawReactionActionEvent, user: Person
    ) -> None:
        await tell(user, embed=render.details_embed(job))


async def tell(
    user: Person, text: str | None = None, *, embed: discord.Embed | None = None
) -> None:
    """A direct message; users who close their DMs just don't get one."""
    try:
        if embed is None:
            await user.send(text, allowed_mentions=NO_PINGS)
        else:
            await user.send(text, embed=embed, allowed_mentions=NO_PINGS)
    except discord.HTTPException:
        log.info("could not DM user %s", user.id, exc_info=True)


async def setup(bot: ReelBot) -> None:
    await bot.add_cog(Reactions(bot))
