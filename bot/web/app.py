"""The aiohttp application: its routes, what its handlers share, and its error pages."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
from aiohttp import web

from bot.web.health import HealthCheck
from bot.web.metrics import ReelMetrics
from bot.web.security import SearchLimiter, security_headers
from jobqueue.gallery import Gallery
from jobqueue.models import Job
from pipeline.provenance import ProvenanceReport, SigningIdentity

STATIC_DIR = Path(__file__).resolve().parent / "static"
CREDENTIALS_CACHED = 512


@dataclass
class WebContext:
    """Everything the handlers use, made once per server."""

    gallery: Gallery
    health: HealthCheck
    metrics: ReelMetrics
    clips_dir: Path
    public_url: str | None = None
    """The address users reach (behind a reverse proxy); None: the address they asked."""
    signing: SigningIdentity | None = None
    """This reelbot's signing key: clips it signed show as signed "by this reelbot"."""
    searches: SearchLimiter = field(default_factory=lambda: SearchLimiter(per_minute=20, burst=10))
    per_page: int = 24
    templates: jinja2.Environment = field(default_factory=lambda: templates())
    credentials: dict[tuple[int, int, int], ProvenanceReport] = field(default_factory=dict)
    """Each clip file's verified credentials, by job, modification time and size."""

    @property
    def root(self) -> str:
        """The path the site lives under ("" at the top of its host)."""
        return urlsplit(self.public_url).path.rstrip("/") if self.public_url else ""

    def base_url(self, request: web.Request) -> str:
        """Absolute address of the site's top, for links that leave the page (link previews)."""
        if self.public_url:
            return self.public_url
        return f"{request.scheme}://{request.host}"

    def remember_credentials(self, key: tuple[int, int, int], report: ProvenanceReport) -> None:
        if len(self.credentials) >= CREDENTIALS_CACHED:
            self.credentials.pop(next(iter(self.credentials)))
        self.credentials[key] = report


CONTEXT = web.AppKey("context", WebContext)


def templates() -> jinja2.Environment:
    """Every page's templates, escaping everything they are given."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("bot.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def make_app(context: WebContext) -> web.Application:
    from bot.web import files, monitoring, pages

    app = web.Application(middlewares=[security_headers])
    app[CONTEXT] = context
    app.router.add_get("/", pages.gallery, name="gallery")
    app.router.add_get(r"/clips/{job_id:\d{1,18}}", pages.clip_page, name="clip")
    app.router.add_get(r"/clips/{job_id:\d{1,18}}/player", pages.player, name="player")
    app.router.add_get(r"/clips/{job_id:\d{1,18}}.mp4", files.video, name="video")
    app.router.add_get(r"/clips/{job_id:\d{1,18}}.jpg", files.poster, name="poster")
    app.router.add_get("/healthz", monitoring.healthz, name="healthz")
    app.router.add_get("/metrics", monitoring.metrics, name="metrics")
    app.router.add_static("/static", STATIC_DIR, name="static", follow_symlinks=False)
    return app


def render(
    request: web.Request, template: str, *, status: int = 200, **values: object
) -> web.Response:
    context = request.app[CONTEXT]
    html = context.templates.get_template(template).render(root=context.root, **values)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def http_error(
    request: web.Request,
    kind: type[web.HTTPException],
    title: str,
    sentence: str,
    headers: dict[str, str] | None = None,
) -> web.HTTPException:
    """An error answer with a page that says what happened, to raise."""
    context = request.app[CONTEXT]
    page = context.templates.get_template("error.html")
    html = page.render(root=context.root, title=title, sentence=sentence)
    return kind(text=html, content_type="text/html", headers=headers)


async def shown_job(request: web.Request) -> Job:
    """The clip the address names, if the gallery shows it; raises 410 Gone for a deleted
    one and 404 for any other."""
    found = await request.app[CONTEXT].gallery.lookup(int(request.match_info["job_id"]))
    if found.job is not None:
        return found.job
    if found.gone:
        raise http_error(request, web.HTTPGone, "Gone", "This clip was deleted.")
    raise http_error(request, web.HTTPNotFound, "Not found", "There is no public clip here.")
