"""The worker's output safety check: every clip (creates, retries, extensions) is looked at by
the real packaged classifiers before its job is done, the verdict and scores are stored with
the job, and a classifier that cannot load never fails a job: the server's policy decides.

A threshold of 0 judges every frame unsafe: the way to exercise a flagged clip without
shipping an unsafe picture.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from jobqueue.clipfiles import job_files
from jobqueue.jobs import JobQueue
from jobqueue.models import Job, JobKind, JobRequest, JobStatus
from jobqueue.moderation import AuditAction, Moderation, ModerationError
from jobqueue.safety import (
    PARENT_WITHHELD,
    HeldClips,
    HeldState,
    IfUnchecked,
    SafetyMode,
    SafetyPolicy,
    Verdict,
)
from jobqueue.worker import Worker, WorkerConfig
from pipeline.safety import FrameScores, SafetyConfig

GUILD = 1
OWNER = 7
SOMEONE_ELSE = 8
MODERATOR = 99


@pytest.fixture
def config(worker_config: WorkerConfig) -> WorkerConfig:
    return replace(worker_config, safety=SafetyConfig())


@pytest.fixture
def held(job_queue: JobQueue) -> HeldClips:
    return HeldClips(Moderation(job_queue.db, default_rules=()), SafetyPolicy())


async def submit(
    queue: JobQueue,
    *,
    kind: JobKind = JobKind.CREATE,
    parent_id: int | None = None,
    user_id: int = OWNER,
) -> Job:
    request = JobRequest(prompt="a red balloon over a city", seed=5)
    return await queue.submit(
        kind, request, user_id=user_id, guild_id=GUILD, channel_id=2, parent_id=parent_id
    )


async def run(queue: JobQueue, config: WorkerConfig) -> None:
    await Worker(queue.db.path, config=config, worker_id="w").run(burst=True)


async def finished(queue: JobQueue, job_id: int) -> Job:
    job = await queue.get(job_id)
    assert job is not None
    assert job.status is JobStatus.DONE, (job.status, job.error, job.error_detail)
    return job


async def flag_everything(held: HeldClips) -> None:
    for category in ("nudity", "nsfw"):
        await held.set_threshold(GUILD, category, 0.0, actor_id=MODERATOR)


async def test_an_ordinary_clip_passes_and_its_scores_are_stored(
    job_queue: JobQueue, config: WorkerConfig
) -> None:
    job = await submit(job_queue)
    await run(job_queue, config)

    done = await finished(job_queue, job.id)
    assert done.safety_verdict == Verdict.SAFE
    assert set(done.safety_scores) == {"nudity", "nsfw"}
    assert done.safety_scores["nudity"] < 0.5
    assert done.safety_scores["nsfw"] < 0.7
    assert (done.safety_flagged, done.safety_hold) == ([], False)
    assert done.timings["safety"] > 0


async def test_a_clip_over_a_threshold_is_held_with_the_categories_it_crossed(
    job_queue: JobQueue, config: WorkerConfig, held: HeldClips
) -> None:
    await flag_everything(held)
    job = await submit(job_queue)
    await run(job_queue, config)

    done = await finished(job_queue, job.id)
    assert done.safety_verdict == Verdict.UNSAFE
    assert done.safety_hold
    assert sorted(done.safety_flagged) == ["nsfw", "nudity"]
    # The clip is kept for the moderators' review.
    assert done.result_path is not None
    assert await asyncio.to_thread(Path(done.result_path).is_file)


async def test_retries_and_extensions_pass_through_the_same_check(
    job_queue: JobQueue, config: WorkerConfig, held: HeldClips
) -> None:
    parent = await submit(job_queue)
    await run(job_queue, config)
    assert not (await finished(job_queue, parent.id)).safety_hold

    await flag_everything(held)
    retry = await submit(job_queue, kind=JobKind.RETRY, parent_id=parent.id)
    extension = await submit(job_queue, kind=JobKind.EXTEND, parent_id=parent.id)
    await run(job_queue, config)

    for job in (retry, extension):
        done = await finished(job_queue, job.id)
        assert (done.safety_verdict, done.safety_hold) == (Verdict.UNSAFE, True), done.kind
    extended = await finished(job_queue, extension.id)
    assert (extended.frames or 0) > 9  # the parent's frames, then more


async def test_a_withheld_clip_is_no_start_frame_for_someone_elses_extend(
    job_queue: JobQueue, config: WorkerConfig, held: HeldClips
) -> None:
    await flag_everything(held)
    parent = await submit(job_queue)
    await run(job_queue, config)
    assert await held.withhold(await finished(job_queue, parent.id))

    theirs = await submit(job_queue, kind=JobKind.EXTEND, parent_id=parent.id, user_id=SOMEONE_ELSE)
    own = await submit(job_queue, kind=JobKind.EXTEND, parent_id=parent.id)
    await run(job_queue, config)

    refused = await job_queue.get(theirs.id)
    assert refused is not None
    assert refused.status is JobStatus.FAILED
    assert refused.error == PARENT_WITHHELD
    assert (await finished(job_queue, own.id)).safety_hold  # the owner's, checked again


async def test_mode_off_looks_at_nothing(
    job_queue: JobQueue, config: WorkerConfig, held: HeldClips
) -> None:
    await flag_everything(held)
    await held.set_mode(GUILD, SafetyMode.OFF, actor_id=MODERATOR)
    job = await submit(job_queue)
    await run(job_queue, config)

    done = await finished(job_queue, job.id)
    assert (done.safety_verdict, done.safety_scores, done.safety_hold) == (Verdict.OFF, {}, False)


def refuses_to_load() -> object:
    raise RuntimeError("the model file is corrupt")


class FailsOnClips:
    name = "fails"

    def __init__(self) -> None:
        self.default_thresholds = {"fails": 0.5}

    def score(self, frames: Sequence[np.ndarray]) -> list[FrameScores]:
        raise RuntimeError("out of memory")


@pytest.mark.parametrize(
    "classifier",
    ["tests.test_safety_worker:refuses_to_load", "tests.test_safety_worker:FailsOnClips"],
)
async def test_a_classifier_that_fails_never_fails_the_job_and_withholds_by_default(
    job_queue: JobQueue, config: WorkerConfig, classifier: str
) -> None:
    broken = replace(config, safety=SafetyConfig(classifiers=(f"{__name__}:{classifier}",)))
    job = await submit(job_queue)
    await run(job_queue, broken)

    done = await finished(job_queue, job.id)
    assert (done.safety_verdict, done.safety_hold) == (Verdict.UNCHECKED, True)


async def test_a_server_may_choose_to_post_unchecked_clips(
    job_queue: JobQueue, config: WorkerConfig, held: HeldClips, caplog: pytest.LogCaptureFixture
) -> None:
    await held.set_if_unchecked(GUILD, IfUnchecked.POST, actor_id=MODERATOR)
    broken = replace(
        config, safety=SafetyConfig(classifiers=("tests.test_safety_worker:refuses_to_load",))
    )
    job = await submit(job_queue)
    await run(job_queue, broken)

    done = await finished(job_queue, job.id)
    assert (done.safety_verdict, done.safety_hold) == (Verdict.UNCHECKED, False)
    assert "goes out unchecked" in caplog.text
    assert "the model file is corrupt" in caplog.text


@pytest.mark.parametrize("strikes", [False, True])
async def test_a_withheld_clip_is_a_strike_only_where_the_server_says(
    job_queue: JobQueue, config: WorkerConfig, strikes: bool
) -> None:
    moderation = Moderation(job_queue.db, default_rules=(), strikes_for_ban=1)
    held = HeldClips(moderation, SafetyPolicy())
    await flag_everything(held)
    await held.set_strikes(GUILD, strikes, actor_id=MODERATOR)
    job = await submit(job_queue)
    await run(job_queue, config)

    assert await held.withhold(await finished(job_queue, job.id))
    assert not await held.withhold(await finished(job_queue, job.id))  # once only
    ban = await moderation.active_ban(GUILD, OWNER)
    actions = [entry.action for entry in await moderation.recent_actions(GUILD)]
    assert actions.count(AuditAction.OUTPUT_WITHHELD) == 1
    if strikes:
        assert ban is not None
        assert AuditAction.STRIKE_BAN in actions
    else:
        assert ban is None


async def test_a_withheld_clip_whose_files_are_gone_cannot_be_released(
    job_queue: JobQueue, config: WorkerConfig, held: HeldClips
) -> None:
    await flag_everything(held)
    job = await submit(job_queue)
    await run(job_queue, config)
    done = await finished(job_queue, job.id)
    assert await held.withhold(done)
    for path in job_files(config.clips_dir, job.id):  # as /admin delete does
        path.unlink()

    with pytest.raises(ModerationError, match=f"The files of clip #{job.id} are gone"):
        await held.release(GUILD, job.id, actor_id=MODERATOR)
    assert (await finished(job_queue, job.id)).safety_state == HeldState.WITHHELD
