"""Helpers for the bot's tests: jobs to render, and the end-to-end harness."""

from __future__ import annotations

import time
from dataclasses import replace

from jobqueue.models import Job, JobKind, JobRequest, JobStatus, Stage


def make_job(**changes: object) -> Job:
    now = time.time()
    job = Job(
        id=7, kind=JobKind.CREATE, status=JobStatus.DONE, request=JobRequest(prompt="a cat"),
        user_id=42, guild_id=1, channel_id=2, parent_id=None, idempotency_key=None, priority=0,
        attempts=1, max_attempts=3, created_at=now - 30, updated_at=now, started_at=now - 20,
        finished_at=now, stage=Stage.ENCODING, step=2, total_steps=2, worker_id="w",
        lease_expires_at=None, cancel_requested=False, rewritten_prompt="a fluffy cat",
        rewrite_note=None, seed=1234, model="tiny", result_path="data/clips/7.mp4", width=112,
        height=64, frames=9, fps=16, error=None, error_detail=None, status_message_id=None,
        result_message_id=None, delivered_at=None,
    )  # fmt: skip
    return replace(job, **changes)  # type: ignore[arg-type]
