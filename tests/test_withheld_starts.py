"""What a withheld clip or grid may start (jobqueue.safety.withheld_start_refusal), the rule
the bot's door and the worker both apply.

A withheld clip starts nothing for anyone but its owner: an Extend continues its frames, and
HD, Remix and Retry make it again from its seed or prompt. A withheld grid starts no Render,
Vary or new drafts for anyone, its owner included. Released or spoilered ones start anything.
"""

from __future__ import annotations

import pytest

from jobqueue.models import Job, JobKind
from jobqueue.safety import GRID_WITHHELD, PARENT_WITHHELD, HeldState, withheld_start_refusal
from tests.bot_harness import make_job

OWNER = 42
SOMEONE_ELSE = 43
FROM_A_CLIP = [JobKind.EXTEND, JobKind.HD, JobKind.REMIX, JobKind.RETRY, JobKind.DRAFTS]
FROM_A_GRID = [JobKind.RENDER, JobKind.VARY, JobKind.DRAFTS]


def held(kind: JobKind, state: HeldState | None) -> Job:
    return make_job(id=9, kind=kind, user_id=OWNER, safety_hold=True, safety_state=state)


@pytest.mark.parametrize("kind", FROM_A_CLIP)
def test_a_withheld_clip_starts_nothing_for_someone_else(kind: JobKind) -> None:
    clip = held(JobKind.CREATE, HeldState.WITHHELD)

    assert withheld_start_refusal(clip, kind, SOMEONE_ELSE) == PARENT_WITHHELD
    assert withheld_start_refusal(clip, kind, OWNER) is None


@pytest.mark.parametrize("kind", FROM_A_GRID)
@pytest.mark.parametrize("grid_kind", [JobKind.DRAFTS, JobKind.VARY])
def test_a_withheld_grid_starts_nothing_for_anyone(grid_kind: JobKind, kind: JobKind) -> None:
    grid = held(grid_kind, HeldState.WITHHELD)

    assert withheld_start_refusal(grid, kind, SOMEONE_ELSE) == GRID_WITHHELD
    assert withheld_start_refusal(grid, kind, OWNER) == GRID_WITHHELD


@pytest.mark.parametrize("state", [HeldState.RELEASED, HeldState.SPOILERED])
@pytest.mark.parametrize("kind", FROM_A_CLIP)
def test_a_released_or_spoilered_clip_starts_anything(state: HeldState, kind: JobKind) -> None:
    assert withheld_start_refusal(held(JobKind.CREATE, state), kind, SOMEONE_ELSE) is None


def test_a_clip_that_was_never_held_starts_anything() -> None:
    clip = make_job(id=9, kind=JobKind.CREATE, user_id=OWNER)

    assert withheld_start_refusal(clip, JobKind.HD, SOMEONE_ELSE) is None
