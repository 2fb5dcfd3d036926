"""The web server over HTTP: security headers on every answer, files only from the clips
folder, search rate-limited per client, paging and filters, what is never shown, links under
REELBOT_PUBLIC_URL, and ``reelbot web`` on its own."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from unittest import mock
from urllib.parse import quote

import aiohttp
import numpy as np
import pytest
from aiohttp.test_utils import make_mocked_request

from bot.web.app import make_app
from bot.web.security import CONTENT_SECURITY_POLICY, SearchLimiter, client_key
from bot.web.server import WebServer, web_context
from bot.web.settings import WebSettings
from jobqueue.clipfiles import clip_path, poster_path
from jobqueue.gallery import Gallery, GalleryChannels, search_expression
from jobqueue.jobs import JobQueue
from jobqueue.models import Job, JobKind, JobRequest, JobResult
from jobqueue.moderation import Moderation
from jobqueue.safety import HeldState
from pipeline.encode import ClipMetadata, encode_mp4

GUILD, OTHER_GUILD = 10, 20
PUBLIC, PUBLIC_ELSEWHERE, PRIVATE = 11, 21, 12
SECRET = b"the bot's secrets"


@pytest.fixture(scope="module")
def sample_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real MP4 (with its poster beside it) that every finished job here copies."""
    folder = tmp_path_factory.mktemp("sample")
    pixels = np.random.default_rng(1).integers(0, 255, (6, 32, 48, 3), dtype=np.uint8)
    return encode_mp4(pixels, 8, folder / "sample.mp4", metadata=ClipMetadata("x", 1, "tiny")).path


@dataclass
class ClipSite:
    """A queue with finished clips in it, and the web server over them."""

    queue: JobQueue
    settings: WebSettings
    sample: Path
    url: str = ""

    async def clip(
        self,
        prompt: str,
        *,
        guild: int = GUILD,
        channel: int = PUBLIC,
        parent: int | None = None,
        user: int = 1,
        kind: JobKind | None = None,
        draft: int | None = None,
    ) -> Job:
        """A finished job whose clip and poster are in the clips folder (a clip, or with a
        parent a retry, unless ``kind`` says otherwise; ``draft``: the parent's draft it
        starts from)."""
        queue, clips = self.queue, self.settings.clips_dir
        job = await queue.submit(
            kind or (JobKind.CREATE if parent is None else JobKind.RETRY),
            JobRequest(prompt=prompt, seed=3, draft=draft),
            user_id=user,
            guild_id=guild,
            channel_id=channel,
            parent_id=parent,
        )
        claimed = await queue.claim("worker", lease_seconds=60)
        assert claimed is not None
        assert claimed.id == job.id
        result = JobResult(str(clip_path(clips, job.id)), 48, 32, 6, 8, 3, "tiny", 2)

        def publish() -> None:
            clips.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.sample, clip_path(clips, job.id))
            shutil.copyfile(self.sample.with_suffix(".jpg"), poster_path(clips, job.id))

        assert await queue.complete(job.id, "worker", result, publish=publish)
        done = await queue.get(job.id)
        assert done is not None
        return done

    async def get(self, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.url + path, headers=headers, allow_redirects=False) as response,
        ):
            return response.status, dict(response.headers), await response.read()

    async def page(self, path: str) -> str:
        status, _, body = await self.get(path)
        assert status == 200, (path, status)
        return body.decode()


def shown_ids(html: str) -> list[int]:
    return [int(found) for found in re.findall(r'<li class="tile" data-job="(\d+)"', html)]


@pytest.fixture
async def gallery(tmp_path: Path, sample_clip: Path) -> AsyncIterator[ClipSite]:
    settings = WebSettings(_env_file=None, data_dir=tmp_path / "data")  # type: ignore[call-arg]
    queue = await JobQueue.open(settings.database_path)
    channels = GalleryChannels(Moderation(queue.db))
    for guild, channel, name in (
        (GUILD, PUBLIC, "showcase"),
        (OTHER_GUILD, PUBLIC_ELSEWHERE, "art"),
    ):
        await channels.set_public(
            guild, channel, True, actor_id=5, guild_name=f"server {guild}", channel_name=name
        )
    await channels.set_public(
        GUILD, PRIVATE, False, actor_id=5, guild_name="server 10", channel_name="private"
    )
    site = ClipSite(queue, settings, sample_clip)
    # Small pages; searches limited only in the test of the limit.
    roomy = SearchLimiter(per_minute=6000, burst=1000)
    context = replace(web_context(settings, queue), per_page=2, searches=roomy)
    try:
        async with WebServer(make_app(context), host="127.0.0.1", port=0) as server:
            site.url = server.url
            yield site
    finally:
        await queue.close()


