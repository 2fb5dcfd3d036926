"""Prometheus metrics for /metrics, in a registry handed in (never prometheus-client's global).

Counts and worker memory are read from the shared database at each scrape; finished jobs and
posted clips since the last scrape are observed then too (from the moment this process
started, as Prometheus counters go), so ``reelbot web`` beside a bot reports the same as
the server inside ``reelbot run``. Only the acknowledgement latency is measured where it
happens, in the bot process (:meth:`ReelMetrics.observe_ack`).
"""

from __future__ import annotations

import asyncio
import re
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from jobqueue.models import Job, JobStatus
from jobqueue.telemetry import Mark, Telemetry

STAGE_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
GENERATE_PARTS = ("load", "denoise", "decode")
REASON_LENGTH = 60
_NOTE_REASON = re.compile(r"\(([^()]*)\)\.?$")
_REASON_END = re.compile(r"[:\d]")


def fallback_reason(note: str | None) -> str | None:
    """Why a clip was made from the user's own words, from the job's rewrite note, as a short
    label ("timeout", "lost the subject", "blocked"); None when the rewrite was used."""
    if not note:
        return None
    match = _NOTE_REASON.search(note)
    if match is None:
        return "blocked" if "blocked" in note else "other"
    reason = _REASON_END.split(match.group(1), maxsplit=1)[0].strip().lower()
    return reason[:REASON_LENGTH] or "other"


class ReelMetrics:
    """reelbot's metrics on ``registry``, refreshed from the database before each scrape."""

    def __init__(self, registry: CollectorRegistry, telemetry: Telemetry) -> None:
        self.registry = registry
        self.telemetry = telemetry
        now = time.time()
        self._finished_mark: Mark = (now, 0)
        self._delivered_mark: Mark = (now, 0)
        self._lock = asyncio.Lock()
        self.jobs = Gauge(
            "reelbot_jobs", "Jobs in the queue by status", ["status"], registry=registry
        )
        self.queue_depth = Gauge(
            "reelbot_queue_depth", "Jobs waiting for a worker", registry=registry
        )
        self.finished = Counter(
            "reelbot_jobs_finished",
            "Jobs that ended, by status and kind",
            ["status", "kind"],
            registry=registry,
        )
        self.stage_seconds = Histogram(
            "reelbot_stage_seconds",
            "Seconds each stage of a clip took: rewrite, wait (in the queue), generate,"
            " encode, post (from done to posted in Discord)",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self.rewrite_fallbacks = Counter(
            "reelbot_rewrite_fallbacks",
            "Clips made from the user's own prompt because the rewrite was not used, by reason",
            ["reason"],
            registry=registry,
        )
        self.workers_alive = Gauge(
            "reelbot_workers_alive", "Workers seen within the last minute", registry=registry
        )
        self.gpu_memory = Gauge(
            "reelbot_worker_gpu_memory_bytes",
            "GPU memory each live worker holds (PyTorch's allocator)",
            ["worker"],
            registry=registry,
        )
        self.ack_seconds = Histogram(
            "reelbot_ack_seconds",
            "Seconds from a Discord interaction's creation to the bot's acknowledgement",
            buckets=ACK_BUCKETS,
            registry=registry,
        )

    def observe_ack(self, seconds: float) -> None:
        self.ack_seconds.observe(max(0.0, seconds))

    async def exposition(self) -> bytes:
        """The metrics in Prometheus' text format, brought up to date first."""
        await self.refresh()
        return generate_latest(self.registry)

    async def refresh(self) -> None:
        # One refresh at a time: two scrapes at once must not observe the same job twice.
        async with self._lock:
            counts = await self.telemetry.jobs_by_status()
            for status in JobStatus:
                self.jobs.labels(status.value).set(counts.get(status.value, 0))
            self.queue_depth.set(counts.get(JobStatus.QUEUED.value, 0))
            await self._observe_workers()
            await self._observe_finished()
            await self._observe_deliveries()

    async def _observe_workers(self) -> None:
        workers = await self.telemetry.workers()
        self.workers_alive.set(len(workers))
        self.gpu_memory.clear()
        for found in workers:
            if found.gpu_memory_bytes is not None:
                self.gpu_memory.labels(found.worker.worker_id).set(found.gpu_memory_bytes)

    async def _observe_finished(self) -> None:
        while jobs := await self.telemetry.finished_after(self._finished_mark):
            for job in jobs:
                self._observe_job(job)
            last = jobs[-1]
            self._finished_mark = (last.finished_at or 0.0, last.id)

    def _observe_job(self, job: Job) -> None:
        self.finished.labels(job.status.value, job.kind.value).inc()
        if job.status is not JobStatus.DONE:
            return
        if job.started_at is not None:
            self.stage_seconds.labels("wait").observe(max(0.0, job.started_at - job.created_at))
        timings = job.timings
        if "rewrite" in timings:
            self.stage_seconds.labels("rewrite").observe(timings["rewrite"])
        if any(part in timings for part in GENERATE_PARTS):
            generate = sum(timings.get(part, 0.0) for part in GENERATE_PARTS)
            self.stage_seconds.labels("generate").observe(generate)
        if "encode" in timings:
            self.stage_seconds.labels("encode").observe(timings["encode"])
        reason = fallback_reason(job.rewrite_note)
        if reason is not None:
            self.rewrite_fallbacks.labels(reason).inc()

    async def _observe_deliveries(self) -> None:
        while posted := await self.telemetry.delivered_after(self._delivered_mark):
            for delivery in posted:
                self.stage_seconds.labels("post").observe(max(0.0, delivery.seconds))
            last = posted[-1]
            self._delivered_mark = (last.delivered_at, last.job_id)
