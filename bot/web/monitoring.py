"""/healthz (JSON; 503 when something is wrong) and /metrics (Prometheus' text format)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.web.app import CONTEXT

NO_STORE = {"Cache-Control": "no-store"}


async def healthz(request: web.Request) -> web.Response:
    health = await request.app[CONTEXT].health.check()
    return web.json_response(health.as_dict(), status=200 if health.ok else 503, headers=NO_STORE)


async def metrics(request: web.Request) -> web.Response:
    body = await request.app[CONTEXT].metrics.exposition()
    response = web.Response(body=body, headers=NO_STORE)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
