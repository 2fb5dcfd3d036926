"""Extend chains through the real bot: an Extend of an extension posts one clip, the whole
video so far, whose embed lists its segments; an Extend past the server's length is refused
privately with a sentence and nothing is queued."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.extend_chain import extension_refusal, segments
from bot.settings import Settings
from jobqueue.models import Job, JobKind
from tests.bot_harness import Reel, make_job
from tests.fakediscord import Message
from tests.mp4probe import probe_mp4

# The tiny models make 9 frames at 16 fps; each extension adds 8 (its first repeats the
# clip's last): 0.56 s, then 1.06 s, then 1.56 s, then 2.06 s.
CAP_S = 1.6


@pytest.fixture
def reel_settings(reel_settings: Settings) -> Settings:
    """The harness's settings with room for two extensions of a tiny clip, not three."""
    return reel_settings.model_copy(update={"max_extended_seconds": CAP_S})


def fields(message: Message) -> dict[str, str]:
    return {field["name"]: field["value"] for field in message.embeds[0].get("fields", [])}


async def extend(reel: Reel, clip: Message, parent: Job) -> Job:
    handle = await reel.fake.click(clip, f"job:{parent.id}:extend", user=reel.fake.bob)
    child = await reel.job_of(handle)
    assert handle.ephemeral
    return child


async def test_an_extend_of_an_extend_posts_the_whole_clip_and_the_cap_stops_the_next(
    running_reel: Reel, tmp_path: Path
) -> None:
    reel = running_reel
    _, original = await reel.create("a paper boat on a pond", camera="pan left")
    first_clip = await reel.clip_message(original.id)
    first = await extend(reel, first_clip, original)
    first_extension = await reel.clip_message(first.id)
    second = await extend(reel, first_extension, first)
    assert (second.kind, second.parent_id) == (JobKind.EXTEND, first.id)
    assert second.request.camera == "pan left"
    clip = await reel.clip_message(second.id)

    # One message for the second extension, holding the joined clip: 9 + 8 + 8 frames.
    posted = [
        message
        for message in reel.clip_messages()
        if f"job:{second.id}:retry" in message.custom_ids()
    ]
    assert posted == [clip]
    (tmp_path / "joined.mp4").write_bytes(clip.attachments[0].data)
    joined = probe_mp4(tmp_path / "joined.mp4")
    assert joined.frames == 25
    assert joined.frames / joined.fps == pytest.approx(9 / 16 + 8 / 16 + 8 / 16)
    assert fields(clip)["Segments"] == (
        f"1 original #{original.id} 0.0–0.6 s · 2 extension #{first.id} 0.6–1.1 s"
        f" · 3 extension #{second.id} 1.1–1.6 s"
    )
    assert "Segments" not in fields(first_clip)
    assert fields(clip)["Camera"] == "pan left"

    # A third extension would make 2.06 s, past the 1.6 s cap: refused, privately, at once.
    handle = await reel.fake.click(clip, f"job:{second.id}:extend", user=reel.fake.bob)
    answer = await handle.response()
    assert handle.ephemeral
    assert answer.content == (
        "This clip is 1.6 s long; another Extend would make it 2.1 s, past this server's"
        " limit of 1.6 s for an extended clip."
    )
    bobs = await reel.queue.user_jobs(reel.fake.bob.id, active_only=False)
    assert [job.id for job in bobs] == [first.id, second.id]


def test_the_cap_counts_the_joined_frames_at_the_extensions_rate() -> None:
    parent = make_job(kind=JobKind.EXTEND, frames=321, fps=16)  # 20.1 s
    assert extension_refusal(parent, new_frames=9, fps=16, max_seconds=21) is None
    refusal = extension_refusal(parent, new_frames=81, fps=16, max_seconds=21)
    assert refusal == (
        "This clip is 20.1 s long; another Extend would make it 25.1 s, past this server's"
        " limit of 21 s for an extended clip."
    )


def test_a_broken_or_single_chain_has_no_segments() -> None:
    original = make_job(id=1, frames=81, fps=16)
    extension = make_job(id=2, kind=JobKind.EXTEND, parent_id=1, frames=161, fps=16)
    assert segments([original]) == []
    assert segments([extension]) == []  # its parent is gone
    pieces = segments([original, extension])
    assert [(piece.number, piece.original, piece.end_s) for piece in pieces] == [
        (1, True, 81 / 16),
        (2, False, 161 / 16),
    ]
