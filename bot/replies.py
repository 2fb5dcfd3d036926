"""Private answers to an interaction, whatever state its acknowledgement is in."""

from __future__ import annotations

import logging

import discord

from bot.render import NO_PINGS

log = logging.getLogger(__name__)

SOMETHING_WRONG = "Something went wrong on my side; the error has been logged."
ACKNOWLEDGED = "interaction_acknowledged"
"""The event :func:`acknowledge` dispatches with the interaction and the seconds since it
was created."""


async def reply_privately(interaction: discord.Interaction, sentence: str) -> None:
    """Show ``sentence`` to the user alone: as the reply, or in place of "thinking…"."""
    try:
        if interaction.response.is_done():
            await interaction.edit_original_response(content=sentence, allowed_mentions=NO_PINGS)
        else:
            await interaction.response.send_message(
                sentence, ephemeral=True, allowed_mentions=NO_PINGS
            )
    except discord.HTTPException:
        log.warning("could not tell user %s: %s", interaction.user.id, sentence, exc_info=True)


async def acknowledge(interaction: discord.Interaction) -> bool:
    """Defer privately ("thinking…") before any slow work; False if Discord refused it."""
    try:
        await interaction.response.defer(ephemeral=True, thinking=True)
    except discord.HTTPException:
        # Too late (10062) or already acknowledged (40060), e.g. an event replayed after
        # a RESUME: the user has an answer already or cannot get one.
        log.warning("could not acknowledge interaction %s", interaction.id, exc_info=True)
        return False
    # For the web server's metrics (bot.web.server), when it runs.
    elapsed = (discord.utils.utcnow() - interaction.created_at).total_seconds()
    interaction.client.dispatch(ACKNOWLEDGED, interaction, elapsed)
    return True
