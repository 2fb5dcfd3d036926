"""What a job is: its kind, its status, what was asked for, and how far it has got."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

from pipeline.request import ClipRequest


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_active(self) -> bool:
        return self in ACTIVE_STATUSES

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


ACTIVE_STATUSES = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
TERMINAL_STATUSES = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED})

NO_MESSAGE = 0
"""``result_message_id`` of a job delivered with nothing to point at (channel or clip gone)."""


class JobKind(StrEnum):
    CREATE = "create"
    ANIMATE = "animate"
    RETRY = "retry"
    REMIX = "remix"
    EXTEND = "extend"
    HD = "hd"
    DRAFTS = "drafts"
    """Four quick drafts of a prompt, posted as a 2x2 grid."""
    VARY = "vary"
    """Four new drafts near draft ``request.draft`` of the parent's grid."""
    RENDER = "render"
    """The full clip from draft ``request.draft`` of the parent's grid."""
    SHOT = "shot"
    """One shot of a storyboard (jobqueue.storyboards): from text, or from the last frame of
    the shot before it (its parent), whose frames it does not repeat."""
    FILM = "film"
    """A storyboard's shots joined into one film: recorded already done, never run."""

    @property
    def task(self) -> str:
        """``"i2v"`` when the job starts from an image (an upload or a parent's last frame)."""
        return "i2v" if self in (JobKind.ANIMATE, JobKind.EXTEND) else "t2v"

    @property
    def makes_drafts(self) -> bool:
        """Whether the job's result is a grid of drafts rather than one clip."""
        return self in (JobKind.DRAFTS, JobKind.VARY)

    @property
    def starts_from_draft(self) -> bool:
        """Whether the job starts from one draft of its parent's grid (``request.draft``)."""
        return self in (JobKind.VARY, JobKind.RENDER)


class Stage(StrEnum):
    WAITING = "waiting"
    REWRITING = "rewriting"
    GENERATING = "generating"
    ENCODING = "encoding"


def progress_values(
    *,
    stage: Stage | None,
    step: int | None,
    total_steps: int | None,
    rewritten_prompt: str | None,
    rewrite_note: str | None,
) -> dict[str, Any]:
    """A running job's progress as its ``jobs`` columns, only what is given (the rest stays):
    what a worker writes to the queue, or sends through the broker."""
    given = {
        "stage": stage.value if stage is not None else None,
        "step": step,
        "total_steps": total_steps,
        "rewritten_prompt": rewritten_prompt,
        "rewrite_note": rewrite_note,
    }
    return {name: value for name, value in given.items() if value is not None}


