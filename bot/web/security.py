"""Safe by default: security headers on every answer, and search rate-limited per client.

The content security policy allows scripts, styles, pictures and video from this server only,
and no inline script at all, so even text that escaped escaping could not run. Pages cannot be
framed (except the bare player page that link previews embed).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
    " media-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors {frames}"
)
FRAMEABLE_ROUTES = frozenset({"player"})
"""Routes other sites may frame: the bare player page that link previews embed."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Add the content security policy and its companions to every answer, errors included."""
    try:
        response = await handler(request)
    except web.HTTPException as error:
        response = error
    frameable = request.match_info.route.name in FRAMEABLE_ROUTES
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.format(
        frames="*" if frameable else "'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if not frameable:
        response.headers["X-Frame-Options"] = "DENY"
    if isinstance(response, web.HTTPException):
        raise response
    return response


def client_key(request: web.Request) -> str:
    """Who is asking: the peer's address, or the client a reverse proxy on this host names.

    ``X-Forwarded-For`` is believed only from a proxy on the same machine (a loopback peer),
    and only its last address, the one that proxy added."""
    peer = request.remote or "unknown"
    forwarded = request.headers.get("X-Forwarded-For", "")
    if forwarded and _is_loopback(peer):
        return forwarded.split(",")[-1].strip() or peer
    return peer


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@dataclass
class _Bucket:
    tokens: float
    at: float


class SearchLimiter:
    """A token bucket per client: ``burst`` searches at once, then ``per_minute``."""

    MAX_CLIENTS = 10_000

    def __init__(
        self, *, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, client: str) -> float:
        """0 if ``client`` may search now; else the seconds until it may."""
        now = self.clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            self._forget_idle(now)
            bucket = self._buckets[client] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def _forget_idle(self, now: float) -> None:
        """Drop clients whose bucket has refilled, once there are many (memory stays bounded)."""
        if len(self._buckets) < self.MAX_CLIENTS:
            return
        refill = self.burst / self.rate
        self._buckets = {
            key: bucket for key, bucket in self._buckets.items() if now - bucket.at < refill
        }
