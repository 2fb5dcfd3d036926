"""Scenes written ahead, through the real bot against the fake Discord (its rate limits on):
each waiting job's status message (or, in a busy channel, its requester's private reply)
shows the scene with an Edit scene button that only the job's owner may use, before the clip
starts; an edited scene is checked like a prompt and is what the model renders."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from bot import render
from bot.render import escape
from jobqueue.jobs import QueuePosition
from jobqueue.models import Job, JobRequest, JobStatus
from jobqueue.scene_writer import SceneWriter
from jobqueue.scenes import Scene, Scenes, SceneState
from pipeline.clip import ModelChoice
from pipeline.text import MAX_PROMPT_CHARS
from tests.bot_harness import Reel, make_job
from tests.fakediscord import InteractionHandle, Message, User
from tests.fakellm import scene_for
from tests.scene_writing import SlowRewriter, scene_writer_running

EDITED = "A paper boat drifting down a rain-soaked street at night, neon reflections."
SCENE_SHOWN_S = 30.0


def scene_writer(reel: Reel, rewriter: SlowRewriter) -> AbstractAsyncContextManager[SceneWriter]:
    """A scene writer on the bot's queue, in this process, until the block ends."""
    settings = reel.settings
    models = ModelChoice(models_dir=settings.models_dir, t2v_model="tiny", i2v_model="tiny-i2v")
    return scene_writer_running(
        settings.database_path, clips_dir=settings.clips_dir, models=models, rewriter=rewriter
    )


def button(job: Job) -> str:
    return f"scene:{job.id}:edit"


async def status_with(reel: Reel, job: Job, text: str) -> Message:
    """The job's status message once it shows ``text``."""
    return await reel.fake.wait_for_message(
        reel.fake.general,
        lambda m: f"#{job.id} for" in m.content and escape(text) in m.content,
        timeout=SCENE_SHOWN_S,
    )


async def open_editor(reel: Reel, message: Message, job: Job, user: User) -> InteractionHandle:
    return await reel.fake.click(message, button(job), user=user)


def scene_input(modal: dict[str, Any]) -> dict[str, Any]:
    component: dict[str, Any] = modal["components"][0]["components"][0]
    return component


async def submit_scene(reel: Reel, opened: InteractionHandle, text: str) -> str:
    modal = await opened.modal_opened()
    submitted = await reel.fake.submit_modal(opened, {scene_input(modal)["custom_id"]: text})
    return (await submitted.response(timeout=10)).content


async def test_the_status_shows_each_waiting_scene_and_the_owners_edit_is_rendered(
    reel: Reel,
) -> None:
    fake = reel.fake
    reel.settings.queue_board_from_jobs = 100  # every job keeps a status message of its own
    await reel.moderation.blocklist_add(fake.guild.id, "wombat", actor_id=fake.carol.id)
    async with reel.bot_running(), scene_writer(reel, SlowRewriter(0.5)):
        jobs = [
            (await reel.create("a lighthouse at dusk"))[1],
            (await reel.create("a kite on a hill", user=fake.bob))[1],
            (await reel.create("a red balloon over a city"))[1],
        ]
        statuses = [await status_with(reel, job, scene_for(job.request.prompt)) for job in jobs]
        assert all(
            button(job) in status.custom_ids() for job, status in zip(jobs, statuses, strict=True)
        )
        lighthouse, status = jobs[0], statuses[0]

    # The scene and its button outlive a restart of the bot.
    async with reel.bot_running():
        for user in (fake.bob, fake.carol):  # someone else; a moderator
            refused = await open_editor(reel, status, lighthouse, user)
            assert "Only the person who asked" in (await refused.response()).content
            assert refused.modal is None

        opened = await open_editor(reel, status, lighthouse, fake.alice)
        modal = await opened.modal_opened()
        assert scene_input(modal)["value"] == scene_for("a lighthouse at dusk")
        answer = await submit_scene(reel, opened, "A wombat guards the lighthouse.")
        assert "Your scene was refused" in answer

        opened = await open_editor(reel, status, lighthouse, fake.alice)
        assert "will be made from your scene" in await submit_scene(reel, opened, EDITED)
        edited = await status_with(reel, lighthouse, EDITED)
        assert "as its owner wrote it" in edited.content

        async with reel.worker_running():
            clip = await reel.clip_message(lighthouse.id)
            done = [await reel.delivered(job.id) for job in jobs]

    rewritten = clip.embeds[0]["fields"][0]
    assert (rewritten["name"], rewritten["value"]) == ("Rewritten prompt", escape(EDITED))
    assert [job.rewritten_prompt for job in done] == [
        EDITED, scene_for("a kite on a hill"), scene_for("a red balloon over a city"),
    ]  # fmt: skip
    refusals = await reel.moderation.recent_actions(fake.guild.id, user_id=fake.alice.id)
    assert [entry.action for entry in refusals] == ["refusal"]


