"""The 📝 Edit scene button of a waiting job, and its modal: the job's owner replaces the
scene the video model will get, until a worker takes the job.

The button's custom_id is ``scene:<id>:edit``, a :class:`discord.ui.DynamicItem`, so it works
on any message after any restart. It sits on the job's status message (everyone sees it; only
the owner may use it, moderators included: a scene is its owner's words) and on the owner's
private reply. The modal is pre-filled with the scene, or with the prompt where the scene is
the user's own words. A submitted scene is cleaned and checked like a prompt: the prompt's
length limit, then the gate (the channel, bans, the server's blocklist; a blocked scene counts
as a refused prompt).
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

import discord

from bot.gate import admit_user
from bot.replies import SOMETHING_WRONG, acknowledge, reply_privately
from jobqueue.errors import QueueError
from jobqueue.models import Job, JobStatus
from jobqueue.scenes import Scene, Scenes, checked_scene, too_late
from pipeline.errors import InvalidRequest
from pipeline.text import MAX_PROMPT_CHARS

if TYPE_CHECKING:
    from bot.client import ReelBot

log = logging.getLogger(__name__)

TEMPLATE = r"scene:(?P<id>\d+):edit"
MODAL_TIMEOUT_S = 15 * 60
JOB_GONE = "That clip's job no longer exists."


def not_yours(job: Job) -> str:
    return f"Only the person who asked for clip #{job.id} can edit its scene."


def can_edit(job: Job, scene: Scene | None) -> bool:
    """Whether ``job``'s messages offer Edit scene: it waits and its scene is written."""
    return job.status is JobStatus.QUEUED and scene is not None and scene.settled


def scene_view(job_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(EditSceneButton(job_id))
    return view


class EditSceneButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=TEMPLATE):
    """Opens the scene editor of one waiting job, for its owner."""

    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                style=discord.ButtonStyle.secondary,
                emoji="📝",
                label="Edit scene",
                custom_id=f"scene:{job_id}:edit",
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> EditSceneButton:
        return cls(int(match["id"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        bot = cast("ReelBot", interaction.client)
        try:
            # A modal must be the first response: two indexed reads, then open it or say why not.
            job = await bot.queue.get(self.job_id)
            refusal = refusal_to_open(job, interaction.user.id)
            if refusal is not None or job is None:
                await reply_privately(interaction, refusal or JOB_GONE)
                return
            scene = await Scenes(bot.queue.db).get(job.id)
            modal = SceneModal(job, scene, key=str(interaction.id))
            await interaction.response.send_modal(modal)
        except Exception:
            log.exception("the Edit scene button of job %s failed", self.job_id)
            await reply_privately(interaction, SOMETHING_WRONG)


def refusal_to_open(job: Job | None, user_id: int) -> str | None:
    if job is None:
        return JOB_GONE
    if job.user_id != user_id:
        return not_yours(job)
    if job.status is not JobStatus.QUEUED:
        return too_late(job)
    return None


class SceneModal(discord.ui.Modal):
    """The scene of ``job``, pre-filled, to rewrite by hand."""

    def __init__(self, job: Job, scene: Scene | None, *, key: str) -> None:
        super().__init__(
            title=f"Scene of clip #{job.id}",
            custom_id=f"scene:{job.id}:{key}",
            timeout=MODAL_TIMEOUT_S,
        )
        self.job = job
        written = scene.text if scene is not None and scene.text is not None else None
        self.scene: discord.ui.TextInput[SceneModal] = discord.ui.TextInput(
            label="Scene (what the video model is told)",
            style=discord.TextStyle.paragraph,
            default=(written or job.request.prompt)[:MAX_PROMPT_CHARS],
            max_length=MAX_PROMPT_CHARS,
        )
        self.add_item(self.scene)

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        if not await acknowledge(interaction):
            return
        bot = cast("ReelBot", interaction.client)
        sentence = await edit_scene(bot, self.job, interaction.user.id, self.scene.value)
        await reply_privately(interaction, sentence)

    async def on_error(  # type: ignore[override]
        self, interaction: discord.Interaction[Any], error: Exception, /
    ) -> None:
        log.error("editing the scene of job %s failed", self.job.id, exc_info=error)
        await reply_privately(interaction, SOMETHING_WRONG)


async def edit_scene(bot: ReelBot, job: Job, user_id: int, typed: str) -> str:
    """Make ``typed`` the scene of ``job`` for ``user_id``; the sentence saying how it went.

    Checked here whatever Discord's client enforced: the modal's limits are the client's only.
    """
    try:
        scene = checked_scene(typed)
    except InvalidRequest as exc:
        return str(exc)
    refusal = await admit_user(
        bot,
        guild_id=job.guild_id,
        channel_id=job.channel_id,
        user_id=user_id,
        request=replace(job.request, prompt=scene, negative_prompt=""),
        what="scene",
    )
    if refusal is not None:
        return refusal
    try:
        await Scenes(bot.queue.db).edit(job.id, user_id=user_id, text=scene)
    except QueueError as exc:
        return str(exc)
    log.info("job %d: its owner edited the scene", job.id)
    return f"Clip #{job.id} will be made from your scene."
