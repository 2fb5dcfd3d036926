"""One write budget per channel: Discord's rate-limit buckets kept on the bot's side, spent
by priority.

Discord limits each channel's writes per route (commonly 5 new messages and 5 edits per 5 s,
one reaction per 0.25 s) and a bot's requests to 50 a second in all. discord.py waits out a
full bucket by itself, first come first served, so a finished clip asked for after a row of
status edits waits behind them. Here every write the bot makes to a channel asks this
scheduler first. It keeps a bucket per channel and route that is stricter than Discord's (at
most ``limit`` requests in any ``window_s``, each counted until ``window_s`` after its answer
came back, so no clock skew or network delay can put two windows' worth into one of
Discord's) and grants the most important waiting write: a finished clip, then final statuses,
then new status messages, then updates. Updates are keyed: a newer one replaces one still
waiting (the latest wins), and they never take a bucket's last ``reserve`` slots, which stay
free for clips. Reactions have a bucket of their own but still wait while a clip for their
channel waits or uploads: a row of clips finishing together shows up before any of their
reactions. In a channel whose clips never stop coming, reactions wait until the row ends; the
buttons under each clip do the same as the reactions meanwhile.

Nothing waits on a bucket inside discord.py unless Discord disagrees with these numbers: the
scheduler also looks at discord.py's own view of a bucket (from Discord's ``X-RateLimit-*``
headers) and holds back while discord.py knows it is empty. A write that still meets a 429
(discord.py retried it and gave up, or the wait was longer than ``max_ratelimit_timeout``) is
held for the time Discord asked and queued again in its old place; it is never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, Final, TypeVar

import discord

log = logging.getLogger(__name__)

T = TypeVar("T")

NOT_SENT: Final = object()
"""What an action returns when it decided not to make its request: its slot is given back."""

HOLD_AFTER_REFUSAL_S = 1.0
"""How long a bucket rests after a 429 that said nothing of how long to wait."""

CLOCK_MARGIN_S = 0.05
"""Added to every window: a request reaches Discord a little after it was granted here."""


class Route(StrEnum):
    """The kinds of writes Discord limits separately, each with its own bucket per lane."""

    SEND = "send"  # POST /channels/{channel}/messages
    EDIT = "edit"  # PATCH /channels/{channel}/messages/{message}
    DELETE = "delete"  # DELETE /channels/{channel}/messages/{message}
    REACT = "react"  # PUT /channels/{channel}/messages/{message}/reactions/{emoji}/@me
    PRIVATE = "private"  # PATCH /webhooks/{app}/{token}/messages/@original: the token's bucket


class Priority(IntEnum):
    """Lower goes first."""

    CLIP = 0
    FINAL = 1
    NEW_STATUS = 2
    UPDATE = 3


AFTER_CLIPS: Final = frozenset({Route.REACT})
"""Routes whose writes in a channel wait until no clip for it is waiting or uploading."""


@dataclass(frozen=True)
class Budget:
    """At most ``limit`` requests in any ``window_s``; writes below FINAL priority leave
    ``reserve`` of them free."""

    limit: int
    window_s: float
    reserve: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.reserve < self.limit:
            raise ValueError(f"reserve {self.reserve} must be below the limit {self.limit}")


class WindowBucket:
    """A sliding window over the moments requests were granted."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.window_s = budget.window_s + CLOCK_MARGIN_S
        self.granted: deque[float] = deque()
        self.held_until = 0.0

    def ready_at(self, now: float, *, keep: int = 0) -> float:
        """When a request may start that leaves ``keep`` slots free."""
        while self.granted and self.granted[0] + self.window_s <= now:
            self.granted.popleft()
        short = len(self.granted) + keep + 1 - self.budget.limit
        start = max(now, self.held_until)
        if short <= 0:
            return start
        return max(start, self.granted[short - 1] + self.window_s)

    def take(self, now: float) -> float:
        self.granted.append(now)
        return now

    def give_back(self, granted_at: float) -> None:
        with contextlib.suppress(ValueError):
            self.granted.remove(granted_at)

    def hold(self, until: float) -> None:
        self.held_until = max(self.held_until, until)

    def idle(self, now: float) -> bool:
        return self.ready_at(now) == now and not self.granted


