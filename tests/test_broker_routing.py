"""Routing by model and size, what travels through the broker, and `reelbot worker --broker`'s
refusals: the parts of "more than one machine" that need no broker running."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from jobqueue.broker.registry import WorkerAd
from jobqueue.broker.routing import Capability, Need, need_of, route_name
from jobqueue.broker.wire import Assignment, Outcome, TooLarge
from jobqueue.cli import add_worker_arguments, run_worker
from jobqueue.jobs import JobQueue
from jobqueue.models import Job, JobKind, JobRequest, JobStatus
from jobqueue.moderation import BlockHit, BlockRule
from jobqueue.safety import OutputVerdict, SafetyMode, SafetyPolicy, Verdict
from jobqueue.settings import CoreSettings
from pipeline.clip import ModelChoice
from pipeline.rewrite import RewriteResult
from tests.bot_harness import make_job

MODELS = ModelChoice(models_dir=Path("models"), t2v_model="tiny", i2v_model="tiny-i2v")


def test_a_preset_and_its_hub_id_are_one_model() -> None:
    assert route_name("Wan-AI/Wan2.1-T2V-1.3B-Diffusers") == "wan2.1-t2v-1.3b"
    assert route_name("someone/their-model") == "someone/their-model"


def test_a_job_needs_its_own_model_or_the_bots_for_its_task() -> None:
    create = make_job(kind=JobKind.CREATE, request=JobRequest(prompt="a cat"))
    extend = make_job(kind=JobKind.EXTEND, request=JobRequest(prompt="a cat"))
    chosen = make_job(request=JobRequest(prompt="a cat", model="ltx-video"))
    assert [need_of(job, MODELS).model for job in (create, extend, chosen)] == [
        "tiny",
        "tiny-i2v",
        "ltx-video",
    ]
    small, hd = (
        need_of(make_job(request=JobRequest(prompt="a cat", hd=hd)), MODELS) for hd in (False, True)
    )
    assert small.video_pixels == 112 * 64 * 9
    assert hd.video_pixels == 224 * 128 * 9


def test_a_worker_runs_the_models_it_serves_up_to_its_size() -> None:
    small_card = Capability.serving(["tiny"], max_video_pixels=112 * 64 * 9)
    assert small_card.can_run(Need("tiny", 112 * 64 * 9))
    assert not small_card.can_run(Need("tiny", 224 * 128 * 9))
    assert not small_card.can_run(Need("tiny-i2v", 1))
    assert Capability().can_run(Need("anything", 10**12)), "a worker beside the bot runs all"


async def test_a_worker_gets_the_fairest_job_it_can_run(job_queue: JobQueue) -> None:
    async def submit(user_id: int, model: str) -> Job:
        return await job_queue.submit(
            JobKind.CREATE,
            JobRequest(prompt=f"{model} for {user_id}", model=model),
            user_id=user_id,
            guild_id=1,
            channel_id=2,
        )

    first_big = await submit(1, "wan2.1-t2v-1.3b")
    first_small = await submit(1, "tiny")
    second_small = await submit(2, "tiny")
    small_card = Capability.serving(["tiny"])

    def can_run(job: Job) -> bool:
        return small_card.can_run(need_of(job, MODELS))

    claimed = [await job_queue.claim("small", lease_seconds=60, can_run=can_run) for _ in range(3)]
    # User 1's turn comes first: their best job the card can run, then user 2's.
    assert [job.id if job else None for job in claimed] == [first_small.id, second_small.id, None]
    waiting = await job_queue.get(first_big.id)
    assert waiting is not None
    assert waiting.status is JobStatus.QUEUED


def test_an_assignment_arrives_as_it_left() -> None:
    job = make_job(request=JobRequest(prompt="a cat", seed=3, image_path="/bot/uploads/1.png"))
    rule = BlockRule(5, 1, "term", "gore", "violence", "admin", 9, 1.5)
    scene = RewriteResult("a cat", "a cat on a wall", True, None, "local", "gemma", 0.5, False)
    sent = Assignment(
        job=job,
        attempt=2,
        model="tiny",
        max_bytes=1000,
        scene=scene,
        rules=(rule,),
        safety=SafetyPolicy(mode=SafetyMode.SPOILER, thresholds={"nudity": 0.3}),
        inputs_key="inputs",
    )
    kwargs = sent.to_kwargs()
    kwargs["job"]["a field of a newer bot"] = 1
    assert Assignment.from_kwargs(kwargs) == sent


def test_an_outcome_arrives_as_it_left_and_too_large_is_a_sentence(tmp_path: Path) -> None:
    verdict = OutputVerdict(Verdict.UNSAFE, {"nudity": 0.9}, ("nudity",), hold=True)
    hit = BlockHit(rule_id=3, category="violence", field="rewritten prompt")
    sent = Outcome(
        "done",
        clip=b"mp4 bytes",
        poster=b"jpg",
        encoded={"size_bytes": 9, "width": 112, "height": 64, "frames": 9, "fps": 16},
        request={"model": "tiny", "seed": 4},
        prompt={"text": "a cat", "rewritten": None, "note": "used as written"},
        timings={"denoise": 1.5},
        verdict=verdict,
        rewrite_blocks=(hit,),
    )
    assert Outcome.from_result(sent.to_result(limit=100)) == sent
    with pytest.raises(TooLarge) as refused:
        sent.to_result(limit=10)
    assert refused.value.sentence.startswith("The finished clip is 0.0 MB, more than the 0.0 MB")


def test_a_worker_advertisement_arrives_as_it_left() -> None:
    ad = WorkerAd(
        "gpu-1",
        "box",
        42,
        Capability.serving(["tiny"], max_video_pixels=5, gpu_total_bytes=80 * 2**30),
        started_at=1.0,
        said_at=2.0,
        safety={"classifiers": ["nudenet"]},
    )
    assert WorkerAd.from_metadata(ad.to_metadata()) == ad
    assert ad.queue == "reelbot.worker.gpu-1"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--broker"], "--broker needs an address"),
        (["--broker", "redis://h:6379/0", "--burst"], "--burst and --database work on the bot"),
        (["--broker", "ftp://h"], "is not a broker address"),
        (["--broker", "redis://h:6379/0", "--max-size", "832x480"], "is not like 832x480x81"),
    ],
)
def test_reelbot_worker_broker_refuses_bad_options(options: list[str], message: str) -> None:
    parser = argparse.ArgumentParser()
    add_worker_arguments(parser)
    err = io.StringIO()
    settings = CoreSettings(_env_file=None)  # type: ignore[call-arg]
    assert run_worker(parser.parse_args(options), settings, err=err) == 2
    assert message in err.getvalue()
