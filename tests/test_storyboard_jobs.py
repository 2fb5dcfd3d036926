"""A storyboard as jobs: shots made one at a time by a real worker on the tiny pipelines, then
one film, through the queue on a real SQLite file."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from jobqueue.broker.dispatcher import DispatchConfig
from jobqueue.clipfiles import clip_path
from jobqueue.errors import LimitExceeded
from jobqueue.jobs import JobQueue
from jobqueue.models import Job, JobKind, JobRequest, JobStatus, Stage
from jobqueue.moderation import Moderation
from jobqueue.safety import Verdict
from jobqueue.settings import CoreSettings
from jobqueue.storyboards import Storyboard, StoryboardError, Storyboards, StoryboardState
from jobqueue.worker import Worker, WorkerConfig
from pipeline.encode import EncodedClip, read_frames
from pipeline.join import JOIN_FAILED, join_clips
from pipeline.provenance import SigningIdentity, prompt_hash, verify_clip
from pipeline.safety import FrameScores, SafetyConfig
from pipeline.storyboard import Plan, Shot
from tests.broker_harness import remote_capacity
from tests.mp4probe import probe_mp4

USER, OTHER_USER = 7, 8
GUILD, CHANNEL, THREAD = 1, 2, 3
SHOT_SECONDS = 0.5
"""9 frames at the tiny models' 16 fps."""
WAIT_S = 120.0


@pytest.fixture
def storyboards(job_queue: JobQueue, worker_config: WorkerConfig) -> Storyboards:
    return Storyboards(job_queue, clips_dir=worker_config.clips_dir)


def plan_of(shots: int) -> Plan:
    scenes = ("a fox steps out of an alley", "the fox crosses a neon street", "the fox sits")
    return Plan(
        idea="a fox explores a city at night",
        sheet="a small red fox, wet streets, neon light",
        shots=tuple(
            Shot(scene=scenes[index % len(scenes)], camera="pan left", duration_s=SHOT_SECONDS)
            for index in range(shots)
        ),
    )


async def new_board(storyboards: Storyboards, shots: int = 3) -> Storyboard:
    return await storyboards.create(
        user_id=USER, guild_id=GUILD, channel_id=CHANNEL, plan=plan_of(shots)
    )


async def run_burst(queue: JobQueue, config: WorkerConfig) -> None:
    await Worker(queue.db.path, config=config, worker_id="test-worker").run(burst=True)


async def shot_one_only(
    queue: JobQueue,
    storyboards: Storyboards,
    config: WorkerConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Storyboard, Job]:
    """A 2-shot storyboard shot as far as shot 1: its next step is held back (the test
    takes it, with :meth:`Storyboards.advance`, once it has changed what it wants)."""
    board = await new_board(storyboards, shots=2)
    first = await storyboards.shoot(board.id, thread_id=THREAD)
    with monkeypatch.context() as paused:

        async def not_yet(self: Storyboards, job: Job) -> None:
            return None

        paused.setattr(Storyboards, "advance", not_yet)
        await run_burst(queue, config)
    return board, first


async def jobs_of(queue: JobQueue, kind: JobKind) -> list[Job]:
    everyone = await queue.user_jobs(USER, active_only=False)
    return [job for job in everyone if job.kind is kind]


async def board_now(storyboards: Storyboards, board: Storyboard) -> Storyboard:
    found = await storyboards.get(board.id)
    assert found is not None
    return found


async def shots_of(queue: JobQueue, board: Storyboard) -> list[Job]:
    found = [await queue.get(job_id) for job_id in board.shot_job_ids]
    assert all(job is not None for job in found)
    return [job for job in found if job is not None]


def seconds_of(jobs: list[Job]) -> float:
    return sum((job.frames or 0) / (job.fps or 1) for job in jobs)


