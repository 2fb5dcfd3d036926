"""The queue's schema: a database made by an older reelbot keeps working, and the hot queries
are answered from the partial indexes the schema builds for them."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from jobqueue.jobs import JobQueue
from jobqueue.models import JobStatus

BEFORE_ISSUE_9 = Path(__file__).resolve().parent / "fixtures" / "reelbot-before-issue-9.sql"
"""Five jobs: #1 done, #2 running under an expired lease, #3 failed, #4 waiting, #5 cancelled."""


def database_from_dump(path: Path, dump: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(dump.read_text())
    conn.close()
    return path


def schema(path: Path) -> list[tuple[str, str, str | None]]:
    conn = sqlite3.connect(path)
    try:
        found = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
            " ORDER BY type, name"
        ).fetchall()
    finally:
        conn.close()
    return found


@pytest.fixture
async def old_queue(tmp_path: Path) -> AsyncIterator[JobQueue]:
    queue = await JobQueue.open(database_from_dump(tmp_path / "old.db", BEFORE_ISSUE_9))
    yield queue
    await queue.close()


async def test_an_older_database_opens_with_its_jobs_where_they_were(old_queue: JobQueue) -> None:
    stats = await old_queue.stats()
    assert (stats.waiting, stats.running) == (1, 1)
    assert [job.id for job in await old_queue.undelivered_finished()] == [1, 3, 5]
    assert [job.id for job in await old_queue.active_jobs()] == [2, 4]
    assert [job.id for job in await old_queue.user_jobs(202, active_only=False)] == [3, 4]

    # #2's worker died: the claim puts it back, and user 202 (served longer ago) goes first.
    first = await old_queue.claim("new-worker", lease_seconds=60)
    second = await old_queue.claim("new-worker", lease_seconds=60)
    assert first is not None
    assert (first.id, first.request.prompt) == (4, "a fox")
    assert second is not None
    assert (second.id, second.attempts, second.status) == (2, 2, JobStatus.RUNNING)
    assert await old_queue.claim("new-worker", lease_seconds=60) is None
    stats = await old_queue.stats()
    assert (stats.waiting, stats.running) == (0, 2)


async def test_an_upgraded_database_has_the_schema_of_a_new_one(
    old_queue: JobQueue, tmp_path: Path
) -> None:
    fresh = await JobQueue.open(tmp_path / "new.db")
    await fresh.close()
    assert schema(old_queue.db.path) == schema(tmp_path / "new.db")


@pytest.fixture
def executed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement connections run from now on, with its parameters filled in."""
    statements: list[str] = []
    connect = sqlite3.connect

    def traced_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(sqlite3, "connect", traced_connect)
    return statements


async def test_hot_queries_use_the_partial_indexes(executed: list[str], tmp_path: Path) -> None:
    queue = await JobQueue.open(database_from_dump(tmp_path / "old.db", BEFORE_ISSUE_9))
    try:
        await queue.position(4)
        await queue.undelivered_finished()
        await queue.claim("new-worker", lease_seconds=60)
    finally:
        await queue.close()
    plan = query_planner(queue.db.path)

    def plan_of(marker: str) -> str:
        queries = [sql for sql in executed if sql.lstrip().startswith("SELECT") and marker in sql]
        assert queries, f"no query with {marker!r} ran"
        return plan(queries[0])

    assert "jobs_running_lease" in plan_of("lease_expires_at <")
    assert "queue_users_next" in plan_of("FROM queue_users u")
    assert "jobs_undelivered" in plan_of("delivered_at IS NULL")
    assert "jobs_queued_by_user" in plan_of("SELECT COUNT(*) FROM jobs WHERE")
    assert "jobs_done_by_request" in plan_of("AND request_key =")
    assert "jobs_done_by_shape" in plan_of("AND shape_key =")


def query_planner(path: Path) -> Callable[[str], str]:
    def plan(sql: str) -> str:
        conn = sqlite3.connect(path)
        try:
            steps = conn.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
        finally:
            conn.close()
        return " / ".join(str(step[-1]) for step in steps)

    return plan
