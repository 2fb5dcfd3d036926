"""The ✏️ Remix modal: the clip's prompts, pre-filled, to edit and submit as a new job."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

import discord

from bot import followups
from bot.replies import SOMETHING_WRONG, acknowledge, reply_privately
from bot.submit import submit_from_interaction
from jobqueue.models import Job
from pipeline.text import MAX_NEGATIVE_CHARS, MAX_PROMPT_CHARS

if TYPE_CHECKING:
    from bot.client import ReelBot

log = logging.getLogger(__name__)

MODAL_TIMEOUT_S = 15 * 60


class RemixModal(discord.ui.Modal):
    """Edits ``parent``'s prompt and negative prompt; the seed and settings stay."""

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
        self.add_item(self.prompt)
        self.add_item(self.negative)

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        if not await acknowledge(interaction):
            return
        # Checked and cleaned when submitted, like every request: the modal's length limits
        # and required prompt are enforced by Discord's client only.
        follow = followups.remix(self.parent, self.prompt.value, self.negative.value)
        await submit_from_interaction(cast("ReelBot", interaction.client), interaction, follow)

    async def on_error(  # type: ignore[override]
        self, interaction: discord.Interaction[Any], error: Exception, /
    ) -> None:
        log.error("the remix of job %s failed", self.parent.id, exc_info=error)
        await reply_privately(interaction, SOMETHING_WRONG)
