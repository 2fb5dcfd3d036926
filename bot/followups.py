"""What a button or reaction on a posted clip asks for: a new job built from its parent.

A clip that came from an image stays image-to-video (its retries and remixes reuse the image);
an extension's retries and remixes extend the same clip again, since an extension's frames are
its parent's frames plus new ones. On a grid of drafts, Render N makes the full clip from
draft N and Vary N four new drafts near it; a retry of a grid makes four new drafts. A
rendered clip's retries, remixes and HD version render the same draft again (new seed, new
prompt, larger), so they keep what its owner chose.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from jobqueue.models import Job, JobKind, JobRequest
from pipeline.drafts import draft_seeds

Action = Literal["retry", "remix", "extend", "hd", "delete"]
ACTIONS: tuple[Action, ...] = ("retry", "remix", "extend", "hd", "delete")


@dataclass(frozen=True)
class FollowUp:
    """A job to submit: its kind, its request, and the job it is recorded as coming from."""

    kind: JobKind
    request: JobRequest
    parent_id: int | None
    pressed_id: int | None = None
    """The grid whose button or reaction asked for it, where that is not ``parent_id``: new
    drafts of a Vary grid vary its grid's draft again. The door checks it too (a withheld
    grid starts nothing)."""


def can_make_hd(parent: Job) -> bool:
    """HD renders the same clip bigger; an extension would mix two sizes, and HD is HD."""
    return not parent.request.hd and parent.kind is not JobKind.EXTEND


def retry(parent: Job) -> FollowUp:
    """The same request with a new seed (a grid: four new drafts)."""
    request = replace(parent.request, seed=None)
    if parent.kind is JobKind.DRAFTS:
        return FollowUp(JobKind.DRAFTS, request, parent.id)
    if parent.kind is JobKind.VARY:
        return FollowUp(JobKind.VARY, request, parent.parent_id, pressed_id=parent.id)
    return _again(parent, JobKind.RETRY, request)


def render(parent: Job, number: int) -> FollowUp:
    """The full clip from draft ``number`` of the grid ``parent``, with that draft's seed."""
    seed = draft_seeds(parent.seed)[number - 1] if parent.seed is not None else None
    return FollowUp(JobKind.RENDER, replace(parent.request, seed=seed, draft=number), parent.id)


def vary(parent: Job, number: int) -> FollowUp:
    """Four new drafts near draft ``number`` of the grid ``parent``."""
    return FollowUp(JobKind.VARY, replace(parent.request, seed=None, draft=number), parent.id)


def remix(parent: Job, prompt: str, negative_prompt: str, *, camera: str | None) -> FollowUp:
    """New prompts and camera move with the parent's seed and other settings, so the change
    shows the prompt's effect."""
    request = replace(
        parent.request,
        prompt=prompt,
        negative_prompt=negative_prompt,
        seed=parent.seed,
        camera=camera,
    )
    return _again(parent, JobKind.REMIX, request)


def hd(parent: Job) -> FollowUp:
    """The same seed and prompt, rendered larger or with more steps."""
    return _again(parent, JobKind.HD, replace(parent.request, seed=parent.seed, hd=True))


def extend(parent: Job) -> FollowUp:
    """A continuation from the clip's last frame, joined to the clip.

    A text-to-video model chosen for the parent cannot continue from a frame, nor can a
    first-last-frame one without an end frame: the extension runs on the server's
    image-to-video model instead. It ends where the model takes it (no loop, no end image).
    """
    same_model = parent.kind.task == "i2v" and not parent.request.ends_on_frame
    model = parent.request.model if same_model else None
    request = replace(
        parent.request, seed=None, model=model, draft=None, loop=False, end_image_path=None
    )
    return FollowUp(JobKind.EXTEND, request, parent.id)


def _again(parent: Job, kind: JobKind, request: JobRequest) -> FollowUp:
    if parent.kind is JobKind.RENDER:
        return FollowUp(JobKind.RENDER, request, parent.parent_id)
    if parent.kind is JobKind.EXTEND:
        return FollowUp(JobKind.EXTEND, request, parent.parent_id)
    if parent.request.image_path is not None:
        return FollowUp(JobKind.ANIMATE, request, parent.id)
    return FollowUp(kind, request, parent.id)
