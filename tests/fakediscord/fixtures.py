"""pytest fixtures: `fake_discord`, a started fake with discord.py pointed at it, and the
`rate_limits` marker that chooses its rate-limit profile."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import discord
import pytest
import yarl
from discord.gateway import DiscordWebSocket

from tests.fakediscord.driver import FakeDiscord
from tests.fakediscord.ratelimits import PROFILES, REALISTIC, RateLimitProfile

# Runs every test that does not choose with other limits, e.g. "off" to compare.
PROFILE_ENV = "FAKE_DISCORD_RATE_LIMITS"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "rate_limits(profile, reason=...): the fake Discord's rate limits for this test: "
        "a RateLimitProfile or 'realistic'/'off' (default realistic; turning them off needs "
        "a reason)",
    )


def rate_limit_profile(marker: pytest.Mark | None) -> RateLimitProfile:
    """The profile a test's `@pytest.mark.rate_limits(...)` asks for, else the default."""
    if marker is None:
        return PROFILES[os.environ.get(PROFILE_ENV, REALISTIC.name)]
    (chosen,) = marker.args
    profile = PROFILES[chosen] if isinstance(chosen, str) else chosen
    if not profile.enabled and not marker.kwargs.get("reason"):
        raise pytest.UsageError("@pytest.mark.rate_limits: turning limits off needs reason=")
    return profile


@pytest.fixture
async def fake_discord(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[FakeDiscord]:
    """A fake Discord on 127.0.0.1:<free port> in the test's loop, with Discord's rate limits
    (realistic unless the test's `rate_limits` marker says otherwise).

    Route.BASE and DEFAULT_GATEWAY point at it for the test and are restored afterwards.
    The test fails at teardown if an unknown route was called or the fake crashed.
    """
    profile = rate_limit_profile(request.node.get_closest_marker("rate_limits"))
    fake = FakeDiscord(rate_limits=profile)
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
