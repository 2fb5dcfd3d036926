"""The buttons under a posted clip: each makes the right job, recorded as the clip's child."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobqueue.models import Job, JobKind
from tests.bot_harness import Reel, probe_mp4
from tests.broker_harness import BOTH_MODES
from tests.fakediscord import Message


@pytest.fixture
async def posted(running_reel: Reel) -> tuple[Job, Message]:
    """Alice's finished clip of "a lighthouse at dusk" (seed 11, negative "fog")."""
    _, job = await running_reel.create("a lighthouse at dusk", seed=11, negative="fog")
    return job, await running_reel.clip_message(job.id)


async def click_for_job(reel: Reel, message: Message, action: str, parent: Job) -> Job:
    handle = await reel.fake.click(message, f"job:{parent.id}:{action}", user=reel.fake.bob)
    child = await reel.job_of(handle)
    assert handle.ephemeral
    return child


@pytest.mark.parametrize("reel_mode", BOTH_MODES, indirect=True)
async def test_retry_makes_a_new_clip_with_a_new_seed(
    running_reel: Reel, posted: tuple[Job, Message]
) -> None:
    parent, message = posted
    child = await click_for_job(running_reel, message, "retry", parent)
    assert (child.kind, child.parent_id, child.user_id) == (
        JobKind.RETRY, parent.id, running_reel.fake.bob.id,
    )  # fmt: skip
    assert child.request.seed is None
    await running_reel.clip_message(child.id)


async def test_hd_keeps_the_seed_and_renders_larger(
    running_reel: Reel, posted: tuple[Job, Message], tmp_path: Path
) -> None:
    parent, message = posted
    child = await click_for_job(running_reel, message, "hd", parent)
    assert (child.kind, child.request.hd, child.request.seed) == (JobKind.HD, True, 11)
    clip = await running_reel.clip_message(child.id)
    facts = probe_mp4(clip.attachments[0].data, tmp_path)
    assert facts.width > 112
    assert f"job:{child.id}:hd" not in clip.custom_ids()


@pytest.mark.parametrize("reel_mode", BOTH_MODES, indirect=True)
async def test_extend_joins_new_frames_to_the_clip(
    running_reel: Reel, posted: tuple[Job, Message], tmp_path: Path
) -> None:
    parent, message = posted
    child = await click_for_job(running_reel, message, "extend", parent)
    assert (child.kind, child.parent_id) == (JobKind.EXTEND, parent.id)
    clip = await running_reel.clip_message(child.id)
    assert probe_mp4(clip.attachments[0].data, tmp_path).frames > 9


async def test_remix_opens_a_prefilled_modal_and_queues_the_edit(
    running_reel: Reel, posted: tuple[Job, Message]
) -> None:
    fake = running_reel.fake
    parent, message = posted
    opened = await fake.click(message, f"job:{parent.id}:remix", user=fake.alice)
    modal = await opened.modal_opened()
    defaults = {
        row["components"][0]["label"]: row["components"][0].get("value")
        for row in modal["components"]
        if row["type"] == 1  # the text inputs; the camera menu is in tests/test_bot_camera.py
    }
    assert defaults == {"Prompt": "a lighthouse at dusk", "Negative prompt (what to avoid)": "fog"}

    prompt_id = modal["components"][0]["components"][0]["custom_id"]
    submitted = await fake.submit_modal(opened, {prompt_id: "a lighthouse in a storm"})
    child = await running_reel.job_of(submitted)
    assert (child.kind, child.parent_id) == (JobKind.REMIX, parent.id)
    assert (child.request.prompt, child.request.negative_prompt) == (
        "a lighthouse in a storm",
        "fog",
    )
    assert child.request.seed == 11
    await running_reel.clip_message(child.id)


async def test_the_owner_can_delete_their_clip(
    running_reel: Reel, posted: tuple[Job, Message]
) -> None:
    fake = running_reel.fake
    parent, message = posted
    handle = await fake.click(message, f"job:{parent.id}:delete", user=fake.alice)
    assert "Deleted" in (await handle.response()).content
    assert fake.message(message.id).deleted


async def test_another_user_cannot_delete_a_clip(
    running_reel: Reel, posted: tuple[Job, Message]
) -> None:
    fake = running_reel.fake
    parent, message = posted
    handle = await fake.click(message, f"job:{parent.id}:delete", user=fake.bob)
    assert "Only the person who asked" in (await handle.response()).content
    assert handle.ephemeral
    assert not fake.message(message.id).deleted


async def test_a_forged_administrator_cannot_delete_a_clip(
    running_reel: Reel, posted: tuple[Job, Message]
) -> None:
    fake = running_reel.fake
    parent, message = posted
    handle = await fake.click(
        message, f"job:{parent.id}:delete", user=fake.bob, forge_member={"permissions": "8"}
    )
    assert "Only the person who asked" in (await handle.response()).content
    assert not fake.message(message.id).deleted


async def test_a_moderator_can_delete_anyones_clip(
    running_reel: Reel, posted: tuple[Job, Message]
) -> None:
    fake = running_reel.fake
    parent, message = posted
    handle = await fake.click(message, f"job:{parent.id}:delete", user=fake.carol)
    await handle.response()
    assert fake.message(message.id).deleted
    actions = await running_reel.moderation.recent_actions(fake.guild.id)
    assert actions[0].target_job_id == parent.id


async def test_the_guilds_moderator_role_may_delete_anyones_clip(
    running_reel: Reel, posted: tuple[Job, Message]
) -> None:
    fake = running_reel.fake
    parent, message = posted
    moderators = fake.role("Moderators")
    await running_reel.moderation.set_mod_role(fake.guild.id, moderators.id, actor_id=fake.carol.id)
    handle = await fake.click(message, f"job:{parent.id}:delete", user=fake.dave)
    await handle.response()
    assert fake.message(message.id).deleted