@dataclass
class JobRequest:
    """What the user asked for, as given; the worker resolves defaults when it runs."""

    prompt: str
    negative_prompt: str = ""
    aspect: str = "16:9"
    duration_s: float | None = None
    frames: int | None = None
    seed: int | None = None
    steps: int | None = None
    guidance: float | None = None
    enhance: bool = True
    model: str | None = None
    image_path: str | None = None
    hd: bool = False
    draft: int | None = None
    """Render and Vary: the number (1-4) of the parent's draft they start from."""
    camera: str | None = None
    motion: str | None = None
    loop: bool = False
    end_image_path: str | None = None
    """/animate's ``end_image``: the picture the clip ends on."""

    @property
    def ends_on_frame(self) -> bool:
        """Whether the clip ends on a chosen frame (a loop, or an end image): only a
        first-last-frame model makes it."""
        return self.loop or self.end_image_path is not None

    def as_asked(self) -> ClipRequest:
        """The clip this asks for, as the pipeline checks and resolves it."""
        return ClipRequest(
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            aspect=self.aspect,
            frames=self.frames,
            duration_s=self.duration_s,
            seed=self.seed,
            steps=self.steps,
            guidance=self.guidance,
            hd=self.hd,
            camera=self.camera,
            motion=self.motion,
            loop=self.loop,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> JobRequest:
        data = json.loads(text)
        known = {item.name for item in fields(cls)}
        # Rows written by a newer version may carry options this one does not know.
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass
class Job:
    id: int
    kind: JobKind
    status: JobStatus
    request: JobRequest
    user_id: int
    guild_id: int | None
    channel_id: int | None
    parent_id: int | None
    idempotency_key: str | None
    priority: int
    attempts: int
    max_attempts: int
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    stage: Stage
    step: int
    total_steps: int
    worker_id: str | None
    lease_expires_at: float | None
    cancel_requested: bool
    rewritten_prompt: str | None
    rewrite_note: str | None
    seed: int | None
    model: str | None
    result_path: str | None
    width: int | None
    height: int | None
    frames: int | None
    fps: int | None
    error: str | None
    error_detail: str | None
    status_message_id: int | None
    result_message_id: int | None
    delivered_at: float | None
    version: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per stage of the finished run: rewrite, load, denoise, decode, encode."""
    safety_verdict: str | None = None
    """What the output safety check found (see jobqueue.safety.Verdict); None: not checked."""
    safety_scores: dict[str, float] = field(default_factory=dict)
    safety_flagged: list[str] = field(default_factory=list)
    safety_hold: bool = False
    """The clip must not be posted in an ordinary channel (the check held it back)."""
    safety_state: str | None = None
    """What became of a held clip (see jobqueue.safety.HeldState)."""
    wait_note: str | None = None
    """Why a waiting job does not start (no worker serves its model, the broker is down)."""

    @property
    def task(self) -> str:
        """``"i2v"`` when the job starts from an image: its kind's task, and a storyboard's
        shot after the first (it starts from the last frame of the shot before)."""
        if self.kind is JobKind.SHOT and self.parent_id is not None:
            return "i2v"
        return self.kind.task

    @property
    def percent(self) -> int:
        """Progress through the denoising steps, 0-100 (100 once done)."""
        if self.status is JobStatus.DONE:
            return 100
        if self.total_steps <= 0:
            return 0
        return min(100, int(100 * self.step / self.total_steps))

    @property
    def elapsed(self) -> float | None:
        """Seconds since the job's current attempt started (until it finished)."""
        if self.started_at is None:
            return None
        end = self.finished_at if self.finished_at is not None else time.time()
        return max(0.0, end - self.started_at)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        values = {item.name: row[item.name] for item in fields(cls) if item.name in row}
        values["kind"] = JobKind(row["kind"])
        values["status"] = JobStatus(row["status"])
        values["stage"] = Stage(row["stage"])
        values["request"] = JobRequest.from_json(row["request"])
        values["cancel_requested"] = bool(row["cancel_requested"])
        values["timings"] = json.loads(row["timings"]) if row.get("timings") else {}
        values["safety_scores"] = json.loads(row.get("safety_scores") or "{}")
        values["safety_flagged"] = json.loads(row.get("safety_flagged") or "[]")
        values["safety_hold"] = bool(row.get("safety_hold"))
        return cls(**values)


@dataclass
class JobResult:
    """What a worker reports when a clip is made."""

    result_path: str
    width: int
    height: int
    frames: int
    fps: int
    seed: int
    model: str
    steps: int
    rewritten_prompt: str | None = None
    rewrite_note: str | None = None
    shape_key: str | None = None
    """Model and generated size (see eta.py); computed from the fields above when None."""
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class WorkerInfo:
    """A worker process that has been seen recently."""

    worker_id: str
    pid: int | None
    host: str | None
    model: str | None
    started_at: float
    last_seen: float
    job_id: int | None
    kind: str = "local"
    """``local`` (beside the bot, on its SQLite file) or ``remote`` (through the broker)."""
    models: list[str] | None = None
    """The models it serves; None: any model (a local worker loads what a job asks for)."""
    max_video_pixels: int | None = None
    """The largest clip it takes, width x height x frames; None: any size."""
    gpu_total_bytes: int | None = None
