"""The ✏️ Remix modal: the clip's prompts, pre-filled, to edit and submit as a new job."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

import discord

from bot import followups
from bot.replies import SOMETHING_WRONG, acknowledge, reply_privately
from bot.submit import submit_from_interaction
from jobqueue.models import Job
from pipeline.camera import CAMERA_MOVES
from pipeline.text import MAX_NEGATIVE_CHARS, MAX_PROMPT_CHARS

if TYPE_CHECKING:
    from bot.client import ReelBot

log = logging.getLogger(__name__)

MODAL_TIMEOUT_S = 15 * 60
MODELS_CHOICE = "model's choice"
"""The camera menu's entry for no move asked for (the model decides)."""


class RemixModal(discord.ui.Modal):
    """Edits ``parent``'s prompt, negative prompt and camera move; the seed and the other
    settings (motion among them) stay.

    The camera move is a menu set to the parent's: a remix describes the shot again, its
    camera included. What comes back is checked at the door like every request (a value that
    is no move, which only a modified client sends, is refused with the moves to choose from).
    """

    def __init__(self, parent: Job, *, key: str) -> None:
        # The key keeps two people remixing one clip at once from sharing a modal.
        super().__init__(
            title=f"Remix clip #{parent.id}",
            custom_id=f"remix:{parent.id}:{key}",
            timeout=MODAL_TIMEOUT_S,
        )
        self.parent = parent
        self.prompt: discord.ui.TextInput[RemixModal] = discord.ui.TextInput(
            label="Prompt",
            style=discord.TextStyle.paragraph,
            default=parent.request.prompt[:MAX_PROMPT_CHARS],
            max_length=MAX_PROMPT_CHARS,
        )
        self.negative: discord.ui.TextInput[RemixModal] = discord.ui.TextInput(
            label="Negative prompt (what to avoid)",
            style=discord.TextStyle.paragraph,
            default=parent.request.negative_prompt[:MAX_NEGATIVE_CHARS] or None,
            max_length=MAX_NEGATIVE_CHARS,
            required=False,
        )
        self.camera: discord.ui.Select[RemixModal] = discord.ui.Select(
            options=camera_options(parent.request.camera), required=False
        )
        self.add_item(self.prompt)
        self.add_item(self.negative)
        self.add_item(discord.ui.Label(text="Camera move", component=self.camera))

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        if not await acknowledge(interaction):
            return
        # Checked and cleaned when submitted, like every request: the modal's length limits
        # and required prompt are enforced by Discord's client only.
        follow = followups.remix(
            self.parent, self.prompt.value, self.negative.value, camera=chosen_camera(self.camera)
        )
        await submit_from_interaction(cast("ReelBot", interaction.client), interaction, follow)

    async def on_error(  # type: ignore[override]
        self, interaction: discord.Interaction[Any], error: Exception, /
    ) -> None:
        log.error("the remix of job %s failed", self.parent.id, exc_info=error)
        await reply_privately(interaction, SOMETHING_WRONG)


def camera_options(current: str | None) -> list[discord.SelectOption]:
    """The camera menu: the model's choice, then every move; ``current`` is selected."""
    return [
        discord.SelectOption(label=move, default=move == (current or MODELS_CHOICE))
        for move in (MODELS_CHOICE, *CAMERA_MOVES)
    ]


def chosen_camera(menu: discord.ui.Select[RemixModal]) -> str | None:
    """The move chosen in the camera menu; None for the model's choice (or no choice)."""
    chosen = menu.values[0] if menu.values else MODELS_CHOICE
    return None if chosen == MODELS_CHOICE else chosen
