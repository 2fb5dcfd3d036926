"""The shared SQLite file: WAL mode, migrations applied once, atomic writes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlite_utils

from jobqueue.db import Database
from jobqueue.schema import MIGRATIONS


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database.open(tmp_path / "reelbot.db", [MIGRATIONS])
    yield db
    db.close()


async def test_file_is_in_wal_mode_with_the_schema(database: Database) -> None:
    mode = await database.read(lambda db: db.journal_mode)
    tables = await database.read(lambda db: set(db.table_names()))
    assert mode == "wal"
    assert {"jobs", "queue_users", "queue_limits", "queue_state", "workers"} <= tables


def test_reopening_applies_nothing_twice(tmp_path: Path) -> None:
    path = tmp_path / "reelbot.db"
    Database.open(path, [MIGRATIONS]).close()
    again = Database.open(path, [MIGRATIONS])
    try:
        assert again.write_sync(lambda db: MIGRATIONS.pending(db)) == []
    finally:
        again.close()


def test_processes_starting_together_migrate_once(tmp_path: Path) -> None:
    # The race (switching a new file to WAL) is lost only now and then: try it many times.
    for attempt in range(100):
        path = tmp_path / f"reelbot-{attempt}.db"
        assert open_together(path, count=4) == []
        check = sqlite_utils.Database(path)
        names = [row["name"] for row in check["_sqlite_migrations"].rows]
        assert len(names) == len(set(names))


def open_together(path: Path, *, count: int) -> list[BaseException]:
    """Open ``path`` from ``count`` threads at once, as the bot and its workers do."""
    errors: list[BaseException] = []
    opened: list[Database] = []

    def open_one() -> None:
        try:
            opened.append(Database.open(path, [MIGRATIONS]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for db in opened:
        db.close()
    return errors


async def test_a_failed_write_changes_nothing(database: Database) -> None:
    def insert_then_fail(db: sqlite_utils.Database) -> None:
        db.execute("INSERT INTO queue_state (key, value) VALUES ('paused', '1')")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await database.write(insert_then_fail)
    rows = await database.read(lambda db: list(db.query("SELECT * FROM queue_state")))
    assert rows == []


async def test_readers_see_committed_writes(database: Database) -> None:
    await database.write(
        lambda db: db.execute("INSERT INTO queue_state (key, value) VALUES ('paused', '1')")
    )
    rows = await database.read(lambda db: list(db.query("SELECT value FROM queue_state")))
    assert rows == [{"value": "1"}]


async def test_readers_cannot_write(database: Database) -> None:
    with pytest.raises(Exception, match="readonly"):
        await database.read(
            lambda db: db.execute("INSERT INTO queue_state (key, value) VALUES ('x', '1')")
        )
