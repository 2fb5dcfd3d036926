"""The web gallery in a real browser (headless chromium): clips made through the fake Discord
appear once their channel is public, newest first; a clip page plays its video and says how it
was made; search finds clips by a word of their prompt; private channels' and deleted clips
never show; a prompt full of HTML shows as the text typed."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import discord
import pytest

from jobqueue.models import Job, JobKind
from jobqueue.storyboards import Storyboard, Storyboards
from tests.bot_harness import CLIP_TIMEOUT_S, Reel
from tests.conftest import Site
from tests.fakediscord import Channel, Message
from tests.web_browser import Browser

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "docs" / "gallery.png"
UPDATE_SCREENSHOT = "UPDATE_GALLERY_SCREENSHOT"
"""Set to 1 to write the README's screenshot (docs/gallery.png) from this test."""

IDEA = "a fox explores a city at night"
HTML_PROMPT = '<script>window.pwned = 1</script><b>bold</b> <img src=x onerror="pwned=2"> & "q"'


@pytest.fixture
async def making(reel: Reel) -> AsyncIterator[Reel]:
    """The bot and a tiny-model worker that signs its clips."""
    async with reel.bot_running(), reel.worker_running(signing=True):
        yield reel


async def make_public(reel: Reel, channel: Channel, *, public: bool = True) -> None:
    command = "admin gallery allow" if public else "admin gallery deny"
    handle = await reel.fake.invoke(command, {"channel": channel}, user=reel.fake.carol)
    answer = await handle.response()
    assert "web gallery" in answer.content


async def clip_in(
    reel: Reel, prompt: str, channel: Channel | None = None, **options: object
) -> Job:
    """A finished, posted clip made with /create in ``channel`` (#general by default)."""
    handle = await reel.fake.invoke(
        "create", {"prompt": prompt, **options}, user=reel.fake.alice, channel=channel
    )
    job = await reel.job_of(handle)
    return await reel.delivered(job.id)


async def shot_storyboard(reel: Reel) -> tuple[Message, Storyboard]:
    """Alice plans a two-shot storyboard in #general and presses Shoot; the film as posted
    (in the plan's thread, else in #general) and the storyboard."""
    fake = reel.fake
    handle = await fake.invoke(
        "storyboard", {"idea": IDEA, "shots": 2, "seconds": 1.0}, user=fake.alice
    )
    assert "planned" in (await handle.response(timeout=30)).content
    plan = await fake.wait_for_message(
        fake.general, lambda m: any(c.endswith(":shoot") for c in m.custom_ids())
    )
    board_id = int(plan.custom_ids()[0].split(":")[1])
    pressed = await fake.click(plan, f"storyboard:{board_id}:shoot", user=fake.alice)
    await pressed.response(timeout=30)
    film = await fake.wait_for_message(
        fake.thread_of(plan) or fake.general,
        lambda m: bool(m.attachments),
        timeout=CLIP_TIMEOUT_S,
    )
    board = await Storyboards(reel.queue, clips_dir=reel.settings.clips_dir).get(board_id)
    assert board is not None
    assert board.film_job_id is not None
    return film, board


