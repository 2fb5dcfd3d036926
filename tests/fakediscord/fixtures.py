"""pytest fixtures: `fake_discord`, a started fake with discord.py pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import discord
import pytest
import yarl
from discord.gateway import DiscordWebSocket

from tests.fakediscord.driver import FakeDiscord


@pytest.fixture
async def fake_discord(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    """A fake Discord on 127.0.0.1:<free port> in the test's loop.

    Route.BASE and DEFAULT_GATEWAY point at it for the test and are restored afterwards.
    The test fails at teardown if an unknown route was called or the fake crashed.
    """
    fake = FakeDiscord()
    await fake.start()
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
    monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))
    try:
        yield fake
    finally:
        await fake.stop()
    problems = fake.problems()
    if problems:
        pytest.fail("fake Discord saw problems:\n" + "\n".join(problems))
