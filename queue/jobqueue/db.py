"""One SQLite file shared by the bot and every worker process.

Each process opens a :class:`Database`: all its writes go through one writer thread (as in
Datasette), each inside a ``BEGIN IMMEDIATE`` transaction, so a write never fails half-way
with "database is locked" and writers in different processes take turns on SQLite's own lock.
Reads run on a small pool of read-only connections; in WAL mode they never wait for a writer.

SQLite's automatic checkpoint (copying the write-ahead log back into the database file)
runs inside whichever commit crosses the threshold, and cost a claim-and-complete cycle
more than half its time. Writers here turn it off and a background thread checkpoints
(``PASSIVE``: it never blocks readers or writers) every ``checkpoint_interval_s``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import sqlite_utils

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_BUSY_TIMEOUT_S = 30.0
DEFAULT_CHECKPOINT_INTERVAL_S = 1.0


def _enable_wal(db: sqlite_utils.Database, *, timeout_s: float) -> None:
    """Switch the file to WAL, waiting out other processes opening it at the same moment.

    Changing the journal mode needs an exclusive lock and SQLite answers "database is
    locked" at once rather than through the busy handler, so the bot and its workers
    starting together on a new file would otherwise race.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.01
    while True:
        try:
            db.enable_wal()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


class Database:
    """An SQLite file in WAL mode with one writer thread and a pool of readers.

    ``fn`` passed to :meth:`write` or :meth:`read` runs in a worker thread with a
    ``sqlite_utils.Database``; it must return plain values (not a lazy ``db.query``
    generator), because the connection is used by the next call as soon as it returns.
    """

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        readers: int = 2,
        checkpoint_interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S,
    ) -> None:
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = self._connect(read_only=False)
        _enable_wal(self._writer, timeout_s=busy_timeout_s)
        self._writer.execute("PRAGMA wal_autocheckpoint = 0")
        self._checkpointer = _Checkpointer(self._connect(read_only=False), checkpoint_interval_s)
        self._write_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-write")
        self._read_executor = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="db-read")
        self._local = threading.local()
        self._readers: list[sqlite_utils.Database] = []
        self._readers_lock = threading.Lock()
        self._closed = False

    @classmethod
    def open(
        cls,
        path: Path,
        migrations: Sequence[sqlite_utils.Migrations],
        *,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    ) -> Database:
        """Open (creating if needed) the file and apply every pending migration."""
        database = cls(path, busy_timeout_s=busy_timeout_s)
        try:
            database.write_sync(lambda db: _apply(db, migrations))
        except BaseException:
            database.close()
            raise
        return database

    async def write(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        """Run ``fn`` in one ``BEGIN IMMEDIATE`` transaction on the writer thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._write_executor, self.write_sync, fn)

    async def read(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        """Run ``fn`` on a read-only connection; it sees the latest committed state."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._read_executor, self._read_sync, fn)

    def write_sync(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        """Blocking form of :meth:`write`, for code already off the event loop."""
        if self._closed:
            raise sqlite3.ProgrammingError("the database is closed")
        return _in_immediate_transaction(self._writer, fn)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._checkpointer.stop()
        self._write_executor.shutdown(wait=True)
        self._read_executor.shutdown(wait=True)
        self._writer.close()
        with self._readers_lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()

    def _read_sync(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        reader: sqlite_utils.Database | None = getattr(self._local, "reader", None)
        if reader is None:
            reader = self._connect(read_only=True)
            self._local.reader = reader
            with self._readers_lock:
                self._readers.append(reader)
        return fn(reader)

    def _connect(self, *, read_only: bool) -> sqlite_utils.Database:
        conn = sqlite3.connect(
            str(self.path), timeout=self._busy_timeout_s, check_same_thread=False
        )
        db = sqlite_utils.Database(conn)
        db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        # NORMAL keeps every committed transaction through a process crash (kill -9) in WAL
        # mode; only a power cut can lose the last few, and FULL would cost an fsync per job.
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        if read_only:
            db.execute("PRAGMA query_only = ON")
        return db


class _Checkpointer:
    """A thread that checkpoints the write-ahead log every ``interval_s`` until stopped."""

    def __init__(self, db: sqlite_utils.Database, interval_s: float) -> None:
        self._db = db
        self._interval_s = interval_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="db-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
        self._checkpoint()
        self._db.close()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval_s):
            self._checkpoint()

    def _checkpoint(self) -> None:
        try:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            # Another process may be checkpointing; the next round will catch up.
            log.debug("checkpoint of %s skipped", self._db, exc_info=True)


def _in_immediate_transaction(
    db: sqlite_utils.Database, fn: Callable[[sqlite_utils.Database], T]
) -> T:
    # IMMEDIATE takes the write lock up front: a read-then-write (a claim) can never be
    # interleaved with another process's write, and waiting happens in busy_timeout.
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(db)
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    db.conn.execute("COMMIT")
    return result


def _apply(db: sqlite_utils.Database, migrations: Sequence[sqlite_utils.Migrations]) -> None:
    # Inside the caller's IMMEDIATE transaction each migration nests as a savepoint, so two
    # processes starting at once apply the schema once: the second waits, then finds it done.
    for migration_set in migrations:
        pending = [migration.name for migration in migration_set.pending(db)]
        if pending:
            log.info("applying %s migrations: %s", migration_set.name, ", ".join(pending))
        migration_set.apply(db)
