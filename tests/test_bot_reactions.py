"""Reactions on a posted clip: 🔁 retry, ❌ delete (owner or moderator), ✉️ details by DM."""

from __future__ import annotations

import pytest

from jobqueue.models import Job, JobKind
from tests.bot_harness import Reel
from tests.fakediscord import Message


@pytest.fixture
async def posted(running_reel: Reel) -> tuple[Job, Message]:
    """A posted clip once the bot has offered its reactions, as a user first sees it."""
    fake = running_reel.fake
    _, job = await running_reel.create("a paper boat on a river", seed=3)
    message = await running_reel.clip_message(job.id)
    await fake.wait_for(lambda: fake.bot_user.id in fake.message(message.id).reaction_users("✉️"))
    return job, message


async def test_the_bot_offers_the_reactions(posted: tuple[Job, Message], reel: Reel) -> None:
    _, message = posted
    bot_id = reel.fake.bot_user.id
    current = reel.fake.message(message.id)
    assert all(bot_id in current.reaction_users(emoji) for emoji in ("🔁", "❌", "✉️"))


async def test_retry_reaction_makes_a_new_clip(posted: tuple[Job, Message], reel: Reel) -> None:
    parent, message = posted
    await reel.fake.react(message, "🔁", user=reel.fake.bob)
    await reel.fake.wait_for(lambda: len(reel.clip_messages()) == 2, timeout=120)
    jobs = await reel.queue.user_jobs(reel.fake.bob.id, active_only=False)
    assert [(job.kind, job.parent_id) for job in jobs] == [(JobKind.RETRY, parent.id)]


async def test_delete_reaction_by_the_owner_deletes(
    posted: tuple[Job, Message], reel: Reel
) -> None:
    _, message = posted
    await reel.fake.react(message, "❌", user=reel.fake.alice)
    await reel.fake.wait_for(lambda: reel.fake.message(message.id).deleted)


async def test_delete_reaction_by_someone_else_is_refused_by_dm(
    posted: tuple[Job, Message], reel: Reel
) -> None:
    fake = reel.fake
    _, message = posted
    await fake.react(message, "❌", user=fake.bob)
    dm = await fake.wait_for(lambda: fake.dms(fake.bob)[-1] if fake.dms(fake.bob) else None)
    assert "Only the person who asked" in dm.content
    assert not fake.message(message.id).deleted


async def test_envelope_reaction_sends_the_details_by_dm(
    posted: tuple[Job, Message], reel: Reel
) -> None:
    fake = reel.fake
    _, message = posted
    await fake.react(message, "✉️", user=fake.bob)
    dm = await fake.wait_for(lambda: fake.dms(fake.bob)[-1] if fake.dms(fake.bob) else None)
    embed = dm.embeds[0]
    fields = {field["name"]: field["value"] for field in embed["fields"]}
    assert embed["description"] == "a paper boat on a river"
    assert fields["Seed"] == "3"
    assert fields["Model"] == "tiny"
    assert "Rewritten prompt" in fields
