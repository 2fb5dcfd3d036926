"""The gallery and the clip pages.

What users wrote (prompts, scenes, server and channel names) reaches the templates as plain
text, and jinja2 escapes it: a prompt full of HTML is shown as the characters typed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from aiohttp import web

from bot.render import KIND_NAMES, size_words, taken_words
from bot.web.app import CONTEXT, WebContext, http_error, render, shown_job
from bot.web.security import client_key
from jobqueue.clipfiles import clip_path
from jobqueue.gallery import DraftOrigin, GalleryChannel, GalleryQuery
from jobqueue.models import Job
from pipeline.provenance import ProvenanceReport, SigningIdentity, verify_clip

SEARCH_LENGTH = 200
LAST_PAGE = 10_000
TOO_MANY_SEARCHES = "Too many searches at once; wait a few seconds and search again."


@dataclass(frozen=True)
class ClipView:
    """A clip as pages show it; every text is the user's own, unescaped."""

    id: int
    title: str
    prompt: str
    negative: str
    scene: str | None
    seed: str
    model: str
    size: str
    made: str
    made_iso: str
    taken: str
    where: str | None
    width: int
    height: int
    command: str
    page_path: str
    video_path: str
    poster_path: str
    page_url: str
    player_url: str
    video_url: str
    poster_url: str


@dataclass(frozen=True)
class ServerView:
    guild_id: int
    name: str
    channels: list[GalleryChannel]


def clip_view(
    job: Job, context: WebContext, base_url: str, channels: dict[tuple[int, int], GalleryChannel]
) -> ClipView:
    root = context.root
    page = f"/clips/{job.id}"
    made_at = dt.datetime.fromtimestamp(job.finished_at or job.created_at, tz=dt.UTC)
    prompt = job.request.prompt
    scene = job.rewritten_prompt if job.rewritten_prompt != prompt else None
    channel = channels.get((job.guild_id or 0, job.channel_id or 0))
    return ClipView(
        id=job.id,
        title=f"{KIND_NAMES[job.kind].capitalize()} #{job.id}",
        prompt=prompt,
        negative=job.request.negative_prompt,
        scene=scene,
        seed=str(job.seed) if job.seed is not None else "unknown",
        model=job.model or "unknown",
        size=size_words(job),
        made=made_at.strftime("%Y-%m-%d %H:%M UTC"),
        made_iso=made_at.isoformat(timespec="seconds"),
        taken=taken_words(job),
        where=f"#{channel.channel_name} on {channel.guild_name}" if channel else None,
        width=job.width or 0,
        height=job.height or 0,
        command=variation_command(job),
        page_path=f"{root}{page}",
        video_path=f"{root}{page}.mp4",
        poster_path=f"{root}{page}.jpg",
        page_url=f"{base_url}{page}",
        player_url=f"{base_url}{page}/player",
        video_url=f"{base_url}{page}.mp4",
        poster_url=f"{base_url}{page}.jpg",
    )


def variation_command(job: Job) -> str:
    """The /create command for a full clip with this clip's prompt and seed.

    With a seed it renders straight away: four drafts first (the default) would spend the seed
    on a quick draft. It remakes a clip that was made straight away; a clip rendered from a
    draft started from that draft's frames, which a new command does not have."""
    words = " ".join(job.request.prompt.split())
    if job.seed is None:
        return f"/create prompt:{words}"
    return f"/create prompt:{words} seed:{job.seed} drafts:False"


