"""Users' /settings and the clip index survive in the shared database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.store import BotStore, UserPrefs
from jobqueue.db import Database
from jobqueue.schema import all_migrations


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database.open(tmp_path / "reelbot.db", all_migrations())
    yield db
    db.close()


async def test_prefs_default_to_the_server_defaults(database: Database) -> None:
    store = await BotStore.open(database)
    assert await store.prefs(1) == UserPrefs()


async def test_prefs_are_kept_per_user_across_reopening(database: Database) -> None:
    store = await BotStore.open(database)
    await store.set_prefs(1, UserPrefs(aspect="9:16", enhance=False))
    reopened = await BotStore.open(database)
    assert await reopened.prefs(1) == UserPrefs(aspect="9:16", enhance=False)
    assert await reopened.prefs(2) == UserPrefs()


async def test_a_clip_message_leads_back_to_its_job(database: Database) -> None:
    store = await BotStore.open(database)
    await store.remember_clip(555, 7)
    assert await store.job_for_message(555) == 7
    await store.forget_clip(555)
    assert await store.job_for_message(555) is None
