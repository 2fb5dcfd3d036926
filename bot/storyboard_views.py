"""What a storyboard looks like on Discord: the plan embed, its Shoot and Edit plan buttons,
the Edit plan modal, and the Reshoot N buttons under a film.

Every button's custom_id names the storyboard (``storyboard:<id>:shoot``,
``storyboard:<id>:edit``, ``storyboard:<id>:reshoot:<n>``) and is a
:class:`discord.ui.DynamicItem`, so the buttons work on any message after any restart. What a
press does lives in :mod:`bot.cogs.storyboard`; this module only draws and parses, and dresses
a FILM job for the delivery cog (:func:`film_delivery`), which so needs no cog of its own.

The modal shows the shared sheet and the shots, one line each: ``scene | camera | seconds``
(Discord's modals take at most five text inputs, so the shots share one).
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal, cast

import discord

from bot.buttons import JobButton
from bot.posting import Dressing
from bot.replies import SOMETHING_WRONG, reply_privately
from bot.web.links import clip_page_url
from jobqueue.gallery import Gallery
from jobqueue.models import Job
from jobqueue.storyboards import Storyboard, Storyboards
from pipeline.camera import CAMERA_MOVES
from pipeline.errors import InvalidRequest
from pipeline.storyboard import (
    MAX_SCENE_CHARS,
    MAX_SHEET_CHARS,
    MIN_SHOT_SECONDS,
    Plan,
    Shot,
    checked_shot_count,
)
from pipeline.text import clean_text

if TYPE_CHECKING:
    from bot.client import ReelBot

log = logging.getLogger(__name__)

SHOT_EVENT = "storyboard_shot"
"""Dispatched by the delivery cog with every change of a SHOT job (they are not posted)."""
TEMPLATE = r"storyboard:(?P<id>\d+):(?P<action>shoot|edit|reshoot)(?::(?P<shot>\d+))?"
Action = Literal["shoot", "edit", "reshoot"]
EMBED_COLOUR = discord.Colour.dark_teal()
TITLE_MAX = 256
FIELD_VALUE_MAX = 1024
DESCRIPTION_MAX = 4096
MODAL_TIMEOUT_S = 15 * 60
SHOTS_INPUT_MAX = 4000
NO_CAMERA = "none"
SHOT_LINE_HELP = "scene | camera | seconds, one shot a line"


def shown(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plan_embed(storyboard_id: int, plan: Plan, *, owner_id: int) -> discord.Embed:
    """The plan as everyone sees it: the idea, the shared sheet, each shot."""
    embed = discord.Embed(
        title=shown(f"Storyboard #{storyboard_id}: {plan.idea}", TITLE_MAX),
        description=shown(f"**Look (every shot):** {plan.sheet}", DESCRIPTION_MAX),
        colour=EMBED_COLOUR,
    )
    for number, shot in enumerate(plan.shots, start=1):
        camera = shot.camera or "no camera move"
        embed.add_field(
            name=f"Shot {number} · {shot.duration_s:g} s · {camera}",
            value=shown(shot.scene, FIELD_VALUE_MAX),
            inline=False,
        )
    embed.add_field(name="Planned by", value=f"<@{owner_id}>")
    embed.add_field(name="Length", value=f"{plan.duration_s:g} s in {len(plan.shots)} shots")
    if plan.note:
        embed.set_footer(text=plan.note)
    return embed


def film_embed(
    storyboard: Storyboard, job: Job, *, take: int, page_url: str | None = None
) -> discord.Embed:
    """The film's embed: which storyboard and take (the film's own: an older take's film
    can be posted late), how long, and what Reshoot N does; the title links to ``page_url``
    (the film's page in the web gallery) if given."""
    embed = discord.Embed(
        title=shown(f"🎞️ Storyboard #{storyboard.id}: {storyboard.plan.idea}", TITLE_MAX),
        colour=EMBED_COLOUR,
        url=page_url,
    )
    if job.frames and job.fps:
        embed.add_field(name="Length", value=f"{job.frames / job.fps:.1f} s")
    embed.add_field(name="Shots", value=str(storyboard.shots))
    embed.add_field(name="Take", value=str(take))
    embed.add_field(name="Planned by", value=f"<@{storyboard.user_id}>")
    embed.set_footer(
        text=f"job {job.id} · Reshoot N makes shot N and the shots after it again "
        "(the owner or a moderator)"
    )
    return embed


def plan_view(storyboard_id: int) -> discord.ui.View:
    """Shoot and Edit plan, under a plan that has not been shot."""
    view = discord.ui.View(timeout=None)
    view.add_item(StoryboardButton(storyboard_id, "shoot"))
    view.add_item(StoryboardButton(storyboard_id, "edit"))
    return view


def reshoot_view(storyboard_id: int, shots: int) -> discord.ui.View:
    """Reshoot 1..N under a film or a stopped storyboard (five to a row, as Discord allows)."""
    view = discord.ui.View(timeout=None)
    for number in range(1, shots + 1):
        view.add_item(StoryboardButton(storyboard_id, "reshoot", shot=number))
    return view


def film_view(storyboard_id: int, shots: int, film_job_id: int) -> discord.ui.View:
    """Reshoot 1..N and Delete under a film; Delete is any clip's (its owner or a moderator;
    the film's files and gallery page go as for any clip)."""
    view = reshoot_view(storyboard_id, shots)
    view.add_item(JobButton(film_job_id, "delete"))
    return view


async def film_stopped_view(bot: ReelBot, job: Job) -> discord.ui.View | None:
    """Reshoot 1..N under the sentence of a FILM job that failed (None: no storyboard)."""
    storyboards = Storyboards(bot.queue, clips_dir=bot.settings.clips_dir)
    storyboard = await storyboards.for_job(job.id)
    return None if storyboard is None else reshoot_view(storyboard.id, storyboard.shots)


async def film_delivery(bot: ReelBot, job: Job) -> tuple[Job, Dressing]:
    """Where and how a FILM job is posted: into its storyboard's thread, with the film's
    embed, Reshoot 1..N and Delete (a film whose storyboard is gone: where it was asked,
    with Delete only)."""
    storyboards = Storyboards(bot.queue, clips_dir=bot.settings.clips_dir)
    storyboard = await storyboards.for_job(job.id)
    take = await storyboards.film_take(job.id)
    page_url = await clip_page_url(bot.settings.public_url, Gallery(bot.queue.db), job.id)
    if storyboard is None or take is None:
        embed = discord.Embed(title=f"Film #{job.id}", colour=EMBED_COLOUR, url=page_url)
        view = discord.ui.View(timeout=None)
        view.add_item(JobButton(job.id, "delete"))
        return job, Dressing(embed, view)
    embed = film_embed(storyboard, job, take=take, page_url=page_url)
    dressing = Dressing(embed, film_view(storyboard.id, storyboard.shots, job.id))
    return replace(job, channel_id=storyboard.post_channel_id or job.channel_id), dressing


class StoryboardButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=TEMPLATE):
    """Shoot, Edit plan or Reshoot N of one storyboard."""

    def __init__(self, storyboard_id: int, action: Action, *, shot: int | None = None) -> None:
        custom_id = f"storyboard:{storyboard_id}:{action}"
        if action == "shoot":
            button = discord.ui.Button[Any](
                style=discord.ButtonStyle.primary, emoji="🎬", label="Shoot", custom_id=custom_id
            )
        elif action == "edit":
            button = discord.ui.Button[Any](
                style=discord.ButtonStyle.secondary,
                emoji="📝",
                label="Edit plan",
                custom_id=custom_id,
            )
        else:
            button = discord.ui.Button[Any](
                style=discord.ButtonStyle.secondary,
                emoji="🔁",
                label=f"Reshoot {shot}",
                custom_id=f"{custom_id}:{shot}",
                row=((shot or 1) - 1) // 5,
            )
        super().__init__(button)
        self.storyboard_id = storyboard_id
        self.action = action
        self.shot = shot

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> StoryboardButton:
        shot = int(match["shot"]) if match["shot"] else None
        return cls(int(match["id"]), cast(Action, match["action"]), shot=shot)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        # Imported here: the cog imports this module for its views.
        from bot.cogs.storyboard import press

        await press(cast("ReelBot", interaction.client), interaction, self)


