"""A busy channel under Discord's rate limits (the fake's realistic ones): clips go first,
requesters see their place privately, one queue board lists the line, and a storm of 429s
loses nothing. Jobs are finished on cue (tests/quick_jobs.py): these tests measure the bot."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from jobqueue.models import Job, JobKind, JobRequest
from tests.bot_harness import Reel
from tests.fakediscord import Message
from tests.quick_jobs import QuickFinisher, small_clip

PRIVATE_EDITS = "PATCH /webhooks/{application_id}/{token}/messages/{message_id}"
CHANNEL_SENDS = "POST /channels/{channel_id}/messages"
BOARD = "Queue here"


@pytest.fixture
def finisher(reel: Reel, tmp_path: Path) -> QuickFinisher:
    return QuickFinisher(reel.queue, small_clip(tmp_path))


async def queue_jobs(reel: Reel, count: int, *, first_user: int = 10_000) -> list[Job]:
    """``count`` jobs in #general from as many users, as /create would queue them."""
    return [
        await reel.queue.submit(
            JobKind.CREATE,
            JobRequest(prompt=f"queued clip {index}"),
            user_id=first_user + index,
            guild_id=reel.fake.guild.id,
            channel_id=reel.fake.general.id,
        )
        for index in range(count)
    ]


def ever_posted(reel: Reel, text: str, *, boards: bool = False) -> list[Message]:
    """Every message the bot posted in #general with ``text`` at first, deleted or not: queue
    boards only with ``boards``, else everything else."""
    found = []
    for message in reel.fake.world.messages.values():
        first = message.revisions[0]["content"] if message.revisions else message.content
        is_board = first.startswith("📋")
        if message.channel_id == reel.fake.general.id and text in first and is_board == boards:
            found.append(message)
    return found


async def test_a_finished_clip_goes_ahead_of_status_messages_waiting_for_the_budget(
    reel: Reel, finisher: QuickFinisher
) -> None:
    fake = reel.fake
    reel.settings.queue_board_from_jobs = 100  # every job wants a status message of its own
    async with reel.bot_running():
        await queue_jobs(reel, 8)
        await fake.wait_for_message(fake.general, lambda m: "is queued" in m.content)
        finished = await finisher.finish_next()
        assert finished is not None
        clip = await reel.clip_message(finished.id)
        # Status updates get three of each window's five sends: the fourth needs a second one.
        await fake.wait_for(lambda: len(ever_posted(reel, "is queued")) >= 4, timeout=30)
        statuses = ever_posted(reel, "is queued")
    # The clip, asked for after every status message, did not wait behind them.
    assert [m for m in statuses if m.created_at > clip.created_at]
    assert fake.rate_limits.stats().limited == 0


async def test_clips_finishing_together_are_all_posted_before_any_reaction(
    reel: Reel, finisher: QuickFinisher
) -> None:
    fake = reel.fake
    jobs = await queue_jobs(reel, 6)
    # Finished while the bot was away, it sees them all at once (a test of the bot's order,
    # not of where its polls of the queue fall). More clips than one window's sends: the
    # last one waits for the next window, and the first ones' reactions, though they have a
    # bucket of their own, must not go ahead of it.
    for _ in jobs:
        await finisher.finish_next()
    async with reel.bot_running():
        for job in jobs:
            await reel.delivered(job.id)
        clips = reel.clip_messages()
        await fake.wait_for(
            lambda: all(fake.bot_user.id in fake.message(m.id).reaction_users("✉️") for m in clips),
            timeout=60,
        )
    assert len(clips) == len(jobs)
    reactions = [
        record.at
        for record in fake.rate_limits.records
        if record.group == "reaction" and record.refused is None
    ]
    assert min(reactions) > max(clip.created_at for clip in clips)


