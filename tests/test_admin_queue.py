"""Queue control end to end: pause/resume around a running job, cancel, delete, limits, stats."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

from jobqueue.models import Job, JobStatus
from jobqueue.moderation import AuditAction
from jobqueue.worker import Worker
from pipeline.rewrite import RewriterConfig
from tests.bot_harness import Reel, worker_config
from tests.conftest import ChatReply, FakeChatServer
from tests.fakediscord import FakeDiscord, Message, User


async def admin(fake: FakeDiscord, command: str, **options: object) -> Message:
    handle = await fake.invoke(f"admin {command}", dict(options), user=fake.carol)
    return await handle.response()


async def create(fake: FakeDiscord, user: User, prompt: str) -> str:
    handle = await fake.invoke("create", {"prompt": prompt}, user=user)
    return (await handle.response()).content


def stalling_worker(reel: Reel, chat_server: FakeChatServer) -> Worker:
    """A worker whose first prompt rewrite hangs until ``chat_server.release`` is set:
    its job stays running for as long as a test needs."""
    chat_server.script(ChatReply(hang=True))
    config = replace(
        worker_config(reel.settings),
        rewriter=RewriterConfig(
            backend="openai", openai_base_url=chat_server.base_url, openai_model="scene-writer"
        ),
    )
    return Worker(reel.settings.database_path, config=config, worker_id="stalling")


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[None]:
    task = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        worker.stop()
        await asyncio.wait_for(task, 60)


def files_exist(job: Job) -> tuple[bool, bool]:
    """Whether the job's clip and its poster are on disk."""
    assert job.result_path is not None
    clip = Path(job.result_path)
    return clip.exists(), clip.with_suffix(".jpg").exists()


async def test_pause_lets_the_running_job_finish_and_starts_nothing_new(
    admin_reel: Reel, chat_server: FakeChatServer
) -> None:
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running():
        first_handle = await fake.invoke("create", {"prompt": "a paper boat"}, user=fake.alice)
        first = await reel.job_of(first_handle)
        async with running(stalling_worker(reel, chat_server)):
            await chat_server.received.wait()  # the first job is running, stuck rewriting
            second_handle = await fake.invoke("create", {"prompt": "a kite"}, user=fake.bob)
            second = await reel.job_of(second_handle)

            paused = await admin(fake, "queue pause")
            assert paused.content.startswith("The queue is paused")
            assert "paused" in await create(fake, fake.user("erin"), "a lighthouse")
            stats = (await admin(fake, "stats")).embeds[0]
            queue_field = next(f for f in stats["fields"] if f["name"] == "Queue")
            assert queue_field["value"] == "1 waiting · 1 running · ⏸️ paused"

            chat_server.release.set()
            finished = await reel.delivered(first.id)
            assert finished.status is JobStatus.DONE
        # With the queue paused, a worker finds nothing to start.
        await Worker(
            reel.settings.database_path, config=worker_config(reel.settings), worker_id="idle"
        ).run(burst=True)
        waiting = await reel.queue.get(second.id)
        assert waiting is not None
        assert waiting.status is JobStatus.QUEUED

        resumed = await admin(fake, "queue resume")
        assert resumed.content == "The queue is running again."
        await Worker(
            reel.settings.database_path, config=worker_config(reel.settings), worker_id="after"
        ).run(burst=True)
        done = await reel.delivered(second.id)
    assert done.status is JobStatus.DONE
    actions = [entry.action for entry in await reel.moderation.recent_actions(fake.guild.id)]
    assert actions == [AuditAction.QUEUE_RESUME, AuditAction.QUEUE_PAUSE]


async def test_cancel_stops_a_running_job(admin_reel: Reel, chat_server: FakeChatServer) -> None:
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running():
        job = await reel.job_of(await fake.invoke("create", {"prompt": "a boat"}, user=fake.alice))
        async with running(stalling_worker(reel, chat_server)):
            await chat_server.received.wait()
            answer = await admin(fake, "cancel", job=job.id)
            assert answer.content == f"Job #{job.id} stops at its next step."
            chat_server.release.set()
            stopped = await reel.delivered(job.id)
        missing = await admin(fake, "cancel", job=9999)
    assert stopped.status is JobStatus.CANCELLED
    assert missing.content == "There is no job #9999 in this server."
    (entry,) = await reel.moderation.recent_actions(fake.guild.id)
    assert (entry.action, entry.target_user_id, entry.target_job_id) == (
        AuditAction.JOB_CANCEL,
        fake.alice.id,
        job.id,
    )


