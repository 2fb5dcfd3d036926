"""Live previews of running jobs, as the bot shows them.

A worker keeps the latest preview of each job it is making (a small animated WebP of the
clip forming) at :func:`jobqueue.clipfiles.preview_path` on the bot's host; a remote worker's
previews come back through the broker's progress and the dispatcher writes them there. The
delivery cog looks at these files when it shows active jobs and puts a newer one in the next
edit of the job's status message (or, in a busy channel, of the requester's private reply),
so previews cost no write of their own: they ride the throttled progress edits, which merge
while the channel's budget is short and never go before a clip. The file is read when the edit
is made, so the preview shown is the newest there is. Only previews the worker's output safety
check let through are written there (:meth:`jobqueue.safety.ClipJudge.preview_screen`); when it
refuses one, the file is removed and the next edit takes the attachment down.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord

from jobqueue.clipfiles import preview_path

log = logging.getLogger(__name__)

PREVIEW_NAME = "preview.webp"


@dataclass(frozen=True)
class Preview:
    """The latest preview of a running job: its file and when it was written (ns)."""

    path: Path
    version: int


def latest_previews(clips_dir: Path, job_ids: Iterable[int]) -> dict[int, Preview]:
    """The previews the jobs ``job_ids`` have on disk (blocking: run it in a thread)."""
    found = {}
    for job_id in job_ids:
        path = preview_path(clips_dir, job_id)
        try:
            found[job_id] = Preview(path, path.stat().st_mtime_ns)
        except FileNotFoundError:
            continue
    return found


async def preview_file(preview: Preview) -> tuple[discord.File, int] | None:
    """The preview as it is now, as an attachment, and its version; None when it is gone
    (the job has just ended)."""
    try:
        data, version = await asyncio.to_thread(_read, preview.path)
    except FileNotFoundError:
        return None
    return discord.File(io.BytesIO(data), filename=PREVIEW_NAME), version


def _read(path: Path) -> tuple[bytes, int]:
    # The version of the very file read: the worker replaces it whole, never in place.
    with path.open("rb") as file:
        return file.read(), os.fstat(file.fileno()).st_mtime_ns


def version(preview: Preview | None) -> int | None:
    return None if preview is None else preview.version


async def attachments_for(
    preview: Preview | None, shown: int | None
) -> tuple[dict[str, Any], int | None]:
    """What an edit showing ``preview`` changes of a message showing preview version
    ``shown`` (nothing, the new preview, or no attachment: pass it as ``**``), and the
    version the message shows then."""
    if version(preview) == shown:
        return {}, shown
    if preview is None:
        return {"attachments": []}, None
    found = await preview_file(preview)
    if found is None:
        return {}, shown
    file, read_version = found
    return {"attachments": [file]}, read_version