Lane = tuple[Hashable, Route]
"""A bucket's key: the channel (or interaction token) and the route."""

Hint = Callable[[Hashable, Route], float]
"""Seconds until discord.py's own bucket for a lane has room (0 when it has or is unknown)."""


def _future() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()


@dataclass(eq=False)
class Write:
    lane: Lane
    priority: Priority
    seq: int
    key: Hashable | None
    action: Callable[[], Awaitable[Any]]
    granted: asyncio.Future[None] = field(default_factory=_future)
    dropped: bool = False
    granted_at: float | None = None
    outcome: Any = None

    def sort_key(self) -> tuple[int, int]:
        return (self.priority, self.seq)


@dataclass
class LaneState:
    waiting: list[tuple[int, int, Write]] = field(default_factory=list)
    sent: int = 0
    newest_message_id: int | None = None


class ChannelWrites:
    """The scheduler: :meth:`run` a write that must happen, :meth:`offer` one that may be
    replaced or dropped. Start it with :meth:`start`, stop it with :meth:`close`."""

    def __init__(
        self,
        budgets: dict[Route, Budget],
        global_budget: Budget,
        *,
        hint: Hint | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budgets = budgets
        self.clock = clock
        self.hint = hint
        self.buckets: dict[Lane, WindowBucket] = {}
        self.everything = WindowBucket(global_budget)
        self.lanes: dict[Lane, LaneState] = {}
        self.by_key: dict[Hashable, Write] = {}
        self.clips_pending: Counter[Hashable] = Counter()
        """Per channel, clips asked for and not yet written."""
        self.seq = itertools.count()
        self.wake = asyncio.Event()
        self.offers: set[asyncio.Task[None]] = set()
        self.dispatcher: asyncio.Task[None] | None = None
        self.closed = False

    def start(self) -> None:
        if self.dispatcher is None:
            self.dispatcher = asyncio.create_task(self.dispatch(), name="channel-writes")

    async def close(self) -> None:
        """Stop granting; writes still waiting (or asked for from now on) are cancelled, ones
        in flight finish."""
        self.closed = True
        if self.dispatcher is not None:
            self.dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.dispatcher
        for lane in self.lanes.values():
            for _, _, write in lane.waiting:
                write.granted.cancel()
            lane.waiting.clear()
        self.by_key.clear()
        if self.offers:
            await asyncio.wait(set(self.offers))

    # --- asking for writes ---

    async def run(
        self,
        lane_id: Hashable,
        route: Route,
        priority: Priority,
        action: Callable[[], Awaitable[T]],
    ) -> T:
        """Wait for the lane's turn, make the write and return its result.

        A 429 holds the lane for the time Discord asked and queues the write again in its
        old place; any other error is the caller's.
        """
        seq = next(self.seq)
        if priority is Priority.CLIP:
            self.clips_pending[lane_id] += 1
        try:
            while True:
                write = self.enqueue((lane_id, route), priority, action, key=None, seq=seq)
                try:
                    await write.granted
                except asyncio.CancelledError:
                    self.forget(write)
                    raise
                if await self.perform(write):
                    return write.outcome
        finally:
            if priority is Priority.CLIP:
                self.clips_pending[lane_id] -= 1
                if not self.clips_pending[lane_id]:
                    del self.clips_pending[lane_id]
                self.wake.set()  # writes that wait for the channel's clips may go

    def offer(
        self,
        lane_id: Hashable,
        route: Route,
        priority: Priority,
        key: Hashable,
        action: Callable[[], Awaitable[object]],
    ) -> None:
        """Make the write when the lane has room; replaces a waiting write with the same key.

        ``action`` handles its own errors; a 429 puts it back in line unless a newer write
        with the same key is waiting.
        """
        waiting = self.by_key.get(key)
        if waiting is not None and waiting.lane == (lane_id, route):
            waiting.action = action
            if priority < waiting.priority:
                self.forget(waiting)
                self.enqueue(waiting.lane, priority, action, key=key, seq=waiting.seq)
            return
        if waiting is not None:
            self.drop(key)
        self.enqueue((lane_id, route), priority, action, key=key, seq=next(self.seq))

    def drop(self, key: Hashable) -> None:
        """Forget a waiting write (one already started is not stopped)."""
        write = self.by_key.pop(key, None)
        if write is not None:
            self.forget(write)

    def waiting(self, lane_id: Hashable, route: Route, *, up_to: Priority) -> bool:
        """Whether a write of priority ``up_to`` or better waits in the lane."""
        lane = self.lanes.get((lane_id, route))
        return lane is not None and any(
            not write.dropped and write.priority <= up_to for _, _, write in lane.waiting
        )

    # --- what the channel looks like from here ---

    def sent(self, channel_id: int, message_id: int) -> None:
        """Note a message the bot posted in ``channel_id``."""
        lane = self.lanes.setdefault((channel_id, Route.SEND), LaneState())
        lane.sent += 1
        lane.newest_message_id = max(lane.newest_message_id or 0, message_id)

    def sent_count(self, channel_id: int) -> int:
        """How many messages the bot has posted in ``channel_id`` since it started."""
        lane = self.lanes.get((channel_id, Route.SEND))
        return lane.sent if lane is not None else 0

    def newest_message(self, channel_id: int) -> int | None:
        """The newest message the bot posted in ``channel_id`` since it started."""
        lane = self.lanes.get((channel_id, Route.SEND))
        return lane.newest_message_id if lane is not None else None

    # --- the machinery ---

    def enqueue(
        self,
        lane_key: Lane,
        priority: Priority,
        action: Callable[[], Awaitable[Any]],
        *,
        key: Hashable | None,
        seq: int,
    ) -> Write:
        write = Write(lane_key, priority, seq, key, action)
        if self.closed:
            write.granted.cancel()
            return write
        lane = self.lanes.setdefault(lane_key, LaneState())
        heapq.heappush(lane.waiting, (priority, seq, write))
        if key is not None:
            self.by_key[key] = write
        self.wake.set()
        return write

    def forget(self, write: Write) -> None:
        write.dropped = True
        if write.key is not None and self.by_key.get(write.key) is write:
            del self.by_key[write.key]
        if write.granted_at is not None:
            self.give_back(write)

    def give_back(self, write: Write) -> None:
        """A granted write that made no request: its slot is free again."""
        if write.granted_at is None:
            return
        self.bucket(write.lane).give_back(write.granted_at)
        if write.lane[1] is not Route.PRIVATE:
            self.everything.give_back(write.granted_at)
        write.granted_at = None
        self.wake.set()

    def bucket(self, lane_key: Lane) -> WindowBucket:
        bucket = self.buckets.get(lane_key)
        if bucket is None:
            bucket = self.buckets[lane_key] = WindowBucket(self.budgets[lane_key[1]])
        return bucket

    async def dispatch(self) -> None:
        while True:
            self.wake.clear()
            delay = self.grant_ready()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self.wake.wait()

    def grant_ready(self) -> float | None:
        """Grant every write that may go now, best first; seconds until the next may."""
        now = self.clock()
        next_at = math.inf
        granted = True
        while granted:
            granted = False
            for write in sorted(self.heads(), key=Write.sort_key):
                at = self.ready_at(write, now)
                if at > now:
                    next_at = min(next_at, at)
                    continue
                self.grant(write, now)
                granted = True
        self.forget_idle_buckets(now)
        return None if math.isinf(next_at) else max(0.0, next_at - now)

    def heads(self) -> list[Write]:
        heads = []
        for lane_key, lane in list(self.lanes.items()):
            # A write is dropped when replaced, its future cancelled when its caller gave up.
            while lane.waiting and (
                lane.waiting[0][2].dropped or lane.waiting[0][2].granted.done()
            ):
                heapq.heappop(lane.waiting)
            if lane.waiting:
                heads.append(lane.waiting[0][2])
            elif lane_key[1] is not Route.SEND:
                del self.lanes[lane_key]  # send lanes also remember what the channel shows
        return heads

    def ready_at(self, write: Write, now: float) -> float:
        """When ``write`` may go; infinity while it waits for its channel's clips (their end
        wakes the dispatcher)."""
        lane_id, route = write.lane
        if route in AFTER_CLIPS and self.clips_pending[lane_id]:
            return math.inf
        keep = self.budgets[route].reserve if write.priority > Priority.FINAL else 0
        at = self.bucket(write.lane).ready_at(now, keep=keep)
        if route is not Route.PRIVATE:
            # Interaction webhooks are not counted against the global limit; the rest is.
            at = max(at, self.everything.ready_at(now))
        if self.hint is not None and at <= now:
            at = max(at, now + self.hint(*write.lane))
        return at

    def grant(self, write: Write, now: float) -> None:
        heapq.heappop(self.lanes[write.lane].waiting)
        if write.key is not None and self.by_key.get(write.key) is write:
            del self.by_key[write.key]
        write.granted_at = self.bucket(write.lane).take(now)
        if write.lane[1] is not Route.PRIVATE:
            self.everything.take(now)
        write.granted.set_result(None)
        if write.key is not None:
            task = asyncio.create_task(self.perform_offer(write), name=f"write-{write.key}")
            self.offers.add(task)
            task.add_done_callback(self.offers.discard)

    def forget_idle_buckets(self, now: float) -> None:
        idle = [
            lane_key
            for lane_key, bucket in self.buckets.items()
            if bucket.idle(now) and not self.waiting_in(lane_key)
        ]
        for lane_key in idle:
            del self.buckets[lane_key]

    def waiting_in(self, lane_key: Lane) -> bool:
        lane = self.lanes.get(lane_key)
        return lane is not None and bool(lane.waiting)

    async def perform(self, write: Write) -> bool:
        """Make a granted write; False if Discord refused it with a 429 (the lane is held)."""
        try:
            outcome = await write.action()
        except discord.RateLimited as exc:
            self.refused(write, exc.retry_after)
            return False
        except discord.HTTPException as exc:
            if exc.status != 429:
                raise
            self.refused(write, HOLD_AFTER_REFUSAL_S)
            return False
        if outcome is NOT_SENT:
            self.give_back(write)
        write.outcome = outcome
        return True

    def refused(self, write: Write, retry_after: float) -> None:
        log.warning(
            "Discord refused a %s write in %s (429); holding it %.1f s",
            write.lane[1],
            write.lane[0],
            retry_after,
        )
        self.bucket(write.lane).hold(self.clock() + retry_after)
        self.wake.set()

    async def perform_offer(self, write: Write) -> None:
        try:
            performed = await self.perform(write)
        except Exception:
            log.exception("a %s write in %s failed", write.lane[1], write.lane[0])
            return
        if not performed and write.key is not None and write.key not in self.by_key:
            self.enqueue(write.lane, write.priority, write.action, key=write.key, seq=write.seq)


DISCORD_ROUTES: Final = {
    Route.SEND: ("POST", "/channels/{channel_id}/messages"),
    Route.EDIT: ("PATCH", "/channels/{channel_id}/messages/{message_id}"),
    Route.DELETE: ("DELETE", "/channels/{channel_id}/messages/{message_id}"),
    Route.REACT: ("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me"),
}


def discord_py_wait(http: discord.http.HTTPClient) -> Hint:
    """How long discord.py's own bucket for a lane stays empty, from Discord's headers.

    discord.py keeps these in private attributes; if they ever move, this says 0 and the
    scheduler's own buckets are all there is.
    """

    def wait(lane_id: Hashable, route: Route) -> float:
        if route not in DISCORD_ROUTES or not isinstance(lane_id, int):
            return 0.0
        method, path = DISCORD_ROUTES[route]
        bucket_route = discord.http.Route(method, path, channel_id=lane_id, message_id=0, emoji="x")
        bucket_hash = getattr(http, "_bucket_hashes", {}).get(bucket_route.key, bucket_route.key)
        bucket = getattr(http, "_buckets", {}).get(f"{bucket_hash}:{bucket_route.major_parameters}")
        remaining = getattr(bucket, "remaining", 1)
        expires = getattr(bucket, "expires", None)
        if remaining > 0 or expires is None:
            return 0.0
        return max(0.0, float(expires) - asyncio.get_running_loop().time())

    return wait
