"""/queue, /cancel, /settings, /info and /help, as a user sees them (all private)."""

from __future__ import annotations

from jobqueue.models import JobStatus
from tests.bot_harness import Reel


async def test_queue_lists_your_clips_with_their_place(reel: Reel) -> None:
    fake = reel.fake
    async with reel.bot_running():
        await reel.create("first", user=fake.bob)
        await reel.create("mine", user=fake.alice)
        handle = await fake.invoke("queue", user=fake.alice)
        answer = await handle.response()
    assert handle.ephemeral
    lines = answer.content.splitlines()
    assert lines[0] == "The queue has 2 waiting and 0 running."
    assert "number 2 in line" in lines[1]
    assert lines[1].endswith("— mine")


async def test_cancel_a_waiting_clip(reel: Reel) -> None:
    fake = reel.fake
    async with reel.bot_running():
        _, job = await reel.create("a cat")
        status = await fake.wait_for_message(fake.general, lambda m: f"#{job.id}" in m.content)
        handle = await fake.invoke("cancel", user=fake.alice)
        assert (await handle.response()).content == f"Cancelled clip #{job.id}."
        await fake.wait_for(lambda: "was cancelled" in fake.message(status.id).content)
    cancelled = await reel.queue.get(job.id)
    assert cancelled is not None
    assert cancelled.status is JobStatus.CANCELLED


async def test_cancel_suggests_your_jobs_and_refuses_others(reel: Reel) -> None:
    fake = reel.fake
    async with reel.bot_running():
        _, job = await reel.create("a cat")
        suggestions = await fake.autocomplete("cancel", {"job": ""}, focused="job", user=fake.alice)
        await fake.wait_for(lambda: suggestions.choices is not None)
        assert [choice["value"] for choice in suggestions.choices or []] == [job.id]
        handle = await fake.invoke("cancel", {"job": job.id}, user=fake.bob)
        answer = await handle.response()
    assert (
        answer.content == "Only the person who asked for this clip, or a moderator, can cancel it."
    )
    still = await reel.queue.get(job.id)
    assert still is not None
    assert still.status is JobStatus.QUEUED


async def test_settings_become_the_defaults_of_new_clips(reel: Reel) -> None:
    fake = reel.fake
    async with reel.bot_running():
        handle = await fake.invoke(
            "settings", {"aspect": "9:16", "enhance": False}, user=fake.alice
        )
        assert (await handle.response()).content.startswith("Saved. Your new clips are 9:16")
        _, job = await reel.create("a cat")
    assert (job.request.aspect, job.request.enhance) == ("9:16", False)


async def test_info_tells_usage_and_limits(reel: Reel) -> None:
    fake = reel.fake
    async with reel.bot_running():
        await reel.create("a cat")
        handle = await fake.invoke("info", user=fake.alice)
        answer = await handle.response()
    assert answer.content == (
        "In the last 24 hours you asked for 1 clips (no daily limit). You have 1 waiting"
        " (up to 5) and 0 being made (up to 1 at once)."
    )


async def test_help_explains_commands_buttons_and_reactions(reel: Reel) -> None:
    fake = reel.fake
    async with reel.bot_running():
        handle = await fake.invoke("help", user=fake.alice)
        answer = await handle.response()
    assert handle.ephemeral
    names = [field["name"] for field in answer.embeds[0]["fields"]]
    assert "/create prompt" in names
    assert "Reactions on a clip" in names
