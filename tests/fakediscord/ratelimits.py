"""Discord's rate limits, emulated: per-route buckets keyed by their major parameter, the
global limit, Discord's `X-RateLimit-*` headers and 429 answers, and a log of what was served
and what was refused (for tests and benchmarks).

Windows are fixed and start with the first request after the previous one ran out, as
Discord's `X-RateLimit-Reset-After` shows. Time is the fake's clock (the event loop's
monotonic clock plus whatever a test advanced), so moving the clock also refills buckets.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from tests.fakediscord.state import Channel, Clock

Scope = Literal["user", "global", "shared"]
RATE_LIMITED_MESSAGE = "You are being rate limited."
# discord.py treats a 429 without `Via` as a Cloudflare ban and raises instead of retrying.
VIA = "1.1 google"


@dataclass(frozen=True)
class Window:
    """`limit` requests per `per` seconds."""

    limit: int
    per: float


@dataclass(frozen=True)
class RateLimitProfile:
    """Bucket sizes per route group; None leaves that group unlimited.

    Groups: `send` (POST channel messages), `edit` (PATCH), `delete` (DELETE), `reaction`
    (every reaction write on a channel's messages), `typing`, `read` (GETs below a channel),
    each keyed by channel id; `webhook` (interaction follow-ups, `@original` and follow-up
    GET/PATCH/DELETE) keyed by the interaction token; `global_requests`: every request
    authenticated as the bot (interaction callbacks and token webhooks are exempt, as on
    Discord).
    """

    name: str
    send: Window | None = None
    edit: Window | None = None
    delete: Window | None = None
    reaction: Window | None = None
    typing: Window | None = None
    read: Window | None = None
    webhook: Window | None = None
    global_requests: Window | None = None

    def window(self, group: str) -> Window | None:
        value = getattr(self, group)
        assert value is None or isinstance(value, Window)
        return value

    @property
    def enabled(self) -> bool:
        return any(self.window(g) is not None for g in (*ROUTE_GROUPS, GLOBAL))

    def scaled(self, factor: float) -> RateLimitProfile:
        """The same limits with every window `factor` times as long (tests: 0.1 is 10x faster)."""
        changes: dict[str, object] = {"name": f"{self.name}x{factor:g}"}
        for group in (*ROUTE_GROUPS, GLOBAL):
            window = self.window(group)
            if window is not None:
                changes[group] = Window(window.limit, window.per * factor)
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def with_windows(self, **windows: Window | None) -> RateLimitProfile:
        """A copy with some groups changed, e.g. `REALISTIC.with_windows(send=Window(2, 1.0))`."""
        return dataclasses.replace(self, name=f"{self.name}*", **windows)


ROUTE_GROUPS = ("send", "edit", "delete", "reaction", "typing", "read", "webhook")
GLOBAL = "global_requests"

# The numbers commonly observed on Discord (see /work/shared/DISCORD.md); follow-ups and
# @original: 5 per 2 s per interaction (discord/discord-api-docs#2701).
REALISTIC = RateLimitProfile(
    name="realistic",
    send=Window(5, 5.0),
    edit=Window(5, 5.0),
    delete=Window(5, 1.0),
    reaction=Window(1, 0.25),
    typing=Window(5, 5.0),
    read=Window(50, 1.0),
    webhook=Window(5, 2.0),
    global_requests=Window(50, 1.0),
)
OFF = RateLimitProfile(name="off")
PROFILES: Mapping[str, RateLimitProfile] = {"realistic": REALISTIC, "off": OFF}

_CHANNEL = "/channels/{channel_id}"
_MESSAGE = _CHANNEL + "/messages/{message_id}"
_WEBHOOK = "/webhooks/{application_id}/{token}"
_CALLBACK = "/interactions/{interaction_id}/{token}/callback"


def route_group(method: str, route: str) -> str | None:
    """The bucket group of a route template (below /api/v10), None for global-only routes."""
    if route.startswith(_WEBHOOK):
        return "webhook"
    if not route.startswith(_CHANNEL):
        return None
    if route.startswith(_MESSAGE + "/reactions"):
        return "read" if method == "GET" else "reaction"
    if method == "GET":
        return "read"
    if route == _CHANNEL + "/messages" and method == "POST":
        return "send"
    if route == _MESSAGE:
        return {"PATCH": "edit", "DELETE": "delete"}.get(method)
    if route == _CHANNEL + "/typing":
        return "typing"
    return None


def bucket_hash(group: str) -> str:
    """An opaque, stable `X-RateLimit-Bucket` value per group, shaped like Discord's."""
    return hashlib.md5(f"fakediscord:{group}".encode()).hexdigest()


@dataclass(frozen=True)
class LimitRecord:
    """One API request as the limiter saw it."""

    at: float  # the fake's clock
    route: str  # "POST /channels/{channel_id}/messages"
    group: str | None  # bucket group, None for global-only routes
    channel_id: int | None  # for routes below /channels/{channel_id}
    token: str | None  # the interaction token of webhook routes
    refused: Scope | None  # None when served
    retry_after: float = 0.0


@dataclass
class RouteCounts:
    served: int = 0
    limited: int = 0  # 429s of any scope
    limited_global: int = 0

    def add(self, record: LimitRecord) -> None:
        if record.refused is None:
            self.served += 1
        else:
            self.limited += 1
            self.limited_global += record.refused == "global"


@dataclass
class RateLimitStats:
    """Requests served and refused, per route template and per channel and route."""

    records: list[LimitRecord]
    routes: dict[str, RouteCounts] = field(default_factory=dict)
    channels: dict[int, dict[str, RouteCounts]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for record in self.records:
            self.routes.setdefault(record.route, RouteCounts()).add(record)
            if record.channel_id is not None:
                per_route = self.channels.setdefault(record.channel_id, {})
                per_route.setdefault(record.route, RouteCounts()).add(record)

    @property
    def served(self) -> int:
        return sum(c.served for c in self.routes.values())

    @property
    def limited(self) -> int:
        return sum(c.limited for c in self.routes.values())

    def summary(self) -> str:
        """One line per route: requests served and 429s, busiest first."""
        rows = sorted(self.routes.items(), key=lambda item: -(item[1].served + item[1].limited))
        width = max((len(route) for route, _ in rows), default=0)
        return "\n".join(
            f"{route:<{width}}  {c.served:>6} served  {c.limited:>5} x 429"
            + (f" ({c.limited_global} global)" if c.limited_global else "")
            for route, c in rows
        )


@dataclass
class _Bucket:
    group: str
    window: Window
    started: float = -math.inf
    used: int = 0

    def roll(self, now: float) -> None:
        if now >= self.started + self.window.per:
            self.started, self.used = now, 0

    def reset_after(self, now: float) -> float:
        return _ceil_ms(self.started + self.window.per - now)

    @property
    def remaining(self) -> int:
        return self.window.limit - self.used


class Verdict:
    """The limiter's answer for one request: refuse it (429) or serve it and stamp headers."""

    def __init__(self, headers: dict[str, str], refusal: web.Response | None = None) -> None:
        self.headers = headers
        self.refusal = refusal

    def stamp(self, response: web.StreamResponse) -> None:
        if not response.prepared:
            response.headers.update(self.headers)


class RateLimiter:
    """Buckets per (group, major parameter) plus the global bucket; switchable at any time."""

    def __init__(self, clock: Clock, profile: RateLimitProfile = REALISTIC) -> None:
        self.clock = clock
        self._profile = profile
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self.records: list[LimitRecord] = []

    @property
    def profile(self) -> RateLimitProfile:
        return self._profile

    @profile.setter
    def profile(self, profile: RateLimitProfile) -> None:
        """Switch limits; every bucket starts full again."""
        self._profile = profile
        self._buckets.clear()

    @property
    def enabled(self) -> bool:
        return self._profile.enabled

    def stats(self, since: float | None = None) -> RateLimitStats:
        """Counts per route template and per channel (records at or after `since`, if given)."""
        chosen = [r for r in self.records if since is None or r.at >= since]
        return RateLimitStats(chosen)

    def exhaust(
        self,
        group: str,
        *,
        channel: Channel | int | None = None,
        token: str | None = None,
        for_s: float | None = None,
    ) -> None:
        """Spend a bucket as another process on the same bot token would: its next request
        gets a 429 until the window (or `for_s` seconds) has passed. `group` is a route group
        of the profile or "global_requests"."""
        major = _major_of(group, channel, token)
        bucket = self._bucket(group, major)
        if bucket is None:
            raise ValueError(f"{group} is not limited in profile {self._profile.name}")
        now = self.clock.now()
        span = bucket.window.per if for_s is None else for_s
        bucket.started, bucket.used = now + span - bucket.window.per, bucket.window.limit

    def admit(self, method: str, route: str, match: Mapping[str, str]) -> Verdict:
        """Decide on one request to `route` (a template below /api/v10), recording it."""
        if route.startswith("/interactions/"):
            # Callbacks answer within 3 s and are bound by neither route nor global limits.
            return Verdict({})
        group = route_group(method, route)
        channel_id = int(match["channel_id"]) if "channel_id" in match else None
        token = match.get("token") if group == "webhook" else None
        major = _major_of(group, channel_id, token) if group else ""
        now = self.clock.now()
        bucket = self._bucket(group, major) if group else None
        global_bucket = None if group == "webhook" else self._bucket(GLOBAL, "")
        for part in (bucket, global_bucket):
            if part is not None:
                part.roll(now)

        def record(refused: Scope | None, retry_after: float = 0.0) -> None:
            self.records.append(
                LimitRecord(
                    now, f"{method} {route}", group, channel_id, token, refused, retry_after
                )
            )

        if bucket is not None and bucket.remaining <= 0:
            retry_after = bucket.reset_after(now)
            record("user", retry_after)
            return Verdict({}, _refusal(retry_after, "user", _bucket_headers(bucket, now)))
        if global_bucket is not None and global_bucket.remaining <= 0:
            retry_after = global_bucket.reset_after(now)
            record("global", retry_after)
            return Verdict({}, _refusal(retry_after, "global", {"X-RateLimit-Global": "true"}))
        for part in (bucket, global_bucket):
            if part is not None:
                part.used += 1
        record(None)
        return Verdict({} if bucket is None else _bucket_headers(bucket, now))

    def _bucket(self, group: str, major: str) -> _Bucket | None:
        window = self._profile.window(group)
        if window is None:
            return None
        bucket = self._buckets.get((group, major))
        if bucket is None or bucket.window != window:
            bucket = self._buckets[(group, major)] = _Bucket(group, window)
        return bucket


def _major_of(group: str | None, channel: Channel | int | None, token: str | None) -> str:
    if group == GLOBAL:
        return ""
    if group == "webhook":
        if token is None:
            raise ValueError("the webhook group is keyed by an interaction token")
        return token
    if channel is None:
        raise ValueError(f"the {group} group is keyed by a channel")
    return str(channel.id if isinstance(channel, Channel) else channel)


def _bucket_headers(bucket: _Bucket, now: float) -> dict[str, str]:
    reset_after = bucket.reset_after(now)
    return {
        "X-RateLimit-Limit": str(bucket.window.limit),
        "X-RateLimit-Remaining": str(max(bucket.remaining, 0)),
        "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        "X-RateLimit-Bucket": bucket_hash(bucket.group),
    }


def _refusal(retry_after: float, scope: Scope, headers: dict[str, str]) -> web.Response:
    body = {
        "message": RATE_LIMITED_MESSAGE,
        "retry_after": retry_after,
        "global": scope == "global",
        "code": 0,
    }
    extra = {
        "Retry-After": str(math.ceil(retry_after)),
        "X-RateLimit-Scope": scope,
        "Via": VIA,
    }
    return web.Response(
        body=json.dumps(body).encode(),
        status=429,
        content_type="application/json",
        headers=headers | extra,
    )


def _ceil_ms(seconds: float) -> float:
    """Rounded up to the millisecond (as Discord sends it), never below 1 ms: a client that
    sleeps exactly this long finds the window reset."""
    return max(math.ceil(seconds * 1000) / 1000, 0.001)
