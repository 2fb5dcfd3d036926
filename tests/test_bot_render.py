"""What the bot shows: user text cannot ping or break formatting, and embeds fit Discord."""

from __future__ import annotations

import pytest

from bot import render
from jobqueue.jobs import QueuePosition
from jobqueue.models import JobRequest, JobStatus, Stage
from tests.bot_harness import make_job

HOSTILE = "@everyone @here <@&123456789012345678> <@123456789012345678> **bold** `code` ||spoil||"


def test_escaped_text_cannot_mention_anyone() -> None:
    text = render.escape(HOSTILE)
    assert "@everyone" not in text
    assert "@here" not in text
    assert "<@&123456789012345678>" not in text
    assert "<@123456789012345678>" not in text
    assert "\\*\\*bold\\*\\*" in text
    assert "\\`code\\`" in text


def test_prompt_cannot_start_a_heading_or_quote_on_a_new_line() -> None:
    assert "\n" not in render.escape("cat\n# Title\n> quote")


@pytest.mark.parametrize("limit", [10, 100, 1024])
def test_long_text_is_cut_to_the_limit(limit: int) -> None:
    text = render.shown("*_" * 3000, limit)
    assert len(text) <= limit
    assert text.endswith(render.ELLIPSIS)


def test_clip_embed_fits_discord_limits_with_huge_prompts() -> None:
    request = JobRequest(prompt="p" * 5000, negative_prompt="n" * 5000)
    embed = render.clip_embed(make_job(request=request, rewritten_prompt="r" * 5000))
    assert len(embed) <= 6000
    assert embed.description is not None
    assert len(embed.description) <= render.EMBED_DESCRIPTION_LIMIT
    assert all(len(field.value or "") <= render.EMBED_FIELD_LIMIT for field in embed.fields)


def test_clip_embed_names_the_requester_seed_and_model() -> None:
    embed = render.clip_embed(make_job(request=JobRequest(prompt=HOSTILE)))
    values = {field.name: field.value for field in embed.fields}
    assert values["Requested by"] == "<@42>"
    assert values["Seed"] == "1234"
    assert values["Model"] == "tiny"
    assert "@everyone" not in (embed.description or "")


def test_details_embed_fits_with_huge_prompts() -> None:
    request = JobRequest(prompt="p" * 9000, negative_prompt="n" * 5000)
    embed = render.details_embed(make_job(request=request, rewritten_prompt="r" * 5000))
    assert len(embed) <= 6000


def test_status_lines_fit_a_message_and_say_where_the_job_is() -> None:
    queued = make_job(status=JobStatus.QUEUED, request=JobRequest(prompt="x" * 5000))
    line = render.status_line(queued, QueuePosition(position=3, waiting_total=9, eta_seconds=125))
    assert len(line) <= render.CONTENT_LIMIT
    assert "number 3 of 9" in line
    assert "about 2 min" in line
    running = make_job(status=JobStatus.RUNNING, stage=Stage.GENERATING, step=1, total_steps=4)
    assert "25%" in render.status_line(running)


def test_failure_is_a_sentence() -> None:
    failed = make_job(status=JobStatus.FAILED, error="The model ran out of GPU memory.")
    line = render.finished_line(failed)
    assert line.startswith("❌")
    assert line.endswith("The model ran out of GPU memory.")
