"""The buttons under a posted clip, keyed by job id so they work after any restart.

Each button's custom_id is ``job:<id>:<action>``; discord.py rebuilds a :class:`JobButton`
from it for every click (``add_dynamic_items``), so no view has to be kept in memory.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import discord

from bot import followups
from bot.followups import Action, FollowUp
from bot.permissions import is_moderator
from bot.remix import RemixModal
from bot.replies import SOMETHING_WRONG, acknowledge, reply_privately
from bot.submit import submit_from_interaction
from jobqueue.gallery import Gallery
from jobqueue.models import Job
from jobqueue.moderation.models import AuditAction

if TYPE_CHECKING:
    from bot.client import ReelBot

log = logging.getLogger(__name__)

TEMPLATE = r"job:(?P<id>\d+):(?P<action>retry|remix|extend|hd|delete)"

LOOKS: dict[Action, tuple[str, str, discord.ButtonStyle]] = {
    "retry": ("🔁", "Retry", discord.ButtonStyle.secondary),
    "remix": ("✏️", "Remix", discord.ButtonStyle.secondary),
    "extend": ("➕", "Extend", discord.ButtonStyle.secondary),
    "hd": ("⬆️", "HD", discord.ButtonStyle.primary),
    "delete": ("🗑️", "Delete", discord.ButtonStyle.danger),
}

JOB_GONE = "That clip's job no longer exists."
NOT_YOURS = "Only the person who asked for a clip or a moderator can delete it."


class JobButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=TEMPLATE):
    """One action on one job's clip."""

    def __init__(self, job_id: int, action: Action) -> None:
        emoji, label, style = LOOKS[action]
        super().__init__(
            discord.ui.Button(
                style=style, emoji=emoji, label=label, custom_id=f"job:{job_id}:{action}"
            )
        )
        self.job_id = job_id
        self.action = action

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> JobButton:
        return cls(int(match["id"]), cast(Action, match["action"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await self.act(cast("ReelBot", interaction.client), interaction)
        except Exception:
            log.exception("the %s button of job %s failed", self.action, self.job_id)
            await reply_privately(interaction, SOMETHING_WRONG)

    async def act(self, bot: ReelBot, interaction: discord.Interaction[Any]) -> None:
        if self.action == "remix":
            await open_remix(bot, interaction, self.job_id)
            return
        if not await acknowledge(interaction):
            return
        parent = await bot.queue.get(self.job_id)
        if parent is None:
            await reply_privately(interaction, JOB_GONE)
        elif self.action == "delete":
            await delete_clip(bot, interaction, parent)
        else:
            await submit_from_interaction(bot, interaction, FOLLOW_UPS[self.action](parent))


FOLLOW_UPS: dict[str, Callable[[Job], FollowUp]] = {
    "retry": followups.retry,
    "extend": followups.extend,
    "hd": followups.hd,
}


def clip_view(job: Job) -> discord.ui.View:
    """The buttons for ``job``'s posted clip (HD only where it makes sense)."""
    view = discord.ui.View(timeout=None)
    for action in followups.ACTIONS:
        if action == "hd" and not followups.can_make_hd(job):
            continue
        view.add_item(JobButton(job.id, action))
    return view


async def open_remix(bot: ReelBot, interaction: discord.Interaction, job_id: int) -> None:
    # A modal must be the first response, so the parent is read first: one indexed row.
    parent = await bot.queue.get(job_id)
    if parent is None:
        await reply_privately(interaction, JOB_GONE)
        return
    await interaction.response.send_modal(RemixModal(parent, key=str(interaction.id)))


async def delete_clip(bot: ReelBot, interaction: discord.Interaction, job: Job) -> None:
    """Delete the clip's message, if the user asked for their own clip or moderates."""
    allowed = await may_delete(bot, interaction.user, job)
    if not allowed:
        await reply_privately(interaction, NOT_YOURS)
        return
    if interaction.message is not None:
        await remove_clip_message(bot, interaction.message, job, actor_id=interaction.user.id)
    await reply_privately(interaction, f"Deleted clip #{job.id}.")


async def may_delete(bot: ReelBot, user: discord.Member | discord.User, job: Job) -> bool:
    return user.id == job.user_id or await is_moderator(bot, user, job.guild_id)


async def remove_clip_message(
    bot: ReelBot, message: discord.PartialMessage | discord.Message, job: Job, *, actor_id: int
) -> None:
    """Delete a posted clip; a moderator removing someone else's clip leaves an audit row."""
    try:
        await message.delete()
    except discord.NotFound:
        log.info("clip message %s of job %s was already gone", message.id, job.id)
    await bot.store.forget_clip(message.id)
    await Gallery(bot.queue.db).mark_deleted(job.id)
    if actor_id != job.user_id and job.guild_id is not None:
        await bot.moderation.audit(
            job.guild_id,
            actor_id=actor_id,
            action=AuditAction.JOB_DELETE,
            target_user_id=job.user_id,
            target_job_id=job.id,
            reason="deleted the clip",
        )