async def test_delete_removes_the_posted_clip_its_status_and_files(admin_reel: Reel) -> None:
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running(), reel.worker_running():
        _, job = await reel.create("a red balloon")
        clip = await reel.clip_message(job.id)
        delivered = await reel.delivered(job.id)
        assert files_exist(delivered) == (True, True)

        stats = (await admin(fake, "stats")).embeds[0]
        answer = await admin(fake, "delete", job=job.id)
        gone = await fake.wait_for(lambda: fake.message(clip.id).deleted)

    assert answer.content == f"Deleted job #{job.id}: its messages and files are gone."
    assert gone
    assert delivered.status_message_id is not None
    assert fake.message(delivered.status_message_id).deleted
    assert files_exist(delivered) == (False, False)
    (entry,) = await reel.moderation.recent_actions(fake.guild.id)
    assert (entry.action, entry.actor_id, entry.target_job_id) == (
        AuditAction.JOB_DELETE,
        fake.carol.id,
        job.id,
    )
    fields = {field["name"]: field["value"] for field in stats["fields"]}
    assert fields["Jobs today"] == "1 done · 0 failed · 0 cancelled"
    assert fields["Average time per clip"].endswith(" s")
    assert fields["Queue"] == "0 waiting · 0 running"
    assert "test-worker-0" in fields["Workers"]


def files_in(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir() if path.is_file()}


async def test_delete_of_a_refitted_clip_leaves_none_of_its_files(admin_reel: Reel) -> None:
    """A clip re-encoded for a smaller upload limit has a second clip and poster on disk."""
    reel, fake = admin_reel, admin_reel.fake
    clips_dir = reel.settings.clips_dir
    async with reel.bot_running(), reel.worker_running():
        _, first = await reel.create("a busy market street", seed=5)
        full_size = (await reel.clip_message(first.id)).attachments[0].size
        limit = full_size * 3 // 4
        fake.set_upload_limit(limit)
        _, refitted = await reel.create("a busy market street", seed=5)
        await reel.clip_message(refitted.id)
        await reel.delivered(refitted.id)
        first_files = {f"{first.id}.mp4", f"{first.id}.jpg"}
        refitted_files = {
            f"{refitted.id}.mp4",
            f"{refitted.id}.jpg",
            f"{refitted.id}.fit-{limit}.mp4",
            f"{refitted.id}.fit-{limit}.jpg",
        }
        assert files_in(clips_dir) == first_files | refitted_files

        answer = await admin(fake, "delete", job=refitted.id)

    assert answer.content == f"Deleted job #{refitted.id}: its messages and files are gone."
    assert files_in(clips_dir) == first_files


async def test_delete_before_delivery_means_the_clip_is_never_posted(admin_reel: Reel) -> None:
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running():
        job = await reel.job_of(await fake.invoke("create", {"prompt": "a kite"}, user=fake.alice))
        answer = await admin(fake, "delete", job=job.id)
        assert answer.content.startswith(f"Deleted job #{job.id}")
        await Worker(
            reel.settings.database_path, config=worker_config(reel.settings), worker_id="w"
        ).run(burst=True)
    cancelled = await reel.queue.get(job.id)
    assert cancelled is not None
    assert cancelled.status is JobStatus.CANCELLED
    assert reel.clip_messages() == []


async def test_limits_apply_to_the_next_submission(admin_reel: Reel) -> None:
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running():
        answer = await admin(fake, "limits set", user=fake.alice, waiting=1)
        assert answer.content == (
            f"<@{fake.alice.id}> may now have 1 clip waiting and 1 running at once, no daily limit."
        )
        assert "Queued" in await create(fake, fake.alice, "a boat")
        refused = await create(fake, fake.alice, "another boat")
        assert refused.startswith("You already have 1 clip waiting")
        # Others keep the server's limits until those change too.
        assert "Queued" in await create(fake, fake.bob, "a boat")
        assert "Queued" in await create(fake, fake.bob, "another boat")
        everyone = await admin(fake, "limits set", daily=2)
        assert everyone.content.endswith("2 clips a day.")
        daily = await create(fake, fake.bob, "a third boat")
        assert daily.startswith("You have reached this server's limit of 2 clips a day")
        nothing = await admin(fake, "limits set", user=fake.bob)
    assert nothing.content == "Give at least one of waiting, running or daily."
    entries = await reel.moderation.recent_actions(fake.guild.id)
    assert [(entry.action, entry.target_user_id, entry.detail) for entry in entries] == [
        (AuditAction.LIMITS_SET, None, "daily 2"),
        (AuditAction.LIMITS_SET, fake.alice.id, "waiting 1"),
    ]


async def test_clear_cancels_waiting_jobs(admin_reel: Reel) -> None:
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running():
        for user in (fake.alice, fake.alice, fake.bob):
            assert "Queued" in await create(fake, user, "a boat")
        only_alice = await admin(fake, "queue clear", user=fake.alice)
        rest = await admin(fake, "queue clear")
    assert only_alice.content == f"Cancelled 2 waiting clips of <@{fake.alice.id}>."
    assert rest.content == "Cancelled 1 waiting clip."
    assert await reel.queue.user_jobs(fake.bob.id) == []
