"""The per-channel write scheduler on its own: budgets kept, best write first, updates merged,
room left for clips, a 429 retried in place. Windows are short; the tests assert order and
counts, never durations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import discord
import pytest

from bot.channel_writes import NOT_SENT, Budget, ChannelWrites, Priority, Route

WINDOW_S = 0.3
CHANNEL = 11


@pytest.fixture
async def writes() -> AsyncIterator[ChannelWrites]:
    budgets = {
        Route.SEND: Budget(3, WINDOW_S, reserve=1),
        Route.EDIT: Budget(3, WINDOW_S, reserve=1),
        Route.DELETE: Budget(5, WINDOW_S),
        Route.REACT: Budget(1, WINDOW_S),
        Route.PRIVATE: Budget(5, WINDOW_S),
    }
    scheduler = ChannelWrites(budgets, Budget(50, 1.0))
    scheduler.start()
    yield scheduler
    await scheduler.close()


class Done(list[str]):
    """The writes made so far, in order; ``await done.reached(n)`` waits for the n-th."""

    def __init__(self) -> None:
        super().__init__()
        self.grew = asyncio.Condition()

    async def add(self, name: str) -> None:
        async with self.grew:
            self.append(name)
            self.grew.notify_all()

    async def reached(self, count: int) -> None:
        async with asyncio.timeout(10), self.grew:
            await self.grew.wait_for(lambda: len(self) >= count)


def recorder(done: Done, name: str) -> Callable[[], Awaitable[str]]:
    async def write() -> str:
        await done.add(name)
        return name

    return write


async def test_a_clip_goes_before_updates_asked_for_earlier(writes: ChannelWrites) -> None:
    done = Done()
    # Fill the window so everything below has to wait its turn.
    for index in range(3):
        await writes.run(CHANNEL, Route.SEND, Priority.CLIP, recorder(Done(), f"filler {index}"))
    for index in range(4):
        writes.offer(
            CHANNEL, Route.SEND, Priority.NEW_STATUS, ("status", index), recorder(done, f"s{index}")
        )
    await writes.run(CHANNEL, Route.SEND, Priority.CLIP, recorder(done, "clip"))
    await done.reached(5)
    assert done[0] == "clip"
    assert done[1:] == ["s0", "s1", "s2", "s3"]


async def test_no_more_writes_in_a_window_than_the_budget(writes: ChannelWrites) -> None:
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def send() -> None:
        times.append(loop.time())

    await asyncio.gather(*(writes.run(CHANNEL, Route.SEND, Priority.CLIP, send) for _ in range(9)))
    for index in range(3, len(times)):
        assert times[index] - times[index - 3] >= WINDOW_S


async def test_updates_merge_and_the_latest_wins(writes: ChannelWrites) -> None:
    done = Done()
    for index in range(3):
        await writes.run(CHANNEL, Route.EDIT, Priority.CLIP, recorder(Done(), f"filler {index}"))
    for text in ("10%", "20%", "30%"):
        writes.offer(CHANNEL, Route.EDIT, Priority.UPDATE, ("status", 1), recorder(done, text))
    await done.reached(1)
    await writes.run(CHANNEL, Route.EDIT, Priority.UPDATE, recorder(done, "after"))
    assert done == ["30%", "after"]


async def test_updates_leave_the_reserve_to_clips(writes: ChannelWrites) -> None:
    done = Done()
    for index in range(5):
        writes.offer(
            CHANNEL, Route.SEND, Priority.UPDATE, ("status", index), recorder(done, f"s{index}")
        )
    await done.reached(2)
    # Two of three slots went to updates; the third is there at once for a clip.
    await writes.run(CHANNEL, Route.SEND, Priority.CLIP, recorder(done, "clip"))
    assert done == ["s0", "s1", "clip"]


async def test_a_write_refused_with_a_429_is_made_again(writes: ChannelWrites) -> None:
    attempts: list[int] = []

    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise discord.RateLimited(WINDOW_S / 3)
        return "posted"

    assert await writes.run(CHANNEL, Route.SEND, Priority.CLIP, flaky) == "posted"
    assert len(attempts) == 3


async def test_a_write_that_sent_nothing_gives_its_slot_back(writes: ChannelWrites) -> None:
    done = Done()

    async def nothing() -> object:
        return NOT_SENT

    for _ in range(5):
        await writes.run(CHANNEL, Route.SEND, Priority.CLIP, nothing)
    await writes.run(CHANNEL, Route.SEND, Priority.CLIP, recorder(done, "clip"))
    assert done == ["clip"]
    assert len(writes.bucket((CHANNEL, Route.SEND)).granted) == 1


async def test_channels_do_not_share_a_budget(writes: ChannelWrites) -> None:
    done = Done()
    for index in range(3):
        await writes.run(CHANNEL, Route.SEND, Priority.CLIP, recorder(Done(), f"filler {index}"))
    await writes.run(CHANNEL + 1, Route.SEND, Priority.NEW_STATUS, recorder(done, "elsewhere"))
    assert done == ["elsewhere"]


async def test_all_channels_together_keep_to_the_global_limit() -> None:
    budgets = {route: Budget(5, WINDOW_S) for route in Route}
    scheduler = ChannelWrites(budgets, Budget(4, WINDOW_S))
    scheduler.start()
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def send() -> None:
        times.append(loop.time())

    try:
        await asyncio.gather(
            *(
                scheduler.run(channel, Route.SEND, Priority.CLIP, send)
                for channel in range(6)
                for _ in range(2)
            )
        )
    finally:
        await scheduler.close()
    for index in range(4, len(times)):
        assert times[index] - times[index - 4] >= WINDOW_S