async def test_a_storyboard_becomes_one_film_as_long_as_its_shots(
    job_queue: JobQueue, storyboards: Storyboards, worker_config: WorkerConfig
) -> None:
    board = await new_board(storyboards)
    first = await storyboards.shoot(board.id, thread_id=THREAD)
    assert (first.kind, first.status, first.parent_id) == (JobKind.SHOT, JobStatus.QUEUED, None)
    assert first.request.prompt == board.plan.shot_prompt(0)
    assert (first.request.camera, first.request.duration_s) == ("pan left", SHOT_SECONDS)

    await run_burst(job_queue, worker_config)

    board = await board_now(storyboards, board)
    assert board.state is StoryboardState.DONE, board.error
    assert board.thread_id == THREAD
    shots = await shots_of(job_queue, board)
    assert [shot.status for shot in shots] == [JobStatus.DONE] * 3
    assert [shot.model for shot in shots] == ["tiny", "tiny-i2v", "tiny-i2v"]
    assert [shot.parent_id for shot in shots] == [None, shots[0].id, shots[1].id]
    assert all(shot.channel_id == THREAD for shot in shots)

    (film,) = await jobs_of(job_queue, JobKind.FILM)
    assert board.film_job_id == film.id
    assert (await storyboards.for_job(film.id)) == board
    assert (film.status, film.channel_id, film.parent_id) == (JobStatus.DONE, THREAD, shots[2].id)
    assert film.delivered_at is None
    assert film.id in [job.id for job in await job_queue.undelivered_finished()]
    assert film.request.prompt == "a fox explores a city at night"
    assert film.result_path == str(clip_path(worker_config.clips_dir, film.id))
    assert Path(film.result_path).with_suffix(".jpg").is_file()
    info = probe_mp4(Path(film.result_path))
    assert (info.codec, info.width, info.height) == ("h264", 112, 64)
    assert info.frames / info.fps == pytest.approx(seconds_of(shots), abs=0.07)
    assert (film.frames, film.fps, film.seed) == (info.frames, 16, shots[0].seed)


async def test_a_film_with_crossfades_is_shorter_than_its_shots_by_the_fades(
    job_queue: JobQueue, worker_config: WorkerConfig
) -> None:
    config = replace(worker_config, storyboard_crossfade_s=0.25)
    storyboards = Storyboards(job_queue, clips_dir=config.clips_dir)
    board = await new_board(storyboards, shots=3)
    await storyboards.shoot(board.id, thread_id=THREAD)

    await run_burst(job_queue, config)

    done = await board_now(storyboards, board)
    assert done.state is StoryboardState.DONE, done.error
    (film,) = await jobs_of(job_queue, JobKind.FILM)
    info = probe_mp4(Path(film.result_path or ""))
    shots = await shots_of(job_queue, done)
    assert info.frames / info.fps == pytest.approx(seconds_of(shots) - 2 * 0.25, abs=0.07)