async def test_every_answer_carries_the_security_headers(gallery: ClipSite) -> None:
    job = await gallery.clip("a fox")
    strict = CONTENT_SECURITY_POLICY.format(frames="'none'")
    assert "script-src 'self'" in strict
    assert "'unsafe-inline'" not in strict
    for path in (
        "/",
        "/?q=fox",
        f"/clips/{job.id}",
        f"/clips/{job.id}.mp4",
        f"/clips/{job.id}.jpg",
        "/clips/999",
        "/nowhere",
        "/static/style.css",
        "/healthz",
        "/metrics",
    ):
        _, headers, _ = await gallery.get(path)
        assert headers["Content-Security-Policy"] == strict, path
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["X-Frame-Options"] == "DENY", path
    # Link previews embed the bare player page.
    _, headers, _ = await gallery.get(f"/clips/{job.id}/player")
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY.format(frames="*")
    assert "X-Frame-Options" not in headers


async def test_files_come_only_from_the_clips_folder(gallery: ClipSite, tmp_path: Path) -> None:
    job = await gallery.clip("a fox")
    secret = tmp_path / "secret.txt"
    secret.write_bytes(SECRET)
    for path in (
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/static/..%2fapp.py",
        "/clips/../reelbot.db",
        "/clips/%2e%2e/reelbot.db",
        f"/clips/{job.id}.mp4/../../reelbot.db",
        "/clips/-1.mp4",
        "/clips/1e3.mp4",
        f"/clips/{job.id}.db",
    ):
        status, _, body = await gallery.get(path)
        assert status in (403, 404), path
        assert b"SQLite" not in body
        assert b"import" not in body

    # Whatever the database says, the file is the clips folder's own.
    await gallery.queue.db.write(
        lambda db: db.execute("UPDATE jobs SET result_path = ? WHERE id = ?", [str(secret), job.id])
    )
    status, _, body = await gallery.get(f"/clips/{job.id}.mp4")
    assert (status, body) == (200, gallery.sample.read_bytes())
    # A link planted in the clips folder that leads out of it is not followed.
    planted = clip_path(gallery.settings.clips_dir, job.id)
    planted.unlink()
    planted.symlink_to(secret)
    status, _, body = await gallery.get(f"/clips/{job.id}.mp4")
    assert status == 404
    assert SECRET not in body


async def test_videos_answer_range_requests(gallery: ClipSite) -> None:
    job = await gallery.clip("a fox")
    status, headers, body = await gallery.get(f"/clips/{job.id}.mp4", Range="bytes=0-99")
    assert (status, len(body)) == (206, 100)
    assert headers["Content-Type"] == "video/mp4"
    assert body == gallery.sample.read_bytes()[:100]


async def test_pages_newest_first_with_filters_and_nothing_that_must_not_show(
    gallery: ClipSite,
) -> None:
    ids = [(await gallery.clip(f"clip number {n}")).id for n in range(3)]
    elsewhere = await gallery.clip("on another server", guild=OTHER_GUILD, channel=PUBLIC_ELSEWHERE)
    private = await gallery.clip("in a private channel", channel=PRIVATE)
    withheld = await gallery.clip("withheld by the safety check")
    released = await gallery.clip("released by a moderator")
    deleted = await gallery.clip("deleted in Discord")
    await hold(gallery.queue, withheld.id, state=HeldState.WITHHELD)
    await hold(gallery.queue, released.id, state=HeldState.RELEASED)
    await Gallery(gallery.queue.db).mark_deleted(deleted.id)

    everything = [released.id, elsewhere.id, *reversed(ids)]
    first = await gallery.page("/")
    assert shown_ids(first) == everything[:2]
    assert 'href="/?page=2"' in first
    assert "Newer" not in first
    assert shown_ids(await gallery.page("/?page=2")) == everything[2:4]
    last = await gallery.page("/?page=3")
    assert shown_ids(last) == everything[4:]
    assert "Older" not in last

    assert shown_ids(await gallery.page(f"/?server={OTHER_GUILD}")) == [elsewhere.id]
    assert shown_ids(await gallery.page(f"/?channel={PUBLIC}&page=2")) == [ids[1], ids[0]]
    assert shown_ids(await gallery.page(f"/?channel={PRIVATE}")) == []
    assert shown_ids(await gallery.page("/?server=x&channel=&page=-3")) == everything[:2]
    for job, status in ((private, 404), (withheld, 404), (deleted, 410), (released, 200)):
        for path in ("", ".mp4", ".jpg", "/player"):
            assert (await gallery.get(f"/clips/{job.id}{path}"))[0] == status, (job.id, path)


async def test_grids_of_drafts_never_show_and_a_render_says_which_draft_it_came_from(
    gallery: ClipSite,
) -> None:
    grid = await gallery.clip("a lighthouse", kind=JobKind.DRAFTS)
    varied = await gallery.clip("a lighthouse", parent=grid.id, kind=JobKind.VARY, draft=2)
    render = await gallery.clip("a lighthouse", parent=varied.id, kind=JobKind.RENDER, draft=3)
    await Gallery(gallery.queue.db).mark_deleted(grid.id)

    assert shown_ids(await gallery.page("/")) == [render.id]
    assert shown_ids(await gallery.page("/?q=lighthouse")) == [render.id]
    # Working material was never public: a deleted grid is not "gone", it was never here.
    for job in (grid, varied):
        for path in ("", ".mp4", ".jpg", "/player"):
            assert (await gallery.get(f"/clips/{job.id}{path}"))[0] == 404, (job.id, path)
    page = await gallery.page(f"/clips/{render.id}")
    assert f"Rendered from draft 3 of drafts #{varied.id}" in page
    assert f'href="/clips/{varied.id}"' not in page


