"""Buttons and reactions on a clip make the right job, recorded as coming from the clip."""

from __future__ import annotations

from bot import followups
from jobqueue.models import JobKind, JobRequest
from tests.bot_harness import make_job


def test_retry_keeps_the_request_with_a_new_seed() -> None:
    follow = followups.retry(make_job(request=JobRequest(prompt="a cat", seed=5)))
    assert (follow.kind, follow.parent_id) == (JobKind.RETRY, 7)
    assert (follow.request.prompt, follow.request.seed) == ("a cat", None)


def test_remix_keeps_the_seed_and_changes_the_prompts() -> None:
    follow = followups.remix(make_job(seed=99), "a dog", "blur", camera=None)
    assert (follow.kind, follow.parent_id) == (JobKind.REMIX, 7)
    assert (follow.request.prompt, follow.request.negative_prompt) == ("a dog", "blur")
    assert follow.request.seed == 99


def test_hd_keeps_the_seed_and_asks_for_hd() -> None:
    follow = followups.hd(make_job(seed=99))
    assert (follow.kind, follow.request.seed, follow.request.hd) == (JobKind.HD, 99, True)


def test_extend_continues_the_clip() -> None:
    assert followups.extend(make_job()).kind is JobKind.EXTEND
    assert followups.extend(make_job()).parent_id == 7


def test_an_extension_of_a_text_to_video_clip_uses_the_image_to_video_model() -> None:
    parent = make_job(request=JobRequest(prompt="a cat", model="tiny"))
    assert followups.extend(parent).request.model is None
    animated = make_job(kind=JobKind.ANIMATE, request=JobRequest(prompt="a cat", model="tiny-i2v"))
    assert followups.extend(animated).request.model == "tiny-i2v"


def test_an_animated_clip_stays_image_to_video() -> None:
    parent = make_job(kind=JobKind.ANIMATE, request=JobRequest(prompt="x", image_path="a.png"))
    follow = followups.retry(parent)
    assert (follow.kind, follow.request.image_path) == (JobKind.ANIMATE, "a.png")


def test_an_extension_is_retried_from_the_clip_it_extended() -> None:
    parent = make_job(kind=JobKind.EXTEND, parent_id=3)
    follow = followups.retry(parent)
    assert (follow.kind, follow.parent_id) == (JobKind.EXTEND, 3)
    assert not followups.can_make_hd(parent)