async def test_once_the_job_starts_its_scene_can_no_longer_change(reel: Reel) -> None:
    fake = reel.fake
    async with reel.bot_running(), scene_writer(reel, SlowRewriter(0.1)):
        _, job = await reel.create("a tide pool at low tide")
        status = await status_with(reel, job, scene_for("a tide pool at low tide"))
        opened = await open_editor(reel, status, job, fake.alice)
        await opened.modal_opened()

        # A worker takes the job while the owner is still typing.
        claimed = await reel.queue.claim("elsewhere", lease_seconds=60.0)
        assert claimed is not None
        assert claimed.id == job.id
        assert "already started" in await submit_scene(reel, opened, EDITED)
        # The status message says it is being made, and offers no edit any more.
        running = await fake.wait_for_message(
            fake.general,
            lambda m: m.id == status.id and "🎨" in m.content and not m.custom_ids(),
            timeout=SCENE_SHOWN_S,
        )
        assert scene_for("a tide pool at low tide") not in running.content
    scene = await Scenes(reel.queue.db).get(job.id)
    assert scene is not None
    assert scene.text == scene_for("a tide pool at low tide")


async def test_in_a_busy_channel_the_private_reply_shows_the_scene_and_the_button(
    reel: Reel,
) -> None:
    fake = reel.fake
    reel.settings.queue_board_from_jobs = 1  # every job goes on the queue board
    reel.settings.private_update_seconds = 0.5
    async with reel.bot_running(), scene_writer(reel, SlowRewriter(0.1)):
        handle, job = await reel.create("a snowy owl at dawn")
        scene = escape(scene_for("a snowy owl at dawn"))
        reply = await fake.wait_for(
            lambda: (
                handle.original
                if handle.original is not None and scene in handle.original.content
                else None
            ),
            timeout=SCENE_SHOWN_S,
        )
        assert reply.ephemeral
        assert button(job) in reply.custom_ids()

        opened = await open_editor(reel, reply, job, fake.alice)
        assert "will be made from your scene" in await submit_scene(reel, opened, EDITED)
        await fake.wait_for(
            lambda: escape(EDITED) in handle.original.content if handle.original else None,
            timeout=SCENE_SHOWN_S,
        )
        async with reel.worker_running():
            done = await reel.delivered(job.id)
        # Once the clip is up, the reply links to it and offers nothing more to press.
        await fake.wait_for(
            lambda: handle.original is not None and not handle.original.custom_ids(),
            timeout=SCENE_SHOWN_S,
        )
    assert done.status is JobStatus.DONE
    assert done.rewritten_prompt == EDITED


def test_a_long_scene_is_cut_to_fit_a_message_and_pings_nobody() -> None:
    job = make_job(status=JobStatus.QUEUED, request=JobRequest(prompt="p" * MAX_PROMPT_CHARS))
    place = QueuePosition(position=2, waiting_total=9, eta_seconds=300.0)
    scene = Scene(job.id, SceneState.EDITED, text="@everyone **" + "a long scene " * 200)
    for text in (render.status_line(job, place, scene), render.private_line(job, place, scene)):
        assert len(text) <= render.CONTENT_LIMIT
        assert "as its owner wrote it" in text
        assert "@everyone" not in text
        assert text.endswith("…")
    fallback = Scene(job.id, SceneState.READY, reason="timeout")
    assert "the prompt as written (timeout)" in render.status_line(job, place, fallback)
    running = make_job(status=JobStatus.RUNNING)
    assert "Scene" not in render.status_line(running, None, scene)
