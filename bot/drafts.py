"""A grid of four drafts: its embed and its buttons, Render 1-4 and Vary 1-4.

Each button's custom_id is ``draft:<job>:<action>:<n>``, a :class:`discord.ui.DynamicItem`
rebuilt from the id on every click, so a grid's buttons work after any restart like a clip's
(:mod:`bot.buttons`). Render N queues the full clip from draft N of the grid; Vary N four new
drafts near it. The grid also carries the clip buttons that make sense for it: 🔁 New drafts
(a clip's Retry: four new drafts of the prompt) and 🗑️ Delete; its reactions are a clip's.
A withheld grid is posted with no buttons, but ids can be forged: the door
(:func:`bot.submit.submit_for_user`) refuses a Render, Vary or new drafts of what is not a
finished grid, or of a grid the safety check withheld, for anyone.

Whether /create starts with drafts is, most specific first: the command's ``drafts`` option,
the user's /settings, the server's /admin drafts, then ``REELBOT_DRAFTS``; a model that cannot
make drafts renders at once.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Literal, cast

import discord

from bot import followups
from bot.buttons import JOB_GONE, JobButton
from bot.options import job_preset
from bot.render import mention, prompt_embed, shown
from bot.replies import SOMETHING_WRONG, acknowledge, reply_privately
from bot.submit import submit_from_interaction
from jobqueue.models import Job, JobKind, JobRequest
from pipeline.drafts import DRAFT_COUNT, draft_seeds
from pipeline.errors import InvalidRequest

if TYPE_CHECKING:
    from bot.client import ReelBot

log = logging.getLogger(__name__)

DraftAction = Literal["render", "vary"]

TEMPLATE = r"draft:(?P<id>\d+):(?P<action>render|vary):(?P<number>[1-4])"
NEW_DRAFTS = "New drafts"
FOOTER = (
    "job {id} · Render N: the full clip from draft N · Vary N: four new drafts near it"
    " · react 🔁 new drafts · ❌ delete"
)


async def drafts_first(
    bot: ReelBot, interaction: discord.Interaction, request: JobRequest, *, asked: bool | None
) -> bool:
    """Whether /create makes four drafts of ``request`` first (``asked``: the command's own
    option, None when left out)."""
    try:
        if not job_preset(bot.settings, JobKind.DRAFTS, request.model).makes_drafts:
            return False
    except InvalidRequest:
        return False  # refused with its sentence when submitted
    if asked is not None:
        return asked
    prefs = await bot.store.prefs(interaction.user.id)
    if prefs.drafts is not None:
        return prefs.drafts
    if interaction.guild_id is not None:
        server = await bot.store.server_drafts(interaction.guild_id)
        if server is not None:
            return server
    return bot.settings.drafts


def server_drafts_sentence(own: bool | None, *, default: bool) -> str:
    """What /admin drafts says: the server's choice, or the bot's default where it has none."""
    first = default if own is None else own
    what = "makes four quick drafts first" if first else "renders clips straight away"
    whose = " (the bot's default)" if own is None else ""
    return f"Here /create {what}{whose}; users may choose otherwise with /settings drafts."


class DraftButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=TEMPLATE):
    """Render or Vary one draft of one grid."""

    def __init__(self, job_id: int, action: DraftAction, number: int) -> None:
        render = action == "render"
        super().__init__(
            discord.ui.Button(
                style=discord.ButtonStyle.primary if render else discord.ButtonStyle.secondary,
                label=f"{'Render' if render else 'Vary'} {number}",
                custom_id=f"draft:{job_id}:{action}:{number}",
            ),
            row=0 if render else 1,
        )
        self.job_id = job_id
        self.action = action
        self.number = number

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> DraftButton:
        return cls(int(match["id"]), cast(DraftAction, match["action"]), int(match["number"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await self.act(cast("ReelBot", interaction.client), interaction)
        except Exception:
            log.exception("%s %d of job %s failed", self.action, self.number, self.job_id)
            await reply_privately(interaction, SOMETHING_WRONG)

    async def act(self, bot: ReelBot, interaction: discord.Interaction[Any]) -> None:
        if not await acknowledge(interaction):
            return
        grid = await bot.queue.get(self.job_id)
        if grid is None:
            await reply_privately(interaction, JOB_GONE)
        elif self.action == "render":
            await submit_from_interaction(bot, interaction, followups.render(grid, self.number))
        else:
            await submit_from_interaction(bot, interaction, followups.vary(grid, self.number))


def drafts_view(job: Job) -> discord.ui.View:
    """The buttons under ``job``'s grid: Render 1-4, Vary 1-4, then New drafts and Delete."""
    view = discord.ui.View(timeout=None)
    actions: tuple[DraftAction, ...] = ("render", "vary")
    for action in actions:
        for number in range(1, DRAFT_COUNT + 1):
            view.add_item(DraftButton(job.id, action, number))
    again, delete = JobButton(job.id, "retry"), JobButton(job.id, "delete")
    again.item.label = NEW_DRAFTS
    for button in (again, delete):
        button.row = 2
        view.add_item(button)
    return view


def drafts_embed(job: Job, *, page_url: str | None = None) -> discord.Embed:
    """The embed posted with a grid: the prompt, each draft's seed, where it came from."""
    request = job.request
    embed = prompt_embed(job, page_url=page_url)
    if job.seed is not None:
        seeds = " · ".join(f"{n}: {seed}" for n, seed in enumerate(draft_seeds(job.seed), 1))
        embed.add_field(name="Seeds", value=seeds, inline=False)
    embed.add_field(name="Model", value=shown(job.model or "default", 100))
    embed.add_field(name="Requested by", value=mention(job.user_id))
    if job.parent_id is not None and request.draft is not None:
        embed.add_field(name="Near", value=f"draft {request.draft} of #{job.parent_id}")
    embed.set_footer(text=FOOTER.format(id=job.id))
    return embed
