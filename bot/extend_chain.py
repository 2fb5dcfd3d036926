"""Extend chains: each Extend continues the whole clip so far, up to the server's length.

An extension's clip is its parent's frames then the new ones (the first new frame repeats the
parent's last, and is dropped), so an Extend of an extension is the joined video so far plus
one more piece. The door refuses an Extend that would make it longer than
``REELBOT_MAX_EXTENDED_SECONDS`` (:func:`extension_refusal`); a finished extension's embed
lists the pieces it is made of (:func:`segments`), read from its chain of parents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.followups import FollowUp
from bot.options import job_preset
from bot.settings import Settings
from jobqueue.models import Job, JobKind
from pipeline.request import frames_asked

if TYPE_CHECKING:
    from jobqueue.jobs import JobQueue

MAX_CHAIN = 64
"""The most parents looked up for one clip's segments (a chain is a few links long: the
length cap ends it; the bound guards against a broken chain in the database)."""


@dataclass(frozen=True)
class Segment:
    """One piece of a joined clip: the job that made it and where it lies in the clip."""

    number: int
    job_id: int
    original: bool
    start_s: float
    end_s: float


def joined_frames(parent_frames: int, new_frames: int) -> int:
    """The frames of an extension: the parent's, then the new ones but the first, which
    repeats the parent's last frame (see ``pipeline.clip``)."""
    return parent_frames + new_frames - 1


def extension_refusal(parent: Job, *, new_frames: int, fps: int, max_seconds: float) -> str | None:
    """The sentence refusing an Extend of ``parent`` by ``new_frames`` at ``fps`` when the
    joined clip would be longer than ``max_seconds``; None when it fits (or the parent's
    length is not known)."""
    if parent.frames is None:
        return None
    # The joined clip plays at the extension's frame rate (ffmpeg encodes every frame at it).
    total_s = joined_frames(parent.frames, new_frames) / fps
    if total_s <= max_seconds:
        return None
    so_far_s = parent.frames / (parent.fps or fps)
    return (
        f"This clip is {so_far_s:.1f} s long; another Extend would make it {total_s:.1f} s,"
        f" past this server's limit of {max_seconds:g} s for an extended clip."
    )


async def too_long_extension(queue: JobQueue, settings: Settings, follow: FollowUp) -> str | None:
    """The sentence refusing ``follow`` when it is an Extend that would pass the server's
    length for an extended clip (its parent is the whole clip so far); None otherwise.
    Raises InvalidRequest for a length the model cannot make (checked before, at the door)."""
    if follow.kind is not JobKind.EXTEND or follow.parent_id is None:
        return None
    parent = await queue.get(follow.parent_id)
    if parent is None:
        return None
    preset = job_preset(settings, follow.kind, follow.request.model)
    new_frames, fps = frames_asked(preset, follow.request.as_asked())
    return extension_refusal(
        parent, new_frames=new_frames, fps=fps, max_seconds=settings.max_extended_seconds
    )


async def chain_of(queue: JobQueue, job: Job) -> list[Job]:
    """``job`` and the clips it extends, the original first (``[job]`` for a clip that is
    no extension); it starts with an extension when a parent is gone."""
    chain = [job]
    while (
        chain[-1].kind is JobKind.EXTEND
        and chain[-1].parent_id is not None
        and len(chain) < MAX_CHAIN
    ):
        parent = await queue.get(chain[-1].parent_id)
        if parent is None:
            break
        chain.append(parent)
    return chain[::-1]


def segments(chain: list[Job]) -> list[Segment]:
    """The pieces of the last clip of ``chain`` (from :func:`chain_of`) and where each lies in
    it; none for a clip that is no extension, or whose chain is broken or of unknown length."""
    fps = chain[-1].fps
    ends = [job.frames or 0 for job in chain]
    if len(chain) < 2 or chain[0].kind is JobKind.EXTEND or not fps or 0 in ends:
        return []
    starts = [0, *ends[:-1]]
    return [
        Segment(number, job.id, number == 1, start / fps, end / fps)
        for number, (job, start, end) in enumerate(zip(chain, starts, ends, strict=True), 1)
    ]


async def segments_of(queue: JobQueue, job: Job) -> list[Segment]:
    """The pieces of ``job``'s clip when it is an extension (none otherwise: no lookups)."""
    if job.kind is not JobKind.EXTEND:
        return []
    return segments(await chain_of(queue, job))
