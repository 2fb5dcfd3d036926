"""What the web gallery may show, and the queries behind its pages.

Nothing is public until a server's admins say so: a clip is shown only when its channel is
marked public (``/admin gallery allow``, :class:`GalleryChannels`), it is done, it was not
deleted in Discord, and the output safety check did not hold it back
(:func:`jobqueue.safety.may_show` has the last word on every job shown). A deleted clip's page
answers "gone"; its files are not served.

The gallery shows finished clips, not working material (:data:`WORKING_MATERIAL`). A
storyboard's shots are parts of its film, not clips anyone posted: the gallery shows the film,
never a shot. A grid of drafts (drafts first is the default) is what its user chose a clip
from: the clip rendered from a draft is shown, and its page says which draft of which grid it
came from (:attr:`ClipFamily.draft`); the grid is not. Neither is listed, searchable nor
reachable by a direct link: its page and files answer 404 (not 410 when deleted), as for a
clip of a private channel, so no address leaks what was never meant to be public.

A film is posted into a thread started from the storyboard's plan, and admins mark text
channels public, not threads: the gallery files a film under the channel its storyboard was
planned in (the thread's parent), there and in the job it hands the pages.

Search matches whole words of the prompt and of the rewritten scene, and the start of the
last word typed ("surf" finds "surfing"), through the ``gallery_search`` full-text index.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from typing import Any

import sqlite_utils

from jobqueue.db import Database
from jobqueue.models import Job, JobKind
from jobqueue.moderation import AuditAction, Moderation
from jobqueue.moderation.models import AuditNote
from jobqueue.safety import HeldState, may_show
from jobqueue.sql import IS_DONE
from jobqueue.store import rows

SEARCH_WORDS = 8
"""Words of a search used; the rest are ignored."""
_WORD = re.compile(r"\w+")

_FILED_UNDER = (
    "COALESCE((SELECT b.channel_id FROM storyboard_films AS f"
    " JOIN storyboards AS b ON b.id = f.storyboard_id WHERE f.job_id = jobs.id),"
    " jobs.channel_id)"
)
"""The channel the gallery files a job under: its own, or for a film its storyboard's."""
WORKING_MATERIAL = frozenset({JobKind.SHOT, *(kind for kind in JobKind if kind.makes_drafts)})
"""Kinds of job whose results are steps towards a clip, never shown by the gallery."""
_KINDS_NOT_SHOWN = ", ".join(f"'{kind.value}'" for kind in sorted(WORKING_MATERIAL))
_IN_PUBLIC_CHANNEL = (
    f"(jobs.kind NOT IN ({_KINDS_NOT_SHOWN}) AND EXISTS (SELECT 1 FROM gallery_channels AS g"
    f" WHERE g.guild_id = jobs.guild_id AND g.channel_id = {_FILED_UNDER} AND g.public = 1))"
)
_NOT_HELD = f"(safety_hold = 0 OR safety_state = '{HeldState.RELEASED.value}')"
_SHOWN = (
    f"{IS_DONE} AND result_path IS NOT NULL AND deleted_at IS NULL AND {_NOT_HELD}"
    f" AND {_IN_PUBLIC_CHANNEL}"
)
"""A job the gallery shows (the SQL side of :func:`~jobqueue.safety.may_show`, plus public
channels and deletions)."""
_DELETED = f"(deleted_at IS NOT NULL OR safety_state = '{HeldState.DELETED.value}')"


@dataclass(frozen=True)
class GalleryChannel:
    """A channel whose clips are public, with the names shown in the gallery's filters."""

    guild_id: int
    channel_id: int
    guild_name: str
    channel_name: str


@dataclass(frozen=True)
class GalleryQuery:
    """One page of the gallery: newest first, narrowed by words, a server or a channel."""

    words: str = ""
    guild_id: int | None = None
    channel_id: int | None = None
    page: int = 1
    per_page: int = 24


@dataclass(frozen=True)
class GalleryPage:
    clips: list[Job]
    page: int
    has_next: bool


@dataclass(frozen=True)
class ClipLookup:
    """A clip's page: ``job`` when it is shown; ``gone`` when a shown clip was deleted."""

    job: Job | None
    gone: bool = False


@dataclass(frozen=True)
class ClipFamily:
    """A clip's parent (it was retried, remixed or extended from) and children, if shown."""

    parent: Job | None
    children: list[Job]
    draft: DraftOrigin | None = None
    """For a clip rendered from a draft: which one (its grid is not shown, so no ``parent``)."""


@dataclass(frozen=True)
class DraftOrigin:
    """Draft ``number`` of the grid of drafts job ``grid_id``."""

    grid_id: int
    number: int


def search_expression(words: str) -> str | None:
    """An FTS5 query matching every word of ``words`` (the last also as a prefix); None
    when there is no word. Each word is quoted, so nothing a user types is FTS syntax."""
    found = _WORD.findall(words.lower())[:SEARCH_WORDS]
    if not found:
        return None
    quoted = [f'"{word}"' for word in found]
    quoted[-1] += "*"
    return " ".join(quoted)


