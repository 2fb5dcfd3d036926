"""The bot's settings: the worker's and the web server's, plus how to reach Discord and where
to answer."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import NoDecode

from bot.web.settings import WebSettings
from pipeline.storyboard import PLAN_TIMEOUT_S

DISCORD_API_BASE = "https://discord.com/api/v10"
DISCORD_GATEWAY_URL = "wss://gateway.discord.gg/"

IdList = Annotated[list[int], NoDecode]


def _discord_env(name: str) -> AliasChoices:
    # Discord's own variable names are what server owners know from every other bot.
    return AliasChoices(name, f"REELBOT_{name}")


class Settings(WebSettings):
    """Everything ``reelbot run`` needs."""

    discord_token: str = Field(
        default="", repr=False, validation_alias=_discord_env("DISCORD_TOKEN")
    )
    discord_api_base: str = Field(
        default=DISCORD_API_BASE, validation_alias=_discord_env("DISCORD_API_BASE")
    )
    discord_gateway_url: str = Field(
        default=DISCORD_GATEWAY_URL, validation_alias=_discord_env("DISCORD_GATEWAY_URL")
    )
    discord_guild_ids: IdList = Field(
        default_factory=list, validation_alias=_discord_env("DISCORD_GUILD_IDS")
    )
    discord_allowed_channel_ids: IdList = Field(
        default_factory=list, validation_alias=_discord_env("DISCORD_ALLOWED_CHANNEL_IDS")
    )
    discord_shard_count: Annotated[int, Field(ge=1)] | Literal["auto"] | None = Field(
        default=None, validation_alias=_discord_env("DISCORD_SHARD_COUNT")
    )

    progress_edit_seconds: float = 3.0
    # Discord's per-channel write limits as the bot paces itself (commonly 5 new messages and
    # 5 edits per 5 s); a bot behind a proxy that shares them may set them lower.
    channel_sends_per_window: int = Field(default=5, ge=3)
    channel_edits_per_window: int = Field(default=5, ge=3)
    channel_window_seconds: float = Field(default=5.0, gt=0)
    private_update_seconds: float = Field(default=5.0, gt=0)
    queue_board_seconds: float = Field(default=10.0, gt=0)
    queue_board_from_jobs: int = Field(default=3, ge=1)
    drafts: bool = True
    """/create makes four quick drafts first, where the server and the user have not said."""
    max_extended_seconds: float = Field(default=21.0, gt=0)
    """The longest clip Extend makes: an Extend that would pass it is refused."""
    plan_timeout_s: float = Field(default=PLAN_TIMEOUT_S, gt=0)
    """How long /storyboard's language model may take to load and write a plan (a small
    model on the CPU writes a plan far slower than a rewrite)."""

    strikes_for_ban: int = 3
    strike_window_hours: float = 24.0
    strike_ban_hours: float = 24.0
    mod_log_channel_id: int | None = None

    @field_validator("mod_log_channel_id", "discord_shard_count", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        """An empty ``NAME=`` line in .env means "not set"."""
        return None if value == "" else value

    @field_validator("discord_guild_ids", "discord_allowed_channel_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        """Accept ``"1,2,3"``, how people write lists in a .env file."""
        if isinstance(value, str):
            return [int(part) for part in value.replace(" ", "").split(",") if part]
        return value
