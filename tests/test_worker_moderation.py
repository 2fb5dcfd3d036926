"""The worker checks prompts against the blocklist right before generating."""

from __future__ import annotations

from dataclasses import replace

import pytest

from jobqueue.jobs import JobQueue
from jobqueue.models import Job, JobKind, JobRequest, JobStatus
from jobqueue.moderation import AuditAction, Moderation
from jobqueue.worker import Worker, WorkerConfig
from pipeline.clip import REWRITE_BLOCKED_NOTE
from pipeline.rewrite import RewriterConfig
from tests.conftest import ChatReply, FakeChatServer, default_scene

GUILD, USER, MOD = 1, 7, 99
PROMPT = "a paper boat drifting down a river"


@pytest.fixture
def worker_config(worker_config: WorkerConfig, chat_server: FakeChatServer) -> WorkerConfig:
    return replace(
        worker_config,
        rewriter=RewriterConfig(
            backend="openai", openai_base_url=chat_server.base_url, openai_model="scene-writer"
        ),
        lease_seconds=2.0,
        progress_interval_s=2.0,
    )


async def run_one(queue: JobQueue, config: WorkerConfig, prompt: str = PROMPT) -> Job:
    job = await queue.submit(
        JobKind.CREATE, JobRequest(prompt=prompt), user_id=USER, guild_id=GUILD, channel_id=2
    )
    await Worker(queue.db.path, config=config, worker_id="test-worker").run(burst=True)
    done = await queue.get(job.id)
    assert done is not None
    return done


async def test_an_allowed_rewrite_is_used(
    job_queue: JobQueue, worker_config: WorkerConfig, chat_server: FakeChatServer
) -> None:
    done = await run_one(job_queue, worker_config)
    assert done.status is JobStatus.DONE, done.error_detail
    assert done.rewritten_prompt == default_scene(PROMPT)
    assert done.rewrite_note is None


async def test_a_blocked_rewrite_is_replaced_by_the_users_words(
    job_queue: JobQueue, worker_config: WorkerConfig, chat_server: FakeChatServer
) -> None:
    moderation = Moderation(job_queue.db)
    await moderation.blocklist_add(GUILD, "zorblax", actor_id=MOD, category="made-up things")
    chat_server.script(ChatReply(content=default_scene(PROMPT) + " A zorblax watches."))

    done = await run_one(job_queue, worker_config)
    assert done.status is JobStatus.DONE, done.error_detail
    assert done.rewritten_prompt is None
    assert done.rewrite_note == REWRITE_BLOCKED_NOTE
    actions = await moderation.recent_actions(GUILD)
    blocked = [entry for entry in actions if entry.action == AuditAction.REWRITE_BLOCKED]
    assert [(entry.target_user_id, entry.target_job_id) for entry in blocked] == [(USER, done.id)]


async def test_a_prompt_blocked_after_it_was_queued_fails(
    job_queue: JobQueue, worker_config: WorkerConfig
) -> None:
    moderation = Moderation(job_queue.db)
    await moderation.blocklist_add(GUILD, "paper boat", actor_id=MOD, category="boats")
    done = await run_one(job_queue, worker_config)
    assert done.status is JobStatus.FAILED
    assert done.error == "This prompt is not allowed on this server (boats)."