async def test_a_requester_sees_their_place_privately_and_it_stays_current(
    reel: Reel, finisher: QuickFinisher
) -> None:
    fake = reel.fake
    reel.settings.private_update_seconds = 0.5
    reel.settings.queue_board_seconds = 1.0
    async with reel.bot_running():
        await queue_jobs(reel, 5)
        handle, job = await reel.create("a lighthouse at dusk")
        assert "number 6 in line" in (await handle.response()).content
        for _ in range(2):
            await finisher.finish_next()
        await fake.wait_for(lambda: "number 4 in line" in handle.original.content, timeout=15)

        # The channel shows the line on one board; the job has no message of its own.
        await fake.wait_for_message(
            fake.general,
            lambda m: BOARD in m.content and f"#{job.id}" in m.content,
            timeout=15,
        )
        assert not ever_posted(reel, f"clip #{job.id} for")

        while (finished := await finisher.finish_next()) is not None and finished.id != job.id:
            pass
        clip = await reel.clip_message(job.id)
        await fake.wait_for(
            lambda: (
                "is ready" in handle.original.content and str(clip.id) in handle.original.content
            ),
            timeout=15,
        )
    assert fake.rate_limits.stats().routes[PRIVATE_EDITS].served >= 3


async def test_the_private_reply_hands_over_before_its_token_expires(
    reel: Reel, finisher: QuickFinisher
) -> None:
    fake = reel.fake
    reel.settings.private_update_seconds = 0.5
    async with reel.bot_running() as bot:
        await queue_jobs(reel, 3)
        handle, job = await reel.create("a tide pool")
        # Discord lets the bot edit the reply for 15 minutes; make it 14.5 minutes old.
        bot.private_replies.clock = lambda: time.monotonic() + 14.5 * 60
        await finisher.finish_next()
        reply = await fake.wait_for(
            lambda: handle.original if "15 minutes" in handle.original.content else None,
            timeout=15,
        )
    assert "number 3 in line" in reply.content
    assert "queue board" in reply.content
    assert job.id not in bot.private_replies.replies


async def test_a_busy_channel_has_one_queue_board_that_goes_once_the_line_is_empty(
    reel: Reel, finisher: QuickFinisher
) -> None:
    fake = reel.fake
    jobs = await queue_jobs(reel, 9)
    async with reel.bot_running():
        board = await fake.wait_for_message(fake.general, lambda m: BOARD in m.content)
        assert "9 waiting" in board.content
        assert "+4 more" in board.content
        while await finisher.finish_next() is not None:
            pass
        for job in jobs:
            await reel.delivered(job.id)
        await fake.wait_for(lambda: fake.message(board.id).deleted, timeout=30)
    assert len(ever_posted(reel, BOARD, boards=True)) == 1
    assert len(reel.clip_messages()) == len(jobs)
    assert not on_the_channel(reel, " for <@")  # no status message left behind
    sends = fake.rate_limits.stats().channels[fake.general.id][CHANNEL_SENDS].served
    assert sends == len(jobs) + 1  # the clips and the board: no status message per job


async def test_a_storm_of_429s_loses_no_clip_and_posts_none_twice(
    reel: Reel, finisher: QuickFinisher
) -> None:
    fake = reel.fake
    jobs = await queue_jobs(reel, 8)
    async with reel.bot_running():
        storm = asyncio.create_task(keep_spending_the_channels_buckets(reel, seconds=4.0))
        for _ in jobs:
            await finisher.finish_next()
            await asyncio.sleep(0.2)  # a clip every 0.2 s, into the storm
        await storm
        for job in jobs:
            await reel.delivered(job.id)
        await fake.wait_for(
            lambda: all(
                fake.bot_user.id in fake.message(m.id).reaction_users("✉️")
                for m in reel.clip_messages()
            ),
            timeout=30,
        )
        await fake.wait_for(lambda: not on_the_channel(reel, BOARD), timeout=30)
    assert fake.rate_limits.stats().limited > 0
    for job in jobs:
        clips = [m for m in reel.clip_messages() if f"job:{job.id}:retry" in m.custom_ids()]
        assert len(clips) == 1, job.id
    assert not on_the_channel(reel, " for <@")  # no status message left behind


def on_the_channel(reel: Reel, text: str) -> list[Message]:
    return [m for m in reel.fake.channel_messages(reel.fake.general) if text in m.content]


async def keep_spending_the_channels_buckets(reel: Reel, *, seconds: float) -> None:
    """Another process on the bot's token writing to #general: 429s for the bot there."""
    limits = reel.fake.rate_limits
    for _ in range(int(seconds / 0.5)):
        for group in ("send", "edit", "delete", "reaction"):
            limits.exhaust(group, channel=reel.fake.general, for_s=0.8)
        await asyncio.sleep(0.5)