def test_the_crossfade_setting_reaches_the_workers_and_the_dispatcher(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REELBOT_DATA_DIR", str(tmp_path))
    assert CoreSettings(_env_file=None).storyboard_crossfade_s == 0.3  # type: ignore[call-arg]
    monkeypatch.setenv("REELBOT_STORYBOARD_CROSSFADE_S", "0")
    settings = CoreSettings(_env_file=None)  # type: ignore[call-arg]
    assert WorkerConfig.from_settings(settings).storyboard_crossfade_s == 0
    monkeypatch.setenv("REELBOT_STORYBOARD_CROSSFADE_S", "0.5")
    settings = CoreSettings(_env_file=None)  # type: ignore[call-arg]
    assert WorkerConfig.from_settings(settings).storyboard_crossfade_s == 0.5
    assert DispatchConfig.from_settings(settings).storyboard_crossfade_s == 0.5


async def test_the_film_carries_content_credentials_saying_an_ai_model_made_it(
    job_queue: JobQueue, worker_config: WorkerConfig, tmp_path: Path
) -> None:
    signing = SigningIdentity.in_data_dir(tmp_path / "data")
    config = replace(worker_config, signing=signing)
    storyboards = Storyboards(job_queue, clips_dir=config.clips_dir)
    board = await new_board(storyboards, shots=2)
    await storyboards.shoot(board.id, thread_id=THREAD)

    await run_burst(job_queue, config)

    (film,) = await jobs_of(job_queue, JobKind.FILM)
    report = await asyncio.to_thread(
        verify_clip, Path(film.result_path or ""), trust_anchor=signing.trust_anchor()
    )
    assert report.state == "trusted", report.problems
    assert report.ai_generated
    assert (report.model, report.seed) == ("tiny + tiny-i2v", film.seed)
    assert report.prompt_sha256 == prompt_hash("a fox explores a city at night")


async def test_shot_two_starts_from_the_last_frame_of_shot_one(
    job_queue: JobQueue, storyboards: Storyboards, worker_config: WorkerConfig
) -> None:
    board = await new_board(storyboards, shots=2)
    await storyboards.shoot(board.id, thread_id=None)
    await run_burst(job_queue, worker_config)

    one, two = await shots_of(job_queue, await board_now(storyboards, board))
    assert two.task == "i2v"
    assert two.parent_id == one.id
    assert two.request.image_path is not None
    start = np.asarray(Image.open(two.request.image_path).convert("RGB"))
    one_frames, _ = read_frames(Path(one.result_path or ""))
    assert np.array_equal(start, one_frames[-1])
    # Unlike Extend, the shot does not begin with shot 1's frames.
    two_frames, _ = read_frames(Path(two.result_path or ""))
    assert len(two_frames) == len(one_frames) == 9


async def test_a_restart_between_shots_resumes_and_makes_exactly_one_film(
    tmp_path: Path, worker_config: WorkerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "restart.db"
    queue = await JobQueue.open(path)
    board = await new_board(Storyboards(queue, clips_dir=worker_config.clips_dir))
    await Storyboards(queue, clips_dir=worker_config.clips_dir).shoot(board.id, thread_id=THREAD)
    with monkeypatch.context() as crash:
        # The worker dies after recording shot 1, before taking the storyboard's next step.
        async def dies_first(self: Storyboards, job: Job) -> None:
            return None

        crash.setattr(Storyboards, "advance", dies_first)
        await run_burst(queue, worker_config)
    await queue.close()
    assert [job.status for job in await _all_jobs(path)] == [JobStatus.DONE]

    queue = await JobQueue.open(path)
    try:
        storyboards = Storyboards(queue, clips_dir=worker_config.clips_dir)
        assert (await board_now(storyboards, board)).state is StoryboardState.SHOOTING
        await run_burst(queue, worker_config)  # resumes at start-up
        await storyboards.resume()
        done = await board_now(storyboards, board)
        shots = await shots_of(queue, done)
        await storyboards.advance(shots[-1])

        assert done.state is StoryboardState.DONE, done.error
        assert len(await jobs_of(queue, JobKind.FILM)) == 1
        assert len(await jobs_of(queue, JobKind.SHOT)) == 3
        assert [shot.attempts for shot in shots] == [1, 1, 1]
    finally:
        await queue.close()


async def _all_jobs(path: Path) -> list[Job]:
    queue = await JobQueue.open(path)
    try:
        return await queue.user_jobs(USER, active_only=False)
    finally:
        await queue.close()


async def test_reshoot_two_keeps_shot_one_and_makes_a_new_film(
    job_queue: JobQueue, storyboards: Storyboards, worker_config: WorkerConfig
) -> None:
    board = await new_board(storyboards)
    await storyboards.shoot(board.id, thread_id=THREAD)
    await run_burst(job_queue, worker_config)
    first_take = await board_now(storyboards, board)

    again = await storyboards.reshoot(board.id, 2)
    with pytest.raises(StoryboardError, match="still being shot"):
        await storyboards.reshoot(board.id, 2)
    await run_burst(job_queue, worker_config)

    second_take = await board_now(storyboards, board)
    assert second_take.state is StoryboardState.DONE, second_take.error
    assert second_take.take == first_take.take + 1
    kept, *redone = second_take.shot_job_ids
    assert kept == first_take.shot_job_ids[0]
    assert redone[0] == again.id
    assert again.parent_id == kept
    assert not set(redone) & set(first_take.shot_job_ids)
    old_film, new_film = await jobs_of(job_queue, JobKind.FILM)
    assert (old_film.id, new_film.id) == (first_take.film_job_id, second_take.film_job_id)
    assert new_film.parent_id == redone[-1]
    films = [Path(film.result_path or "") for film in (old_film, new_film)]
    assert all(await asyncio.gather(*(asyncio.to_thread(film.is_file) for film in films)))
    assert (await storyboards.for_job(old_film.id)) == second_take


async def test_cancel_stops_the_rest_and_another_users_job_goes_between_shots(
    job_queue: JobQueue, storyboards: Storyboards, worker_config: WorkerConfig
) -> None:
    board = await new_board(storyboards)
    await storyboards.shoot(board.id, thread_id=THREAD)
    # Long enough on any machine to still be rendering when the storyboard is cancelled.
    theirs = await job_queue.submit(
        JobKind.CREATE,
        JobRequest(prompt="waves on a beach", frames=81, steps=20),
        user_id=OTHER_USER,
        guild_id=GUILD,
        channel_id=CHANNEL,
    )
    changes = job_queue.changes(poll_interval=0.02)
    worker = Worker(job_queue.db.path, config=worker_config, worker_id="test-worker")
    running = asyncio.create_task(worker.run())
    try:
        await _until(changes, lambda job: job.id == theirs.id and job.stage is Stage.GENERATING)
        waiting = await board_now(storyboards, board)
        shot_two = await job_queue.get(waiting.shot_job_ids[-1])
        assert shot_two is not None
        assert shot_two.status is JobStatus.QUEUED
        assert len(waiting.shot_job_ids) == 2

        await storyboards.cancel(board.id)
        await job_queue.cancel(theirs.id, by_user_id=OTHER_USER)
        await _until(changes, lambda job: job.id == theirs.id and job.status.is_terminal)
    finally:
        worker.stop()
        await asyncio.wait_for(running, WAIT_S)
    await run_burst(job_queue, worker_config)

    cancelled = await board_now(storyboards, board)
    assert cancelled.state is StoryboardState.CANCELLED
    assert cancelled.error == "The storyboard was cancelled."
    one, two = await shots_of(job_queue, cancelled)
    assert (one.status, two.status) == (JobStatus.DONE, JobStatus.CANCELLED)
    assert await jobs_of(job_queue, JobKind.FILM) == []
    with pytest.raises(StoryboardError, match="Shot 2 has no clip"):
        await storyboards.reshoot(board.id, 3)


async def _until(changes: AsyncIterator[Job], wanted: Callable[[Job], bool]) -> None:
    async def watch() -> None:
        async for job in changes:
            if wanted(job):
                return

    await asyncio.wait_for(watch(), WAIT_S)


async def test_shots_take_turns_with_other_users_and_only_the_first_is_limited(
    job_queue: JobQueue, storyboards: Storyboards, worker_config: WorkerConfig
) -> None:
    await job_queue.set_limits(user_id=USER, waiting=None, running=None, daily=1)
    board = await new_board(storyboards)
    await storyboards.shoot(board.id, thread_id=THREAD)
    for prompt in ("a dog runs", "a cat sleeps"):
        await job_queue.submit(
            JobKind.CREATE,
            JobRequest(prompt=prompt),
            user_id=OTHER_USER,
            guild_id=GUILD,
            channel_id=CHANNEL,
        )

    await run_burst(job_queue, worker_config)

    done = await board_now(storyboards, board)
    assert done.state is StoryboardState.DONE, done.error
    started = sorted(
        [
            *(await job_queue.user_jobs(USER, active_only=False)),
            *(await job_queue.user_jobs(OTHER_USER, active_only=False)),
        ],
        key=lambda job: job.started_at or float("inf"),
    )
    order = [job.kind for job in started if job.started_at is not None]
    assert order == [JobKind.SHOT, JobKind.CREATE, JobKind.SHOT, JobKind.CREATE, JobKind.SHOT]
    # The storyboard was within the daily limit when it was shot; its user's next is not.
    with pytest.raises(LimitExceeded):
        await job_queue.submit(
            JobKind.CREATE, JobRequest(prompt="one more"), user_id=USER, guild_id=1, channel_id=2
        )
    refused = await new_board(storyboards)
    with pytest.raises(LimitExceeded):
        await storyboards.shoot(refused.id, thread_id=THREAD)
    still = await board_now(storyboards, refused)
    assert (still.state, still.thread_id, still.shot_job_ids) == (StoryboardState.PLANNED, None, ())


async def test_a_shot_cancelled_in_the_queue_ends_its_storyboard(
    job_queue: JobQueue, storyboards: Storyboards
) -> None:
    board = await new_board(storyboards)
    first = await storyboards.shoot(board.id, thread_id=THREAD)
    await job_queue.cancel(first.id, by_user_id=USER)  # /cancel on the shot itself

    await storyboards.resume()

    ended = await board_now(storyboards, board)
    assert ended.state is StoryboardState.CANCELLED
    assert ended.error == "Shot 1 of 3 was cancelled, so the film was not made."
    assert len(await jobs_of(job_queue, JobKind.SHOT)) == 1


async def test_a_failed_shot_ends_the_storyboard_with_a_sentence(
    job_queue: JobQueue, storyboards: Storyboards, worker_config: WorkerConfig
) -> None:
    plan = plan_of(3)
    broken = Plan(
        idea=plan.idea,
        sheet=plan.sheet,
        shots=(plan.shots[0], Shot("the fox jumps", None, duration_s=0.01), plan.shots[2]),
    )
    board = await storyboards.create(user_id=USER, guild_id=GUILD, channel_id=CHANNEL, plan=broken)
    await storyboards.shoot(board.id, thread_id=None)
    await run_burst(job_queue, worker_config)

    failed = await board_now(storyboards, board)
    assert failed.state is StoryboardState.FAILED
    assert failed.error is not None
    assert failed.error.startswith("Shot 2 of 3 failed: ")
    assert len(failed.shot_job_ids) == 2
    assert await jobs_of(job_queue, JobKind.FILM) == []


async def test_a_film_whose_shot_cannot_be_read_fails_and_its_user_is_told_in_the_thread(
    job_queue: JobQueue,
    storyboards: Storyboards,
    worker_config: WorkerConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    board, first = await shot_one_only(job_queue, storyboards, worker_config, monkeypatch)
    shot_one = await job_queue.get(first.id)
    assert shot_one is not None
    assert shot_one.status is JobStatus.DONE
    await storyboards.advance(shot_one)  # shot 2 starts from shot 1's last frame
    clip_path(worker_config.clips_dir, shot_one.id).write_bytes(b"not a video any more")

    await run_burst(job_queue, worker_config)

    ended = await board_now(storyboards, board)
    assert ended.state is StoryboardState.FAILED
    assert ended.error is not None
    assert ended.error.startswith(JOIN_FAILED)
    await _assert_told_in_thread(job_queue, storyboards, ended)


async def test_a_join_that_raises_ends_the_storyboard_instead_of_retrying_for_ever(
    job_queue: JobQueue,
    storyboards: Storyboards,
    worker_config: WorkerConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("jobqueue.storyboards.join_clips", disk_full)
    board = await new_board(storyboards, shots=2)
    await storyboards.shoot(board.id, thread_id=THREAD)

    await run_burst(job_queue, worker_config)
    await storyboards.resume()  # a later sweep takes no further step

    ended = await board_now(storyboards, board)
    assert (ended.state, ended.error) == (StoryboardState.FAILED, JOIN_FAILED)
    await _assert_told_in_thread(job_queue, storyboards, ended)


async def _assert_told_in_thread(
    queue: JobQueue, storyboards: Storyboards, ended: Storyboard
) -> None:
    """The take's one FILM job failed with the storyboard's sentence, in its thread, waiting
    for the bot to say so like for any failed job."""
    (film,) = await jobs_of(queue, JobKind.FILM)
    assert (film.status, film.error, film.channel_id) == (JobStatus.FAILED, ended.error, THREAD)
    assert film.result_path is None
    assert film.id in [job.id for job in await queue.undelivered_finished()]
    assert await storyboards.for_job(film.id) == ended


async def test_the_plan_is_edited_before_shoot_only(storyboards: Storyboards) -> None:
    board = await new_board(storyboards)
    edited = await storyboards.replace_plan(board.id, plan_of(2))
    assert edited.shots == 2
    job = await storyboards.shoot(board.id, thread_id=THREAD)
    assert (await storyboards.shoot(board.id, thread_id=THREAD)).id == job.id
    with pytest.raises(StoryboardError, match="before the storyboard is shot"):
        await storyboards.replace_plan(board.id, plan_of(3))


async def test_a_storyboard_is_shot_on_another_host_through_the_broker(
    job_queue: JobQueue,
    storyboards: Storyboards,
    worker_config: WorkerConfig,
    broker_url: str,
    tmp_path: Path,
) -> None:
    board = await new_board(storyboards, shots=2)
    await storyboards.shoot(board.id, thread_id=THREAD)
    changes = job_queue.changes(since=0, poll_interval=0.05)
    signing = SigningIdentity.in_data_dir(tmp_path / "data")
    async with remote_capacity(
        job_queue,
        Moderation(job_queue.db),
        broker_url,
        replace(worker_config, signing=signing),
        worker_id="far-away",
        worker_dir=tmp_path / "far-away",
    ):
        await _until(changes, _film_or_failed_shot)

    done = await board_now(storyboards, board)
    assert done.state is StoryboardState.DONE, done.error
    shots = await shots_of(job_queue, done)
    # Shot 2's start frame travelled: the host has none of the bot's files.
    assert [(shot.worker_id, shot.model) for shot in shots] == [
        ("far-away", "tiny"),
        ("far-away", "tiny-i2v"),
    ]
    (film,) = await jobs_of(job_queue, JobKind.FILM)
    info = probe_mp4(Path(film.result_path or ""))
    assert info.frames / info.fps == pytest.approx(seconds_of(shots), abs=0.07)
    # Joined on the bot's host by the dispatcher, the film is signed there.
    report = await asyncio.to_thread(
        verify_clip, Path(film.result_path or ""), trust_anchor=signing.trust_anchor()
    )
    assert (report.state, report.ai_generated) == ("trusted", True), report.problems


def _film_or_failed_shot(job: Job) -> bool:
    if job.kind is JobKind.FILM:
        return True
    return job.kind is JobKind.SHOT and job.status in (JobStatus.FAILED, JobStatus.CANCELLED)


async def test_a_film_with_a_shot_the_safety_check_held_is_held_too(
    job_queue: JobQueue,
    storyboards: Storyboards,
    worker_config: WorkerConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Shot 1 goes through the worker's output safety check, which flags it; shot 2 is not
    # looked at.
    checked = replace(
        worker_config, safety=SafetyConfig(classifiers=(f"{__name__}:SeesNsfw",), frames=1)
    )
    _, first = await shot_one_only(job_queue, storyboards, checked, monkeypatch)
    shot_one = await job_queue.get(first.id)
    assert shot_one is not None
    assert (shot_one.safety_verdict, shot_one.safety_hold) == (Verdict.UNSAFE, True)

    await run_burst(job_queue, worker_config)

    (film,) = await jobs_of(job_queue, JobKind.FILM)
    assert film.safety_hold
    assert (film.safety_verdict, film.safety_flagged) == (Verdict.UNSAFE, ["nsfw"])
    assert film.safety_scores == {"nsfw": 0.9}


class SeesNsfw:
    """A classifier that scores every frame 0.9 nsfw (over its 0.5 threshold)."""

    name = "sees-nsfw"

    def __init__(self) -> None:
        self.default_thresholds = {"nsfw": 0.5}

    def score(self, frames: Sequence[np.ndarray]) -> list[FrameScores]:
        return [{"nsfw": 0.9} for _ in frames]


async def test_two_processes_advancing_the_same_finished_take_join_its_film_once(
    job_queue: JobQueue,
    storyboards: Storyboards,
    worker_config: WorkerConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    board, first = await shot_one_only(job_queue, storyboards, worker_config, monkeypatch)
    await storyboards.advance(first)  # submits shot 2
    with monkeypatch.context() as paused:

        async def not_yet(self: Storyboards, job: Job) -> None:
            return None

        paused.setattr(Storyboards, "advance", not_yet)
        await run_burst(job_queue, worker_config)
    last = (await shots_of(job_queue, await board_now(storyboards, board)))[-1]
    assert last.status is JobStatus.DONE
    joins: list[int] = []

    def slow_join(*args: Any, **kwargs: Any) -> EncodedClip:
        # Slower than the other process's way to its own join: without a claim, both join.
        joins.append(board.id)
        time.sleep(1.0)
        return join_clips(*args, **kwargs)

    monkeypatch.setattr("jobqueue.storyboards.join_clips", slow_join)
    elsewhere = Storyboards(job_queue, clips_dir=worker_config.clips_dir)

    await asyncio.gather(storyboards.advance(last), elsewhere.resume())
    await storyboards.resume()

    done = await board_now(storyboards, board)
    assert done.state is StoryboardState.DONE, done.error
    assert len(joins) == 1
    assert len(await jobs_of(job_queue, JobKind.FILM)) == 1


async def test_a_join_left_by_a_process_that_died_is_taken_by_the_next_sweep(
    job_queue: JobQueue,
    storyboards: Storyboards,
    worker_config: WorkerConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    board, first = await shot_one_only(job_queue, storyboards, worker_config, monkeypatch)
    await storyboards.advance(first)
    with monkeypatch.context() as paused:

        async def not_yet(self: Storyboards, job: Job) -> None:
            return None

        paused.setattr(Storyboards, "advance", not_yet)
        await run_burst(job_queue, worker_config)
    # A process claimed the join, then died: its lease ran out a second ago.
    await job_queue.db.write(
        lambda db: db.execute(
            "UPDATE storyboards SET joining_by = 'gone', joining_until = ? WHERE id = ?",
            [time.time() - 1, board.id],
        )
    )

    await storyboards.resume()

    done = await board_now(storyboards, board)
    assert done.state is StoryboardState.DONE, done.error
    assert len(await jobs_of(job_queue, JobKind.FILM)) == 1


async def test_a_shot_with_a_verdict_this_version_does_not_know_makes_an_unchecked_film(
    job_queue: JobQueue,
    storyboards: Storyboards,
    worker_config: WorkerConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    board, first = await shot_one_only(job_queue, storyboards, worker_config, monkeypatch)
    # Stored by a newer worker, or changed by hand.
    await job_queue.db.write(
        lambda db: db.execute(
            "UPDATE jobs SET safety_verdict = 'quarantined' WHERE id = ?", [first.id]
        )
    )

    await run_burst(job_queue, worker_config)

    done = await board_now(storyboards, board)
    assert done.state is StoryboardState.DONE, done.error
    (film,) = await jobs_of(job_queue, JobKind.FILM)
    assert film.safety_verdict == Verdict.UNCHECKED
