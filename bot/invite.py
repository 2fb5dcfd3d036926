"""The invite link: the scopes and the permissions the bot needs, nothing more."""

from __future__ import annotations

import discord

INVITE_SCOPES = ("bot", "applications.commands")
# The README's invite URL carries this integer (309237763136); a test keeps the two in step.
BOT_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,
    add_reactions=True,
    # A storyboard's film goes into a thread started from its plan message.
    create_public_threads=True,
    send_messages_in_threads=True,
)


def invite_url(application_id: int) -> str:
    """The link a server owner opens to add the bot with the permissions it needs."""
    return discord.utils.oauth_url(
        application_id, permissions=BOT_PERMISSIONS, scopes=INVITE_SCOPES
    )
