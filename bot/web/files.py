"""A shown clip's video and poster, and nothing else from the disk.

A file is named by its job number alone (the route accepts digits only) and found through
:mod:`jobqueue.clipfiles`; the path must still lie inside the clips folder once symbolic
links are resolved. A deleted clip's files answer 410 even while they are still on disk.
Range requests are answered, so browsers can seek.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from bot.web.app import CONTEXT, http_error, shown_job
from jobqueue.clipfiles import clip_path, poster_path

CACHE_SECONDS = 300
"""Short: a clip deleted in Discord should soon leave browsers' caches too."""


async def video(request: web.Request) -> web.StreamResponse:
    return await _serve(request, clip_path)


async def poster(request: web.Request) -> web.StreamResponse:
    return await _serve(request, poster_path)


async def _serve(request: web.Request, name: Callable[[Path, int], Path]) -> web.StreamResponse:
    clips_dir = request.app[CONTEXT].clips_dir
    job = await shown_job(request)
    path = await asyncio.to_thread(_inside, clips_dir, name(clips_dir, job.id))
    if path is None:
        raise http_error(request, web.HTTPNotFound, "Not found", "The clip's file is missing.")
    return web.FileResponse(path, headers={"Cache-Control": f"public, max-age={CACHE_SECONDS}"})


def _inside(folder: Path, path: Path) -> Path | None:
    """``path`` resolved, if it is a file inside ``folder``; None otherwise."""
    resolved = path.resolve()
    if not resolved.is_relative_to(folder.resolve()) or not resolved.is_file():
        return None
    return resolved