async def gallery(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    query = gallery_query(request, context.per_page)
    if query.words.strip():
        wait = context.searches.allow(client_key(request))
        if wait > 0:
            retry = {"Retry-After": str(max(1, round(wait)))}
            raise http_error(
                request, web.HTTPTooManyRequests, "Slow down", TOO_MANY_SEARCHES, retry
            )
    found, channels = await asyncio.gather(
        context.gallery.page(query), context.gallery.public_channels()
    )
    by_id = {(channel.guild_id, channel.channel_id): channel for channel in channels}
    base = context.base_url(request)
    return render(
        request,
        "gallery.html",
        query=query,
        servers=servers(channels),
        clips=[clip_view(job, context, base, by_id) for job in found.clips],
        newer_path=page_path(context, query, found.page - 1) if found.page > 1 else None,
        older_path=page_path(context, query, found.page + 1) if found.has_next else None,
    )


def gallery_query(request: web.Request, per_page: int) -> GalleryQuery:
    """The gallery's query string, read leniently: what cannot be read is left out."""
    params = request.query
    return GalleryQuery(
        words=params.get("q", "")[:SEARCH_LENGTH],
        guild_id=_number(params.get("server")),
        channel_id=_number(params.get("channel")),
        page=min(LAST_PAGE, max(1, _number(params.get("page")) or 1)),
        per_page=per_page,
    )


def _number(text: str | None) -> int | None:
    if text is None or not text.isdigit() or len(text) > 20:
        return None
    return int(text)


def page_path(context: WebContext, query: GalleryQuery, page: int) -> str:
    params = {
        "q": query.words,
        "server": query.guild_id,
        "channel": query.channel_id,
        "page": page if page > 1 else None,
    }
    given = {name: value for name, value in params.items() if value not in (None, "")}
    return f"{context.root}/" + (f"?{urlencode(given)}" if given else "")


def servers(channels: list[GalleryChannel]) -> list[ServerView]:
    grouped: dict[int, ServerView] = {}
    for channel in channels:
        server = grouped.setdefault(
            channel.guild_id, ServerView(channel.guild_id, channel.guild_name, [])
        )
        server.channels.append(channel)
    return list(grouped.values())


async def clip_page(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    job = await shown_job(request)
    family, channels, credentials = await asyncio.gather(
        context.gallery.family(job),
        context.gallery.public_channels(),
        clip_credentials(context, job.id),
    )
    by_id = {(channel.guild_id, channel.channel_id): channel for channel in channels}
    base = context.base_url(request)

    def view(member: Job) -> ClipView:
        return clip_view(member, context, base, by_id)

    return render(
        request,
        "clip.html",
        clip=view(job),
        family=FamilyView(
            parent=view(family.parent) if family.parent else None,
            children=[view(child) for child in family.children],
            draft=family.draft,
        ),
        credentials=CredentialsView.of(credentials),
    )


@dataclass(frozen=True)
class FamilyView:
    parent: ClipView | None
    children: list[ClipView]
    draft: DraftOrigin | None


@dataclass(frozen=True)
class CredentialsView:
    state: str
    lines: list[str]

    @classmethod
    def of(cls, report: ProvenanceReport) -> CredentialsView:
        return cls(report.state, report.lines())


async def clip_credentials(context: WebContext, job_id: int) -> ProvenanceReport:
    """What the clip file's C2PA manifest says, checked once per version of the file."""
    path = clip_path(context.clips_dir, job_id)
    try:
        stat = await asyncio.to_thread(path.stat)
    except FileNotFoundError:
        return ProvenanceReport("missing")
    key = (job_id, stat.st_mtime_ns, stat.st_size)
    report = context.credentials.get(key)
    if report is None:
        report = await asyncio.to_thread(verify_with, path, context.signing)
        context.remember_credentials(key, report)
    return report


def verify_with(path: Path, signing: SigningIdentity | None) -> ProvenanceReport:
    # The key may be made after the server starts (by the first clip): look each time.
    anchor = signing.trust_anchor() if signing is not None else None
    return verify_clip(path, trust_anchor=anchor)


async def player(request: web.Request) -> web.Response:
    """The bare video, for link previews that embed a player (Twitter's card)."""
    context = request.app[CONTEXT]
    view = clip_view(await shown_job(request), context, context.base_url(request), {})
    return render(request, "player.html", clip=view)