async def hold(queue: JobQueue, job_id: int, *, state: HeldState) -> None:
    await queue.db.write(
        lambda db: db.execute(
            "UPDATE jobs SET safety_hold = 1, safety_state = ? WHERE id = ?", [state.value, job_id]
        )
    )


async def test_search_matches_words_and_nothing_typed_is_query_syntax(gallery: ClipSite) -> None:
    fox = await gallery.clip("A red fox, surfing")
    await gallery.clip("a green frog")
    for words in ("fox", "FOX red", "surf"):
        assert shown_ids(await gallery.page(f"/?q={words}")) == [fox.id], words
    for words in ('fox" OR frog', "NEAR(fox frog)", "fox*", "-frog", "^fox", '"', "*", "()"):
        status, _, _ = await gallery.get(f"/?q={quote(words)}")
        assert status == 200, words
    assert search_expression('fox" OR frog') == '"fox" "or" "frog"*'
    assert search_expression("  ,,  ") is None


async def test_search_is_rate_limited_per_client(gallery: ClipSite, tmp_path: Path) -> None:
    now = [0.0]
    limiter = SearchLimiter(per_minute=6, burst=2, clock=lambda: now[0])
    context = replace(web_context(gallery.settings, gallery.queue), searches=limiter)
    async with WebServer(make_app(context), host="127.0.0.1", port=0) as server:
        gallery.url = server.url
        assert [(await gallery.get("/?q=fox"))[0] for _ in range(2)] == [200, 200]
        status, headers, body = await gallery.get("/?q=fox")
        assert status == 429
        assert headers["Retry-After"] == "10"
        assert b"Too many searches" in body
        # Browsing is not searching; another client behind this host's proxy has its own budget.
        assert (await gallery.get("/?page=1"))[0] == 200
        assert (await gallery.get("/?q=fox", **{"X-Forwarded-For": "203.0.113.9"}))[0] == 200
        now[0] += 10
        assert (await gallery.get("/?q=fox"))[0] == 200


def test_only_a_proxy_on_this_machine_is_believed_about_the_client() -> None:
    def request(peer: str, forwarded: str) -> str:
        transport = mock.Mock()
        transport.get_extra_info.return_value = (peer, 1234)
        headers = {"X-Forwarded-For": forwarded}
        return client_key(make_mocked_request("GET", "/", headers=headers, transport=transport))

    assert request("127.0.0.1", "198.51.100.1, 203.0.113.9") == "203.0.113.9"
    assert request("::1", "203.0.113.9") == "203.0.113.9"
    assert request("192.0.2.7", "203.0.113.9") == "192.0.2.7"


async def test_links_live_under_the_public_address(gallery: ClipSite) -> None:
    job = await gallery.clip("a fox")
    public = WebSettings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=gallery.settings.data_dir,
        public_url="https://clips.example.com/reel/",
    )
    async with WebServer(
        make_app(web_context(public, gallery.queue)), host="127.0.0.1", port=0
    ) as server:
        gallery.url = server.url
        listing = await gallery.page("/")
        page = await gallery.page(f"/clips/{job.id}")
    assert f'href="/reel/clips/{job.id}"' in listing
    assert 'href="/reel/static/style.css"' in listing
    video = f"https://clips.example.com/reel/clips/{job.id}.mp4"
    assert f'<meta property="og:video" content="{video}">' in page
    assert f'<meta property="og:video:secure_url" content="{video}">' in page
    assert f'<meta name="twitter:player" content="{video[:-4]}/player">' in page


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_reelbot_web_serves_the_data_folder_alone(gallery: ClipSite, tmp_path: Path) -> None:
    job = await gallery.clip("a fox on its own")
    port = free_port()
    env = {**os.environ, "REELBOT_DATA_DIR": str(gallery.settings.data_dir)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "web", "--port", str(port), env=env, cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        gallery.url = f"http://127.0.0.1:{port}"
        async with asyncio.timeout(60):
            while True:
                try:
                    listing = await gallery.page("/")
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.2)
        assert shown_ids(listing) == [job.id]
        status, _, body = await gallery.get("/healthz")
        assert status == 503  # no worker runs
        assert b'"workers": {"ok": false' in body
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    assert f"serving the gallery at http://127.0.0.1:{port}/" in err.decode()


async def test_reelbot_web_needs_a_port(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "web",
        env={**os.environ, "REELBOT_WEB_PORT": "0", "REELBOT_DATA_DIR": str(tmp_path)},
        cwd=tmp_path, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    assert err.decode().strip().endswith("give a port with --port or in .env.")