class Gallery:
    """Reads for the gallery's pages, and the record of clips deleted in Discord."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def public_channels(self) -> list[GalleryChannel]:
        """Every public channel, by server name then channel name."""
        return await self.db.read(_public_channels)

    async def page(self, query: GalleryQuery) -> GalleryPage:
        return await self.db.read(lambda db: _page(db, query))

    async def lookup(self, job_id: int) -> ClipLookup:
        """The clip ``job_id`` if the gallery shows it; ``gone`` if it would but was deleted."""
        return await self.db.read(lambda db: _lookup(db, job_id))

    async def family(self, job: Job) -> ClipFamily:
        return await self.db.read(lambda db: _family(db, job))

    async def mark_deleted(self, job_id: int) -> None:
        """Record that the clip was deleted in Discord: the gallery no longer shows it."""
        await self.db.write(
            lambda db: db.execute(
                "UPDATE jobs SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL",
                [time.time(), job_id],
            )
        )


def _public_channels(
    db: sqlite_utils.Database, guild_id: int | None = None
) -> list[GalleryChannel]:
    in_guild = "" if guild_id is None else " AND guild_id = ?"
    found = rows(
        db,
        "SELECT guild_id, channel_id, guild_name, channel_name FROM gallery_channels"
        f" WHERE public = 1{in_guild} ORDER BY guild_name, channel_name, channel_id",
        [] if guild_id is None else [guild_id],
    )
    return [GalleryChannel(**row) for row in found]


def _page(db: sqlite_utils.Database, query: GalleryQuery) -> GalleryPage:
    conditions: list[str] = [_SHOWN]
    params: list[Any] = []
    expression = search_expression(query.words)
    if expression is not None:
        conditions.append("id IN (SELECT rowid FROM gallery_search WHERE gallery_search MATCH ?)")
        params.append(expression)
    for column, value in (("guild_id", query.guild_id), (_FILED_UNDER, query.channel_id)):
        if value is not None:
            conditions.append(f"{column} = ?")
            params.append(value)
    page = max(1, query.page)
    params += [query.per_page + 1, (page - 1) * query.per_page]
    found = _filed_jobs(
        db,
        f"{' AND '.join(conditions)} ORDER BY finished_at DESC, id DESC LIMIT ? OFFSET ?",
        params,
    )
    shown = [job for job in found[: query.per_page] if may_show(job)]
    return GalleryPage(shown, page, has_next=len(found) > query.per_page)


def _lookup(db: sqlite_utils.Database, job_id: int) -> ClipLookup:
    found = rows(
        db,
        f"SELECT *, ({_SHOWN}) AS shown, {_DELETED} AS deleted,"
        f" {_IN_PUBLIC_CHANNEL} AS public, {_FILED_UNDER} AS filed_under FROM jobs WHERE id = ?",
        [job_id],
    )
    if not found:
        return ClipLookup(None)
    row = found[0]
    job = _as_filed(row)
    if row["shown"] and may_show(job):
        return ClipLookup(job)
    return ClipLookup(None, gone=bool(row["deleted"] and row["public"]))


def _family(db: sqlite_utils.Database, job: Job) -> ClipFamily:
    def shown(where: str, params: list[Any]) -> list[Job]:
        return [found for found in _filed_jobs(db, where, params) if may_show(found)]

    parent = None
    if job.parent_id is not None:
        parents = shown(f"id = ? AND {_SHOWN}", [job.parent_id])
        parent = parents[0] if parents else None
    children = shown(f"parent_id = ? AND {_SHOWN} ORDER BY id", [job.id])
    return ClipFamily(parent, children, draft=_draft_origin(job))


def _draft_origin(job: Job) -> DraftOrigin | None:
    if not job.kind.starts_from_draft or job.parent_id is None or job.request.draft is None:
        return None
    return DraftOrigin(job.parent_id, job.request.draft)


def _filed_jobs(db: sqlite_utils.Database, where: str, params: list[Any]) -> list[Job]:
    """Jobs ``WHERE where``, each as the gallery files it (see :func:`_as_filed`)."""
    found = rows(db, f"SELECT *, {_FILED_UNDER} AS filed_under FROM jobs WHERE {where}", params)
    return [_as_filed(row) for row in found]


def _as_filed(row: dict[str, Any]) -> Job:
    """The job of ``row`` in the channel the gallery files it under: a film in the channel
    its thread was started from, so that its page names that channel."""
    return replace(Job.from_row(row), channel_id=row["filed_under"])


class GalleryChannels:
    """Which channels' clips are public: changed by admins, audited like every moderation
    action (the mod-log channel hears of each)."""

    def __init__(self, moderation: Moderation) -> None:
        self.moderation = moderation

    async def set_public(
        self,
        guild_id: int,
        channel_id: int,
        public: bool,
        *,
        actor_id: int,
        guild_name: str,
        channel_name: str,
    ) -> None:
        """Show (``public``) or stop showing the channel's clips, past and future."""
        action = AuditAction.GALLERY_ALLOW if public else AuditAction.GALLERY_DENY
        note = AuditNote(actor_id, action, detail=f"channel {channel_id}")

        def change(db: sqlite_utils.Database, now: float) -> tuple[None, list[AuditNote]]:
            db.execute(
                "INSERT INTO gallery_channels"
                " (guild_id, channel_id, public, guild_name, channel_name, set_by, set_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id, channel_id) DO UPDATE SET"
                " public = excluded.public, guild_name = excluded.guild_name,"
                " channel_name = excluded.channel_name, set_by = excluded.set_by,"
                " set_at = excluded.set_at",
                [guild_id, channel_id, int(public), guild_name, channel_name, actor_id, now],
            )
            return None, [note]

        await self.moderation._write_audited(guild_id, change)

    async def public_in(self, guild_id: int) -> list[GalleryChannel]:
        """The server's public channels."""
        return await self.moderation.db.read(lambda db: _public_channels(db, guild_id))