def shots_text(plan: Plan) -> str:
    """The shots as the modal shows them: ``scene | camera | seconds``, one a line."""
    return "\n".join(
        f"{shot.scene} | {shot.camera or NO_CAMERA} | {shot.duration_s:g}" for shot in plan.shots
    )


def edited_plan(plan: Plan, *, sheet: str, shots: str, longest_s: float) -> Plan:
    """``plan`` with the sheet and shots a user typed; raises InvalidRequest with the sentence
    naming the first line that is wrong (Discord's client checks nothing of this)."""
    sheet = " ".join(clean_text(sheet).split())
    if not sheet:
        raise InvalidRequest("The look shared by every shot cannot be empty.")
    if len(sheet) > MAX_SHEET_CHARS:
        raise InvalidRequest(f"The look is {len(sheet)} characters; at most {MAX_SHEET_CHARS}.")
    lines = [line for line in shots.splitlines() if line.strip()]
    checked_shot_count(len(lines))
    parsed = tuple(
        _shot_line(line, number, longest_s) for number, line in enumerate(lines, start=1)
    )
    return replace(plan, sheet=sheet, shots=parsed, note=None)


def _shot_line(line: str, number: int, longest_s: float) -> Shot:
    parts = [part.strip() for part in line.split("|")]
    if len(parts) != 3:
        raise InvalidRequest(f"Shot {number} needs three parts: {SHOT_LINE_HELP}.")
    scene, camera, seconds = parts
    scene = " ".join(clean_text(scene).split())
    if not scene:
        raise InvalidRequest(f"Shot {number} has no scene.")
    if len(scene) > MAX_SCENE_CHARS:
        raise InvalidRequest(f"Shot {number}'s scene is over {MAX_SCENE_CHARS} characters.")
    move = camera.lower()
    if move not in (*CAMERA_MOVES, NO_CAMERA, ""):
        moves = ", ".join(CAMERA_MOVES)
        raise InvalidRequest(f"Shot {number}'s camera {camera!r} is not one of: {moves}, none.")
    try:
        duration = float(seconds.lower().removesuffix("s").strip())
    except ValueError:
        raise InvalidRequest(f"Shot {number}'s length {seconds!r} is not a number.") from None
    if not MIN_SHOT_SECONDS <= duration <= longest_s:
        raise InvalidRequest(
            f"Shot {number} is {duration:g} s; a shot is {MIN_SHOT_SECONDS:g} to "
            f"{longest_s:g} seconds."
        )
    return Shot(scene=scene, camera=move if move in CAMERA_MOVES else None, duration_s=duration)