async def status_of(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status


async def tile_jobs(url: str) -> list[int]:
    """The jobs of the gallery page at ``url``'s tiles, in order (read over HTTP)."""
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200, url
        html = await response.text()
    return [int(found) for found in re.findall(r'<li class="tile" data-job="(\d+)"', html)]


async def tile_prompts(browser: Browser, url: str) -> list[str]:
    await browser.open(url)
    return await browser.texts(".tile .prompt")


async def test_public_clips_are_listed_newest_first_and_play_on_hover(
    making: Reel, site: Site, browser: Browser, tmp_path: Path
) -> None:
    fake = making.fake
    await make_public(making, fake.general)
    first = await clip_in(making, "a red fox running through fresh snow")
    second = await clip_in(making, "a paper lantern drifting over a dark lake")
    hidden = await clip_in(making, "a blue whale under the ice", fake.other)
    last = await clip_in(making, HTML_PROMPT)
    assert hidden.result_path is not None

    newest_first = [HTML_PROMPT, second.request.prompt, first.request.prompt]
    assert await tile_prompts(browser, f"{site.url}/") == newest_first
    # The prompt is text: no element was made from it, no script of it ran.
    assert await browser.script("return document.querySelectorAll('.tile .prompt *').length") == 0
    assert await browser.script("return window.pwned === undefined")

    await browser.hover(f".tile[data-job='{last.id}']")
    playing = f"document.querySelector(\".tile[data-job='{last.id}'] video\")"
    await browser.wait_until(f"{playing}.currentTime > 0.1 && !{playing}.paused")

    shot = SCREENSHOT if os.environ.get(UPDATE_SCREENSHOT) == "1" else tmp_path / "gallery.png"
    await browser.screenshot(shot)
    assert shot.read_bytes().startswith(b"\x89PNG")


async def test_a_clip_page_plays_and_says_how_the_clip_was_made(
    making: Reel, site: Site, browser: Browser
) -> None:
    fake = making.fake
    await make_public(making, fake.general)
    parent = await clip_in(making, "a paper boat on a rainy street", seed=42)
    message = await making.clip_message(parent.id)
    retry = await making.job_of(
        await fake.click(message, f"job:{parent.id}:retry", user=fake.alice)
    )
    child = await making.delivered(retry.id)

    page = f"{site.url}/clips/{parent.id}"
    await browser.open(page)
    assert await browser.text(".clip .prompt") == "a paper boat on a rainy street"
    facts = await browser.text(".facts")
    assert "Seed\n42" in facts
    assert "Model\ntiny" in facts
    assert "112×64" in facts
    assert "#general on " in facts
    assert await browser.text(".children") == f"Retry #{child.id}"
    variation = await browser.text(".variation")
    assert "/create prompt:a paper boat on a rainy street seed:42 drafts:False" in variation
    credentials = await browser.text(".credentials")
    assert "Valid content credentials, signed by this reelbot" in credentials
    assert "Model: tiny" in credentials
    assert "Seed: 42" in credentials

    await browser.script("document.querySelector('video.full').play()")
    await browser.wait_until("document.querySelector('video.full').currentTime > 0.2")

    # A pasted link unfurls as a playable video: the tags point at files that are there.
    tags = await browser.script(
        "return Object.fromEntries([...document.querySelectorAll('meta[property^=\"og:\"]')]"
        ".map(m => [m.getAttribute('property'), m.content]))"
    )
    assert tags["og:video"] == f"{site.url}/clips/{parent.id}.mp4"
    assert tags["og:video:type"] == "video/mp4"
    assert tags["og:image"] == f"{site.url}/clips/{parent.id}.jpg"
    assert tags["og:url"] == page
    async with aiohttp.ClientSession() as session:
        async with session.get(tags["og:video"]) as video:
            assert video.content_type == "video/mp4"
            on_disk = await asyncio.to_thread(Path(parent.result_path or "").read_bytes)
            assert await video.read() == on_disk
        async with session.get(tags["og:image"]) as poster:
            assert poster.content_type == "image/jpeg"

    await browser.open(f"{site.url}/clips/{child.id}")
    assert await browser.text(".parent") == f"Made from Clip #{parent.id}"


async def test_search_finds_clips_by_a_prompt_word_and_private_channels_never_show(
    making: Reel, site: Site, browser: Browser
) -> None:
    fake = making.fake
    await make_public(making, fake.general)
    fox = await clip_in(making, "a red fox naps in the sun")
    await clip_in(making, "a green frog jumps")
    private = await clip_in(making, "a red fox in a private den", fake.other)

    await browser.open(f"{site.url}/")
    await browser.type_and_submit("input[name=q]", "fox")
    await browser.wait_until("location.search.includes('q=fox')")
    assert await browser.texts(".tile .prompt") == [fox.request.prompt]
    assert await tile_prompts(browser, f"{site.url}/?q=Red") == [fox.request.prompt]

    assert await status_of(f"{site.url}/clips/{private.id}") == 404
    assert await status_of(f"{site.url}/clips/{private.id}.mp4") == 404
    await browser.open(f"{site.url}/clips/{private.id}")
    assert await browser.text("h1") == "Not found"

    await make_public(making, fake.general, public=False)
    assert await tile_prompts(browser, f"{site.url}/") == []
    assert "Nothing is public yet" in await browser.text(".empty")


async def test_a_deleted_clip_is_gone_from_the_gallery_and_its_files_are_not_served(
    making: Reel, site: Site, browser: Browser
) -> None:
    fake = making.fake
    await make_public(making, fake.general)
    by_admin = await clip_in(making, "a snow globe shaken slowly")
    by_owner = await clip_in(making, "a kite over the dunes")
    for job in (by_admin, by_owner):
        assert await status_of(f"{site.url}/clips/{job.id}.mp4") == 200

    handle = await fake.invoke("admin delete", {"job": by_admin.id}, user=fake.carol)
    assert "Deleted job" in (await handle.response()).content
    message = await making.clip_message(by_owner.id)
    pressed = await fake.click(message, f"job:{by_owner.id}:delete", user=fake.alice)
    assert "Deleted clip" in (await pressed.response()).content

    for job in (by_admin, by_owner):
        for path in ("", ".mp4", ".jpg"):
            assert await status_of(f"{site.url}/clips/{job.id}{path}") == 410
    # The owner's delete removed the message only: the file is still on disk, yet not served.
    assert await asyncio.to_thread(Path(by_owner.result_path or "").is_file)
    assert await tile_prompts(browser, f"{site.url}/") == []
    await browser.open(f"{site.url}/clips/{by_owner.id}")
    assert await browser.text(".error p") == "This clip was deleted."


async def test_a_clips_embed_in_discord_links_to_its_page_when_the_gallery_shows_it(
    reel: Reel,
) -> None:
    reel.settings = reel.settings.model_copy(update={"public_url": "https://clips.example.com"})
    async with reel.bot_running(), reel.worker_running():
        await make_public(reel, reel.fake.general)
        shown = await clip_in(reel, "a windmill at dusk")
        private = await clip_in(reel, "a windmill in a private channel", reel.fake.other)
        embed = (await reel.clip_message(shown.id)).embeds[0]
        assert embed["url"] == f"https://clips.example.com/clips/{shown.id}"
        (unlinked,) = [
            message
            for message in reel.fake.channel_messages(reel.fake.other)
            if f"job:{private.id}:retry" in message.custom_ids()
        ]
        assert "url" not in unlinked.embeds[0]


async def test_a_films_page_is_linked_from_its_thread_and_filed_under_the_plans_channel(
    reel: Reel, site: Site, browser: Browser
) -> None:
    fake = reel.fake
    reel.settings = reel.settings.model_copy(update={"public_url": site.url})
    async with reel.bot_running(), reel.worker_running():
        await make_public(reel, fake.general)
        film, board = await shot_storyboard(reel)
        assert film.channel_id == board.thread_id != fake.general.id

    page = f"{site.url}/clips/{board.film_job_id}"
    assert film.embeds[0]["url"] == page
    # The thread is not a channel admins can allow: the film counts as #general's.
    assert await tile_prompts(browser, f"{site.url}/") == [IDEA]
    assert await tile_prompts(browser, f"{site.url}/?channel={fake.general.id}") == [IDEA]
    await browser.open(page)
    assert "#general on " in await browser.text(".facts")
    assert await browser.script("return document.querySelector('.parent') === null"), (
        "its last shot is no clip of its own"
    )
    for shot in board.shot_job_ids:
        assert await status_of(f"{site.url}/clips/{shot}") == 404
        assert await status_of(f"{site.url}/clips/{shot}.mp4") == 404


async def test_a_storyboards_shots_posted_in_a_public_channel_are_not_shown(
    making: Reel, site: Site, browser: Browser
) -> None:
    fake = making.fake
    # No thread: the shots and the film are the channel's own.
    bot_role = fake.role(fake.bot_user.name)
    bot_role.permissions &= ~discord.Permissions(create_public_threads=True).value
    await make_public(making, fake.general)
    _, board = await shot_storyboard(making)
    shots = [await making.queue.get(job_id) for job_id in board.shot_job_ids]
    assert {shot.channel_id for shot in shots if shot is not None} == {fake.general.id}

    assert await tile_prompts(browser, f"{site.url}/") == [IDEA]
    assert await tile_prompts(browser, f"{site.url}/?q=fox") == [IDEA]
    for shot_id in board.shot_job_ids:
        assert await status_of(f"{site.url}/clips/{shot_id}") == 404


async def test_with_drafts_first_the_rendered_clip_is_shown_and_its_drafts_are_not(
    reel: Reel, site: Site, browser: Browser
) -> None:
    fake = reel.fake
    # Drafts first, as shipped; links from Discord to the gallery on.
    reel.settings = reel.settings.model_copy(update={"drafts": True, "public_url": site.url})
    prompt = "a lighthouse beam over a violet sea"
    async with reel.bot_running(), reel.worker_running():
        await make_public(reel, fake.general)
        _, drafts = await reel.create(prompt)
        assert drafts.kind is JobKind.DRAFTS
        grid = await fake.wait_for_message(
            fake.general,
            lambda message: f"draft:{drafts.id}:render:1" in message.custom_ids(),
            timeout=CLIP_TIMEOUT_S,
        )
        pressed = await fake.click(grid, f"draft:{drafts.id}:render:1", user=fake.alice)
        render = await reel.delivered((await reel.job_of(pressed)).id)
        clip = await reel.clip_message(render.id)
    assert (await reel.delivered(drafts.id)).result_path is not None
    assert clip.embeds[0]["url"] == f"{site.url}/clips/{render.id}"
    assert "url" not in grid.embeds[0]

    assert await tile_jobs(f"{site.url}/") == [render.id]
    assert await tile_jobs(f"{site.url}/?q=lighthouse") == [render.id]
    assert await tile_jobs(f"{site.url}/?channel={fake.general.id}") == [render.id]
    # A grid is working material: no page, no files, even by a direct link.
    for path in ("", ".mp4", ".jpg", "/player"):
        assert await status_of(f"{site.url}/clips/{drafts.id}{path}") == 404
        assert await status_of(f"{site.url}/clips/{render.id}{path}") == 200

    await browser.open(f"{site.url}/clips/{render.id}")
    assert await browser.text(".family .draft") == (
        f"Rendered from draft 1 of drafts #{drafts.id} (drafts stay in Discord)"
    )
