"""How long a job will take, from how long recent finished jobs took.

A waiting job's model and size are only known once a worker resolves its options, so the
estimate goes in two steps: the most recent finished job asked for the same way
(``request_key``: task, model, aspect, frames or duration, steps, HD) tells which model and
shape (``shape_key``: model and width x height x frames x steps) those options produce; the
median run time of recent finished jobs of that model and shape is the estimate. With no
such job, the median of any recent jobs is used; with no finished job at all, there is no
estimate (None).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence

import sqlite_utils

from jobqueue.models import JobKind, JobRequest
from jobqueue.sql import IS_DONE

RECENT_JOBS = 20


def request_key(kind: JobKind, request: JobRequest) -> str:
    """The options that decide a job's model and shape, as stored in ``jobs.request_key``."""
    drafting = kind.makes_drafts or kind.starts_from_draft
    options = [
        # Drafts, Vary and Render run other sizes and step counts than a plain clip.
        f"{kind.task}-{kind.value}" if drafting else kind.task,
        request.model,
        request.aspect,
        request.frames,
        request.duration_s,
        request.steps,
        request.hd,
    ]
    return json.dumps(options)


def shape_key(*, model: str, width: int, height: int, frames: int, steps: int) -> str:
    return f"{model}|{width}x{height}x{frames}x{steps}"


def estimate_seconds(db: sqlite_utils.Database, key: str) -> float | None:
    """Expected run time of a job with ``request_key`` ``key``."""
    shape = db.execute(
        f"SELECT shape_key FROM jobs WHERE {IS_DONE} AND request_key = ?"
        " ORDER BY finished_at DESC LIMIT 1",
        [key],
    ).fetchone()
    if shape is not None and shape[0] is not None:
        same_shape = _column(
            db,
            f"SELECT run_seconds FROM jobs WHERE {IS_DONE} AND shape_key = ?"
            " AND run_seconds IS NOT NULL ORDER BY finished_at DESC LIMIT ?",
            [shape[0], RECENT_JOBS],
        )
        if same_shape:
            return statistics.median(same_shape)
    return typical_seconds(db)


def typical_seconds(db: sqlite_utils.Database) -> float | None:
    """Median run time of the most recent finished jobs of any kind."""
    recent = _column(
        db,
        f"SELECT run_seconds FROM jobs WHERE finished_at IS NOT NULL AND {IS_DONE}"
        " AND run_seconds IS NOT NULL ORDER BY finished_at DESC LIMIT ?",
        [RECENT_JOBS],
    )
    return statistics.median(recent) if recent else None


def eta_seconds(
    *,
    own: float | None,
    typical: float | None,
    jobs_ahead: int,
    running_elapsed: Sequence[float],
    workers: int,
) -> float | None:
    """Seconds until a waiting job's clip is ready.

    The jobs ahead and what is left of the running ones are shared among the workers;
    then the job itself runs.
    """
    own = own if own is not None else typical
    typical = typical if typical is not None else own
    if own is None or typical is None:
        return None
    running_left = sum(max(0.0, typical - elapsed) for elapsed in running_elapsed)
    return (running_left + jobs_ahead * typical) / max(1, workers) + own


def _column(db: sqlite_utils.Database, sql: str, params: list[object]) -> list[float]:
    return [float(row[0]) for row in db.execute(sql, params)]
