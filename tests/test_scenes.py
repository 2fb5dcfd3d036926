"""Scenes written ahead: in the order jobs will run, under leases, screened, and editable by
the job's owner alone until the job starts."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobqueue.errors import NotAllowed, QueueError
from jobqueue.jobs import JobQueue
from jobqueue.models import Job, JobKind, JobRequest
from jobqueue.moderation import AuditAction, Moderation
from jobqueue.scene_writer import REWRITE_BLOCKED, SceneWriter, SceneWriterConfig
from jobqueue.scenes import Scene, Scenes, SceneState, inherit_scene, scene_for_worker
from jobqueue.settings import CoreSettings
from jobqueue.supervisor import WorkerSupervisor
from pipeline.clip import ModelChoice
from pipeline.errors import GenerationCancelled
from pipeline.rewrite import RewriterConfig, RewriteResult
from tests.conftest import ManualClock
from tests.fakellm import FakeLlamaServer, scene_for, serving
from tests.scene_writing import SlowRewriter

GUILD = 1
LEASE = 30.0


async def submit(queue: JobQueue, prompt: str, *, user_id: int = 7, enhance: bool = True) -> Job:
    return await queue.submit(
        JobKind.CREATE,
        JobRequest(prompt=prompt, enhance=enhance),
        user_id=user_id,
        guild_id=GUILD,
        channel_id=2,
    )


async def write_all(scenes: Scenes, writer_id: str = "w1") -> list[int]:
    """Claim and store every scene that is wanted, as a writer would; the job ids in order."""
    written = []
    while (job := await scenes.claim_next(writer_id, lease_seconds=LEASE)) is not None:
        scene = Scene(job.id, SceneState.READY, text=f"scene of {job.request.prompt}")
        assert await scenes.store(writer_id, scene)
        written.append(job.id)
    return written


async def run_order(queue: JobQueue) -> list[int]:
    """The order a worker takes the waiting jobs in (each one ended as soon as it starts)."""
    order = []
    while (job := await queue.claim("gpu", lease_seconds=LEASE)) is not None:
        await queue.fail(job.id, "gpu", error="ended by the test", error_detail="")
        order.append(job.id)
    return order


@pytest.fixture
def scenes(job_queue: JobQueue) -> Scenes:
    return Scenes(job_queue.db)


async def test_scenes_are_written_in_the_order_the_jobs_will_run(
    job_queue: JobQueue, scenes: Scenes
) -> None:
    # One user with three clips waiting, two with one each, and a clip nobody wants rewritten.
    jobs = [await submit(job_queue, f"clip {n}", user_id=1) for n in range(3)]
    jobs += [await submit(job_queue, "clip of user 2", user_id=2)]
    unwritten = await submit(job_queue, "as I typed it", user_id=3, enhance=False)
    jobs += [await submit(job_queue, "clip of user 4", user_id=4)]

    written = await write_all(scenes)

    assert unwritten.id not in written
    assert written == [job_id for job_id in await run_order(job_queue) if job_id in written]
    assert written[:3] == [jobs[0].id, jobs[3].id, jobs[4].id]  # round-robin, not age


async def test_a_running_job_whose_worker_waits_is_written_first(
    job_queue: JobQueue, scenes: Scenes
) -> None:
    await submit(job_queue, "waiting, older", user_id=1)
    urgent = await job_queue.submit(
        JobKind.CREATE, JobRequest(prompt="urgent"), user_id=2, guild_id=GUILD, channel_id=2,
        priority=5,
    )  # fmt: skip
    running = await job_queue.claim("gpu", lease_seconds=LEASE)
    assert running is not None
    assert running.id == urgent.id

    first = await scenes.claim_next("w1", lease_seconds=LEASE)
    assert first is not None
    assert first.id == urgent.id


async def test_a_claim_that_runs_out_goes_to_another_writer(
    job_queue: JobQueue, clock: ManualClock
) -> None:
    scenes = Scenes(job_queue.db, clock=clock)
    job = await submit(job_queue, "a lighthouse")
    for writer_id in ("w1", "w2"):
        await scenes.register_writer(writer_id, lease_seconds=LEASE)
    assert await scenes.claim_next("w1", lease_seconds=LEASE) is not None
    clock.advance(LEASE / 2)
    for writer_id in ("w1", "w2"):  # heartbeats: w1 keeps its claim
        await scenes.writer_seen(writer_id, lease_seconds=LEASE)
    clock.advance(LEASE * 0.9)
    assert await scenes.claim_next("w2", lease_seconds=LEASE) is None
    assert await scenes.writers_alive() == 2

    clock.advance(LEASE)  # w1 died: neither its claim nor its liveness lasts
    assert await scenes.writers_alive() == 0
    await scenes.writer_seen("w2", lease_seconds=LEASE)
    taken = await scenes.claim_next("w2", lease_seconds=LEASE)
    assert taken is not None
    assert taken.id == job.id
    assert not await scenes.store("w1", Scene(job.id, SceneState.READY, text="late"))
    assert await scenes.store("w2", Scene(job.id, SceneState.READY, text="in time"))
    stored = await scenes.get(job.id)
    assert stored is not None
    assert (stored.state, stored.text) == (SceneState.READY, "in time")


async def test_a_writer_that_stops_hands_its_scenes_back(
    job_queue: JobQueue, scenes: Scenes
) -> None:
    job = await submit(job_queue, "a lighthouse")
    await scenes.register_writer("w1", lease_seconds=LEASE)
    await scenes.claim_next("w1", lease_seconds=LEASE)
    await scenes.writer_stopped("w1")
    assert await scenes.writers_alive() == 0
    taken = await scenes.claim_next("w2", lease_seconds=LEASE)
    assert taken is not None
    assert taken.id == job.id


async def test_only_the_owner_edits_and_only_before_the_job_starts(
    job_queue: JobQueue, scenes: Scenes
) -> None:
    job = await submit(job_queue, "a lighthouse", user_id=7)
    assert await scenes.claim_next("w1", lease_seconds=LEASE) is not None
    with pytest.raises(NotAllowed, match="Only the person who asked"):
        await scenes.edit(job.id, user_id=8, text="mine now")
    before = (await job_queue.get(job.id)).version  # type: ignore[union-attr]

    edited = await scenes.edit(job.id, user_id=7, text="A red lighthouse in a storm.")

    assert (edited.state, edited.text, edited.backend) == (
        SceneState.EDITED, "A red lighthouse in a storm.", "owner",
    )  # fmt: skip
    # The bot sees the change in its change stream.
    assert (await job_queue.get(job.id)).version > before  # type: ignore[union-attr]
    # The writer that was still at it stores nothing over the owner's scene.
    assert not await scenes.store("w1", Scene(job.id, SceneState.READY, text="the writer's"))
    assert (await scenes.get(job.id)) == edited

    await job_queue.claim("gpu", lease_seconds=LEASE)
    with pytest.raises(QueueError, match="already started"):
        await scenes.edit(job.id, user_id=7, text="too late")


async def test_a_scene_taken_from_drafts_replaces_a_claim_but_never_a_settled_scene(
    job_queue: JobQueue, scenes: Scenes
) -> None:
    claimed = await submit(job_queue, "a lighthouse", user_id=7)
    assert await scenes.claim_next("w1", lease_seconds=LEASE) is not None
    edited = await submit(job_queue, "a harbour", user_id=7)
    await scenes.edit(edited.id, user_id=7, text="The owner's harbour.")

    before = (await job_queue.get(claimed.id)).version  # type: ignore[union-attr]

    assert await inherit(job_queue, claimed.id, "The drafts' lighthouse.")
    assert not await inherit(job_queue, edited.id, "The drafts' harbour.")

    taken = await scenes.get(claimed.id)
    assert taken is not None
    assert (taken.state, taken.text, taken.backend) == (
        SceneState.READY, "The drafts' lighthouse.", "drafts",
    )  # fmt: skip
    # The writer that had claimed it stores nothing over it.
    assert not await scenes.store("w1", Scene(claimed.id, SceneState.READY, text="the writer's"))
    assert (await scenes.get(edited.id)).text == "The owner's harbour."  # type: ignore[union-attr]
    # The bot sees the change in its change stream.
    assert (await job_queue.get(claimed.id)).version > before  # type: ignore[union-attr]


async def inherit(queue: JobQueue, job_id: int, text: str) -> bool:
    """A drafts scene written as the bot writes it (there, in the write that adds the job)."""
    return await queue.db.write(
        lambda db: inherit_scene(db, job_id, text=text, backend="drafts", now=time.time())
    )


async def test_a_worker_uses_a_settled_scene_and_waits_only_for_a_live_writer(
    job_queue: JobQueue, scenes: Scenes
) -> None:
    waits: list[str] = []

    async def on_wait() -> None:
        waits.append("waited")

    async def hand_off(job: Job, *, wait_s: float = 5.0, stop: bool = False) -> object:
        return await scene_for_worker(
            scenes, job, wait_s=wait_s, should_stop=lambda: stop, on_wait=on_wait, poll_s=0.01
        )

    # No scene writer runs: the worker rewrites itself, and no writer takes the job up later.
    alone = await submit(job_queue, "alone")
    assert await hand_off(alone) is None
    assert (await scenes.get(alone.id)).state is SceneState.NOT_WANTED  # type: ignore[union-attr]
    assert await scenes.claim_next("w1", lease_seconds=LEASE) is None
    assert waits == []

    # A writer runs and the scene is ready: it is the rewrite, and nobody waits.
    ready = await submit(job_queue, "ready")
    await scenes.register_writer("w1", lease_seconds=LEASE)
    await write_all(scenes)
    rewrite = await hand_off(ready)
    assert isinstance(rewrite, RewriteResult)
    assert (rewrite.rewritten, rewrite.enhanced) == ("scene of ready", True)
    assert waits == []

    # A writer runs but never gets to it: the worker waits, then gives up and rewrites.
    slow = await submit(job_queue, "slow")
    with pytest.raises(GenerationCancelled):
        await hand_off(slow, stop=True)
    assert await hand_off(slow, wait_s=0.2) is None
    assert waits == ["waited"]
    assert (await scenes.get(slow.id)).state is SceneState.NOT_WANTED  # type: ignore[union-attr]

    # A job that asked for no rewrite never waits.
    plain = await submit(job_queue, "as typed", enhance=False)
    assert await hand_off(plain) is None
    assert await scenes.get(plain.id) is None


async def test_the_writer_screens_each_scene_against_the_blocklist(
    job_queue: JobQueue, scenes: Scenes, tmp_path: Path, tiny_models_dir: Path
) -> None:
    moderation = Moderation(job_queue.db)
    await moderation.blocklist_add(GUILD, "wombat", actor_id=99, category="animals")
    clean = await submit(job_queue, "a quiet beach")
    blocked = await submit(job_queue, "a sleepy marsupial")
    rewriter = SlowRewriter(0.0, scripted={"a sleepy marsupial": "A wombat asleep in a burrow."})
    config = SceneWriterConfig(
        clips_dir=tmp_path / "clips",
        models=ModelChoice(models_dir=tiny_models_dir, t2v_model="tiny", i2v_model="tiny-i2v"),
        rewriter=RewriterConfig(backend="off"),
    )
    writer = SceneWriter(job_queue.db.path, config=config, rewriter=rewriter, writer_id="w")

    await writer.run(burst=True)

    assert writer.scenes_written == 2
    written = await scenes.of_jobs([clean.id, blocked.id])
    assert written[clean.id].text == scene_for("a quiet beach")
    assert (written[blocked.id].text, written[blocked.id].reason) == (None, REWRITE_BLOCKED)
    as_rewrite = written[blocked.id].as_rewrite("a sleepy marsupial")
    assert (as_rewrite.rewritten, as_rewrite.enhanced) == ("a sleepy marsupial", False)
    blocks = [
        entry.target_job_id
        for entry in await moderation.recent_actions(GUILD)
        if entry.action == AuditAction.REWRITE_BLOCKED
    ]
    assert blocks == [blocked.id]
    assert await scenes.writers_alive() == 0  # it said it stopped


async def test_reelbot_rewriter_writes_scenes_with_the_configured_endpoint(
    tmp_path: Path, data_dir: Path
) -> None:
    queue = await JobQueue.open(tmp_path / "reelbot.db")
    try:
        job = await submit(queue, "a cat surfing")
        async with serving(FakeLlamaServer()) as server:
            env = {
                **os.environ,
                "REELBOT_DATA_DIR": str(data_dir),
                "REELBOT_REWRITER": "openai",
                "REELBOT_OPENAI_BASE_URL": server.base_url,
            }
            command = ["rewriter", "--burst", "--database", str(queue.db.path)]
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot.cli", *command, env=env, cwd=tmp_path,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _, stderr = await asyncio.wait_for(process.communicate(), timeout=300)
        assert process.returncode == 0, stderr.decode()
        scene = await Scenes(queue.db).get(job.id)
    finally:
        await queue.close()
    assert scene is not None
    assert (scene.state, scene.text) == (SceneState.READY, scene_for("a cat surfing"))


def test_reelbot_rewriter_says_there_is_nothing_to_write_when_rewriting_is_off(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "REELBOT_DATA_DIR": str(tmp_path), "REELBOT_REWRITER": "off"}
    finished = subprocess.run(
        [sys.executable, "-m", "bot.cli", "rewriter", "--burst"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert finished.returncode == 2
    assert "no scenes to write" in finished.stderr


def test_reelbot_run_starts_scene_writers_beside_the_workers(data_dir: Path) -> None:
    settings = CoreSettings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir, rewriter="openai", rewriters=2, workers=1,
    )  # fmt: skip
    supervisor = WorkerSupervisor(settings)
    assert [writer.command[1:3] for writer in supervisor.scene_writers] == [
        ("-m", "jobqueue.scene_cli"), ("-m", "jobqueue.scene_cli"),
    ]  # fmt: skip
    assert len(supervisor.workers) == 1
    off = settings.model_copy(update={"rewriter": "off"})
    assert WorkerSupervisor(off).scene_writers == []
