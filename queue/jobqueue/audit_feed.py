"""Following the audit log, whichever process wrote each row, and remembering how far.

The bot, its GPU workers, scene writers and the broker's dispatcher all write audit rows into
the same SQLite file (a blocked rewrite is written by whichever process wrote the scene). A
reader that followed one process's :class:`~jobqueue.moderation.Moderation` in memory would
miss the others, so a reader follows the table itself, the way the bot follows the jobs table
(:mod:`jobqueue.changes`): it polls for ``id > handled`` (a primary-key range, in commit order)
and stores how far it got in ``queue_state``, so a restart neither repeats nor skips a row.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial

import sqlite_utils

from jobqueue.db import Database
from jobqueue.moderation import AuditEntry
from jobqueue.moderation import audit as audit_log
from jobqueue.store import read_state, write_state

BATCH = 100
POLL_INTERVAL_S = 1.0


@dataclass(frozen=True)
class Cut:
    """A server's backlog longer than the reader shows: the ``left_out`` rows before
    ``first_kept`` are not shown."""

    left_out: int
    first_kept: int


class AuditFeed:
    """Every server's audit rows after the ones ``reader`` has handled, oldest first."""

    def __init__(
        self, database: Database, *, reader: str, poll_interval_s: float = POLL_INTERVAL_S
    ) -> None:
        self.database = database
        self.key = f"audit_feed:{reader}"
        self.poll_interval_s = poll_interval_s

    async def handled_through(self) -> int:
        """The id of the last row the reader handled.

        A reader new to this database starts at the newest row: the rows written before it
        existed are in the audit log, not news.
        """
        return await self.database.write(self._handled_or_newest)

    async def mark_handled(self, through: int) -> None:
        """Remember that every row up to ``through`` is handled."""
        await self.database.write(lambda db: write_state(db, self.key, str(through)))

    async def newest(self) -> int:
        """The id of the newest row written so far (0 when there is none)."""
        return await self.database.read(audit_log.newest_entry_id)

    async def backlog_cuts(self, after: int, *, keep: int) -> dict[int, Cut]:
        """Where each server's rows after ``after`` (those that exist now) are cut to its
        newest ``keep``; servers with ``keep`` or fewer are not named."""
        if keep < 1:
            raise ValueError(f"keep must be at least 1, not {keep}")
        return await self.database.read(lambda db: _backlog_cuts(db, after, keep))

    async def follow(self, after: int) -> AsyncIterator[list[AuditEntry]]:
        """Batches of the rows after ``after``, as they are committed; never ends."""
        while True:
            batch = await self.database.read(
                partial(audit_log.entries_after, after_id=after, limit=BATCH)
            )
            if batch:
                after = batch[-1].id
                yield batch
            if len(batch) < BATCH:
                await asyncio.sleep(self.poll_interval_s)

    def _handled_or_newest(self, db: sqlite_utils.Database) -> int:
        stored = read_state(db, self.key)
        if stored is not None:
            return int(stored)
        newest = audit_log.newest_entry_id(db)
        write_state(db, self.key, str(newest))
        return newest


def _backlog_cuts(db: sqlite_utils.Database, after: int, keep: int) -> dict[int, Cut]:
    through = audit_log.newest_entry_id(db)
    cuts = {}
    for guild_id, count in audit_log.counts_by_guild(db, after, through).items():
        if count <= keep:
            continue
        first_kept = audit_log.nth_newest_id(db, guild_id, keep, through_id=through)
        assert first_kept is not None  # the server has more than ``keep`` rows
        cuts[guild_id] = Cut(left_out=count - keep, first_kept=first_kept)
    return cuts