class PlanModal(discord.ui.Modal):
    """The sheet and shots of a plan, pre-filled, to change before it is shot."""

    def __init__(self, storyboard_id: int, plan: Plan, *, key: str) -> None:
        super().__init__(
            title=shown(f"Edit storyboard #{storyboard_id}", 45),
            custom_id=f"storyboard:{storyboard_id}:plan:{key}",
            timeout=MODAL_TIMEOUT_S,
        )
        self.storyboard_id = storyboard_id
        self.plan = plan
        self.sheet: discord.ui.TextInput[PlanModal] = discord.ui.TextInput(
            label="Look shared by every shot",
            custom_id="sheet",
            style=discord.TextStyle.paragraph,
            default=plan.sheet[:MAX_SHEET_CHARS],
            max_length=MAX_SHEET_CHARS,
        )
        self.shots: discord.ui.TextInput[PlanModal] = discord.ui.TextInput(
            label="Shots: scene | camera | seconds",
            custom_id="shots",
            style=discord.TextStyle.paragraph,
            default=shots_text(plan)[:SHOTS_INPUT_MAX],
            max_length=SHOTS_INPUT_MAX,
        )
        self.add_item(self.sheet)
        self.add_item(self.shots)

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        from bot.cogs.storyboard import submit_plan_edit

        await submit_plan_edit(
            cast("ReelBot", interaction.client),
            interaction,
            self.storyboard_id,
            sheet=self.sheet.value,
            shots=self.shots.value,
        )

    async def on_error(  # type: ignore[override]
        self, interaction: discord.Interaction[Any], error: Exception, /
    ) -> None:
        log.error("editing storyboard %s failed", self.storyboard_id, exc_info=error)
        await reply_privately(interaction, SOMETHING_WRONG)
