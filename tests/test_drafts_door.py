"""The door's word on what a grid of drafts starts (bot.submit.unfit_parent), whoever asks.

A Render or Vary needs a grid that finished: one still queued or running is not ready yet,
one that failed or was cancelled never will be, and a plain clip is no grid. A grid makes
only renders and new drafts: its Extend, HD or Remix is told to render a draft first. New
drafts of a Vary grid vary its grid's draft again, and name the Vary grid for the door.
Forged buttons get these sentences privately, through the real bot, and queue nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot import followups
from bot.followups import FollowUp
from bot.settings import Settings
from bot.submit import (
    DRAFTS_NEVER_FINISHED,
    DRAFTS_NOT_READY,
    NO_DRAFTS,
    RENDER_FIRST,
    unfit_parent,
)
from jobqueue.models import Job, JobKind, JobStatus
from tests.bot_harness import Reel, make_job
from tests.test_safety_bot import ANSWER_TIMEOUT_S

GRID = make_job(id=20, kind=JobKind.DRAFTS)
VARIED = make_job(id=21, kind=JobKind.VARY, parent_id=GRID.id)
CLIP = make_job(id=30, kind=JobKind.CREATE)


@pytest.mark.parametrize("grid", [GRID, VARIED], ids=["drafts", "vary"])
@pytest.mark.parametrize(
    "follow",
    [
        lambda grid: followups.render(grid, 2),
        lambda grid: followups.vary(grid, 3),
        followups.retry,
    ],
    ids=["render", "vary", "new drafts"],
)
def test_a_finished_grid_makes_renders_and_new_drafts(
    grid: Job, follow: Callable[[Job], FollowUp]
) -> None:
    assert unfit_parent(grid, follow(grid)) is None


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.RUNNING])
def test_drafts_still_being_made_are_not_ready_yet(status: JobStatus) -> None:
    grid = make_job(id=20, kind=JobKind.DRAFTS, status=status)
    assert unfit_parent(grid, followups.render(grid, 1)) == "The drafts #20 are not finished yet."
    assert unfit_parent(grid, followups.vary(grid, 1)) == DRAFTS_NOT_READY.format(id=20)


@pytest.mark.parametrize("status", [JobStatus.FAILED, JobStatus.CANCELLED])
def test_drafts_that_failed_or_were_cancelled_were_never_finished(status: JobStatus) -> None:
    grid = make_job(id=20, kind=JobKind.DRAFTS, status=status)
    never = "The drafts #20 were never finished; make new ones."
    assert unfit_parent(grid, followups.render(grid, 1)) == never
    assert unfit_parent(grid, followups.vary(grid, 4)) == DRAFTS_NEVER_FINISHED.format(id=20)
    # New drafts of the prompt need nothing from the grid.
    assert unfit_parent(grid, followups.retry(grid)) is None


def test_a_render_or_vary_of_a_plain_clip_or_of_nothing_has_no_drafts() -> None:
    assert unfit_parent(CLIP, followups.render(CLIP, 1)) == "There are no drafts #30 to start from."
    assert unfit_parent(CLIP, followups.vary(CLIP, 2)) == NO_DRAFTS.format(id=30)
    assert unfit_parent(None, followups.render(CLIP, 1)) == NO_DRAFTS.format(id=30)
    # A render's own Retry renders the same draft again, from its grid.
    rendered = make_job(id=31, kind=JobKind.RENDER, parent_id=GRID.id)
    assert unfit_parent(GRID, followups.retry(rendered)) is None


@pytest.mark.parametrize("grid", [GRID, VARIED], ids=["drafts", "vary"])
def test_a_grids_extend_hd_or_remix_is_told_to_render_a_draft_first(grid: Job) -> None:
    for follow in (
        followups.extend(grid),
        followups.hd(grid),
        followups.remix(grid, "a new prompt", "", camera=None),
    ):
        assert unfit_parent(grid, follow) == RENDER_FIRST, follow.kind


def test_new_drafts_of_a_vary_grid_name_the_grid_pressed_for_the_door() -> None:
    again = followups.retry(VARIED)
    assert (again.kind, again.parent_id, again.pressed_id) == (JobKind.VARY, GRID.id, VARIED.id)
    assert again.request.seed is None
    # Everywhere else the job pressed is the parent, or names no grid.
    assert followups.retry(GRID).pressed_id is None
    assert followups.render(VARIED, 1).pressed_id is None


@pytest.fixture
def reel_settings(reel_settings: Settings) -> Settings:
    """The bot as shipped: /create makes drafts first."""
    return reel_settings.model_copy(update={"drafts": True})


async def test_forged_buttons_on_waiting_drafts_are_answered_privately(reel: Reel) -> None:
    fake = reel.fake
    async with reel.bot_running():  # no worker: the drafts wait
        handle, drafts = await reel.create("a lighthouse at dusk")
        assert drafts.kind is JobKind.DRAFTS
        reply = handle.original
        assert reply is not None
        forged = {
            f"draft:{drafts.id}:render:1": DRAFTS_NOT_READY.format(id=drafts.id),
            f"draft:{drafts.id}:vary:2": DRAFTS_NOT_READY.format(id=drafts.id),
            f"job:{drafts.id}:extend": RENDER_FIRST,
            f"job:{drafts.id}:hd": RENDER_FIRST,
        }
        for custom_id, sentence in forged.items():
            click = await fake.forge_click(reply, custom_id, user=fake.alice)
            answer = await click.response(timeout=ANSWER_TIMEOUT_S)
            assert (answer.content, answer.ephemeral) == (sentence, True), custom_id
        jobs = await reel.queue.user_jobs(fake.alice.id, active_only=False)
    assert [job.id for job in jobs] == [drafts.id]
