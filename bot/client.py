"""The Discord client: shared resources, extensions, command sync and the error handler."""

from __future__ import annotations

import logging

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.buttons import JobButton
from bot.channel_writes import Budget, ChannelWrites, Route, discord_py_wait
from bot.drafts import DraftButton
from bot.invite import invite_url
from bot.private_replies import PrivateReplies
from bot.render import NO_PINGS
from bot.replies import SOMETHING_WRONG, reply_privately
from bot.scene import EditSceneButton
from bot.settings import Settings
from bot.store import BotStore
from jobqueue.errors import QueueError
from jobqueue.jobs import JobQueue
from jobqueue.moderation import Moderation, ModerationError

log = logging.getLogger(__name__)

EXTENSIONS = (
    "bot.cogs.create",
    "bot.cogs.animate",
    "bot.cogs.queue_cmds",
    "bot.cogs.usersettings",
    "bot.cogs.info",
    "bot.cogs.storyboard",
    "bot.cogs.delivery",
    "bot.cogs.reactions",
    "bot.cogs.admin",
)


MAX_RATELIMIT_WAIT_S = 30.0
"""The longest discord.py waits out a 429 before handing the write back (its minimum)."""
GLOBAL_REQUESTS_PER_S = 45
"""Below Discord's 50 a second, leaving room for what does not go through the scheduler."""
CLIP_RESERVE = 2
"""Slots of each channel's send and edit windows that status updates never take."""


def channel_writes(settings: Settings) -> ChannelWrites:
    """The per-channel write budgets, Discord's numbers with the server owner's overrides."""
    window = settings.channel_window_seconds
    budgets = {
        Route.SEND: Budget(settings.channel_sends_per_window, window, reserve=CLIP_RESERVE),
        Route.EDIT: Budget(settings.channel_edits_per_window, window, reserve=CLIP_RESERVE),
        Route.DELETE: Budget(5, 1.0),
        Route.REACT: Budget(1, 0.25),
        Route.PRIVATE: Budget(5, 2.0, reserve=1),
    }
    return ChannelWrites(budgets, Budget(GLOBAL_REQUESTS_PER_S, 1.0))


def bot_intents() -> discord.Intents:
    """Guilds (channels, roles) and guild reactions: nothing privileged."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_reactions = True
    return intents


class ReelTree(app_commands.CommandTree["ReelBot"]):
    """Turns any command error into one ephemeral sentence; the log gets the traceback."""

    async def on_error(
        self, interaction: discord.Interaction[ReelBot], error: app_commands.AppCommandError
    ) -> None:
        if isinstance(error, app_commands.NoPrivateMessage):
            sentence = "This command only works in a server channel."
        elif isinstance(error, app_commands.CheckFailure | app_commands.TransformerError):
            sentence = str(error)
        elif isinstance(error, app_commands.CommandInvokeError) and isinstance(
            error.original, QueueError | ModerationError
        ):
            # A refusal the user caused, already worded as one sentence.
            sentence = str(error.original)
        else:
            log.error("command %s failed", interaction.command, exc_info=error)
            sentence = SOMETHING_WRONG
        await reply_privately(interaction, sentence)


class ReelBot(commands.Bot):
    """reelbot on Discord. The queue, moderation and HTTP session are handed in, not made here."""

    store: BotStore

    def __init__(
        self,
        settings: Settings,
        *,
        queue: JobQueue,
        moderation: Moderation,
        session: aiohttp.ClientSession | None = None,
        guild_ready_timeout: float = 2.0,
        shard_count: int | None = None,
    ) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=bot_intents(),
            allowed_mentions=NO_PINGS,
            help_command=None,
            tree_cls=ReelTree,
            guild_ready_timeout=guild_ready_timeout,
            max_ratelimit_timeout=MAX_RATELIMIT_WAIT_S,
            shard_count=shard_count,
        )
        self.settings = settings
        self.writes = channel_writes(settings)
        self.writes.hint = discord_py_wait(self.http)
        self.private_replies = PrivateReplies(
            self.writes, interval_s=settings.private_update_seconds
        )
        self.queue = queue
        self.moderation = moderation
        self._session = session
        self._owns_session = session is None
        self.upload_limits: dict[int, int] = {}

    @property
    def session(self) -> aiohttp.ClientSession:
        """The HTTP session for downloads (start images)."""
        if self._session is None:
            raise RuntimeError("the bot has not been set up yet")
        return self._session

    async def setup_hook(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self.store = await BotStore.open(self.queue.db)
        self.writes.start()
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        self.add_dynamic_items(JobButton, DraftButton, EditSceneButton)
        await self.sync_commands()

    async def sync_commands(self) -> None:
        """Sync to the configured guilds (instant) or globally (Discord takes up to an hour)."""
        guild_ids = self.settings.discord_guild_ids
        if not guild_ids:
            synced = await self.tree.sync()
            log.info("synced %d commands globally", len(synced))
            return
        for guild_id in guild_ids:
            guild = discord.Object(guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to guild %s", len(synced), guild_id)

    async def on_ready(self) -> None:
        if self.application_id is not None:
            log.info("connected as %s; invite link: %s", self.user, invite_url(self.application_id))

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        # Interactions carry the guild's real upload limit (boosts raise it).
        if interaction.guild_id is not None:
            self.upload_limits[interaction.guild_id] = interaction.filesize_limit

    def upload_limit(self, guild_id: int | None) -> int:
        """The largest file the bot may post in ``guild_id``, as best known."""
        if guild_id is not None and guild_id in self.upload_limits:
            return self.upload_limits[guild_id]
        guild = self.get_guild(guild_id) if guild_id is not None else None
        if guild is not None:
            return guild.filesize_limit
        return discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES

    async def close(self) -> None:
        # Writes still waiting for a channel's budget are dropped (the delivery cog retries
        # its own after a restart); the cogs unload, then the connection closes.
        await self.writes.close()
        await super().close()
        if self._owns_session and self._session is not None:
            await self._session.close()


class ShardedReelBot(ReelBot, commands.AutoShardedBot):
    """reelbot on a sharded gateway: discord.py runs every shard's connection in this one
    process (``AutoShardedBot``); commands, buttons, delivery and the queue are unchanged."""


def make_bot(
    settings: Settings,
    *,
    queue: JobQueue,
    moderation: Moderation,
    session: aiohttp.ClientSession | None = None,
) -> ReelBot:
    """The bot ``reelbot run`` connects: sharded when ``DISCORD_SHARD_COUNT`` is set (``auto``:
    as many shards as Discord recommends for the bot's servers)."""
    count = settings.discord_shard_count
    if count is None:
        return ReelBot(settings, queue=queue, moderation=moderation, session=session)
    return ShardedReelBot(
        settings,
        queue=queue,
        moderation=moderation,
        session=session,
        shard_count=None if count == "auto" else count,
    )
