"""The shape in which each feature module hands its REST routes to the server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# (method, path below /api/v10, handler)
RouteSpec = tuple[str, str, Handler]
