"""The bot's own tables in the shared database: users' /settings, servers' own defaults and
which message shows which clip.

Only the bot reads them (it resolves a user's defaults into each request before submitting),
so they live beside the queue's tables under their own migration set, "bot".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sqlite_utils

from jobqueue.db import Database

MIGRATIONS = sqlite_utils.Migrations("bot")


@MIGRATIONS()
def create_user_prefs(db: sqlite_utils.Database) -> None:
    db.execute(
        "CREATE TABLE bot_user_prefs (user_id INTEGER PRIMARY KEY, aspect TEXT, enhance INTEGER)"
    )


@MIGRATIONS()
def create_clip_messages(db: sqlite_utils.Database) -> None:
    # Reactions name only a message; this finds the job a posted clip belongs to.
    db.execute(
        "CREATE TABLE bot_clip_messages (message_id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL)"
    )


@MIGRATIONS()
def create_queue_boards(db: sqlite_utils.Database) -> None:
    # A busy channel's queue board, so a restarted bot edits it instead of posting another.
    db.execute(
        "CREATE TABLE bot_queue_boards"
        " (channel_id INTEGER PRIMARY KEY, message_id INTEGER NOT NULL)"
    )


@MIGRATIONS()
def add_drafts_defaults(db: sqlite_utils.Database) -> None:
    # Whether /create makes drafts first: a user's own default, and a server's (/admin drafts).
    db.execute("ALTER TABLE bot_user_prefs ADD COLUMN drafts INTEGER")
    db.execute("CREATE TABLE bot_server_settings (guild_id INTEGER PRIMARY KEY, drafts INTEGER)")


@dataclass(frozen=True)
class UserPrefs:
    """A user's own defaults; ``None`` means "the server's default"."""

    aspect: str | None = None
    enhance: bool | None = None
    drafts: bool | None = None


class BotStore:
    """Async access to the bot's tables through the shared :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @classmethod
    async def open(cls, db: Database) -> BotStore:
        """The store, with the "bot" migrations applied to ``db``."""
        await db.write(MIGRATIONS.apply)
        return cls(db)

    async def prefs(self, user_id: int) -> UserPrefs:
        def read(db: sqlite_utils.Database) -> UserPrefs:
            rows = list(
                db.query(
                    "SELECT aspect, enhance, drafts FROM bot_user_prefs WHERE user_id = ?",
                    [user_id],
                )
            )
            if not rows:
                return UserPrefs()
            return UserPrefs(
                aspect=rows[0]["aspect"],
                enhance=_flag(rows[0]["enhance"]),
                drafts=_flag(rows[0]["drafts"]),
            )

        return await self._db.read(read)

    async def set_prefs(self, user_id: int, prefs: UserPrefs) -> None:
        row = {
            "user_id": user_id,
            "aspect": prefs.aspect,
            "enhance": prefs.enhance,
            "drafts": prefs.drafts,
        }
        await self._db.write(lambda db: _upsert(db, "bot_user_prefs", row, "user_id"))

    async def server_drafts(self, guild_id: int) -> bool | None:
        """Whether /create makes drafts first on this server; None: the bot's default."""

        def read(db: sqlite_utils.Database) -> bool | None:
            sql = "SELECT drafts FROM bot_server_settings WHERE guild_id = ?"
            rows = list(db.query(sql, [guild_id]))
            return _flag(rows[0]["drafts"]) if rows else None

        return await self._db.read(read)

    async def set_server_drafts(self, guild_id: int, drafts: bool | None) -> None:
        row = {"guild_id": guild_id, "drafts": drafts}
        await self._db.write(lambda db: _upsert(db, "bot_server_settings", row, "guild_id"))

    async def remember_clip(self, message_id: int, job_id: int) -> None:
        row = {"message_id": message_id, "job_id": job_id}
        await self._db.write(lambda db: _upsert(db, "bot_clip_messages", row, "message_id"))

    async def forget_clip(self, message_id: int) -> None:
        sql = "DELETE FROM bot_clip_messages WHERE message_id = ?"
        await self._db.write(lambda db: _execute(db, sql, message_id))

    async def job_for_message(self, message_id: int) -> int | None:
        def read(db: sqlite_utils.Database) -> int | None:
            rows = list(
                db.query("SELECT job_id FROM bot_clip_messages WHERE message_id = ?", [message_id])
            )
            return int(rows[0]["job_id"]) if rows else None

        return await self._db.read(read)

    async def queue_boards(self) -> dict[int, int]:
        """Every queue board the bot has up: channel id -> message id."""

        def read(db: sqlite_utils.Database) -> dict[int, int]:
            rows = db.query("SELECT channel_id, message_id FROM bot_queue_boards")
            return {int(row["channel_id"]): int(row["message_id"]) for row in rows}

        return await self._db.read(read)

    async def remember_queue_board(self, channel_id: int, message_id: int) -> None:
        row = {"channel_id": channel_id, "message_id": message_id}
        await self._db.write(lambda db: _upsert(db, "bot_queue_boards", row, "channel_id"))

    async def forget_queue_board(self, channel_id: int) -> None:
        sql = "DELETE FROM bot_queue_boards WHERE channel_id = ?"
        await self._db.write(lambda db: _execute(db, sql, channel_id))


def _upsert(db: sqlite_utils.Database, table: str, row: Mapping[str, object], pk: str) -> None:
    db.table(table).upsert(dict(row), pk=pk)


def _execute(db: sqlite_utils.Database, sql: str, *params: object) -> None:
    db.execute(sql, list(params))


def _flag(value: object) -> bool | None:
    return None if value is None else bool(value)
