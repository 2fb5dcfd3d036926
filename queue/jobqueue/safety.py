"""Output safety: each server's policy, the verdict stored with every clip, and held clips.

The worker looks at every clip before its job is done (:class:`OutputGuard`, which loads
the classifiers of :mod:`pipeline.safety` once): it stores the verdict, the worst score per
category and the categories over the server's thresholds, and whether the clip is held
(``safety_hold``: never posted in an ordinary channel). The bot decides, when it delivers a
held clip, between withholding it and, in an age-restricted channel of a server whose mode is
``spoiler``, posting it as a spoiler (:class:`HeldClips`, whose changes are audited like every
moderation action). Moderators review withheld clips, release one (it is then posted) or
delete it.

A held clip that no moderator released is shown nowhere: anything that shows clips outside
the channel's normal delivery (a gallery, links, a start frame for someone else's Extend)
asks :func:`may_show` or :func:`may_build_on` first. Nor is it seen forming: a running job's
live previews pass the same classifiers under the same policy before they are kept for the
bot (:meth:`ClipJudge.preview_screen`), in every channel (a preview is no spoilered file, so
an age-restricted channel in ``spoiler`` mode sees no flagged preview either).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from jobqueue.clipfiles import delete_job_files, delete_uploaded_pictures
from jobqueue.db import Database
from jobqueue.models import Job, JobKind, JobStatus
from jobqueue.moderation import AUTOMATIC_ACTOR_ID, DM_GUILD_ID, AuditAction, Moderation
from jobqueue.moderation.durations import format_duration
from jobqueue.moderation.models import AuditNote, ModerationError
from jobqueue.store import fetch_job, next_version, read_state, rows, write_state
from pipeline.encode import EncodedClip
from pipeline.errors import ClipFailed
from pipeline.preview import PreviewScreen
from pipeline.safety import (
    ClipScores,
    SafetyCheck,
    SafetyConfig,
    SafetyUnavailable,
    thresholds_for,
)
from pipeline.safety.packaged import NSFW_THRESHOLD, NUDITY_THRESHOLD

log = logging.getLogger(__name__)

PACKAGED_THRESHOLDS = {"nudity": NUDITY_THRESHOLD, "nsfw": NSFW_THRESHOLD}
CHECK_STATUS_KEY = "safety_check"
"""``queue_state`` key where each worker says which classifiers it runs (or why none)."""

PREVIEW_FRAMES = 4
"""Frames of each clip of a live preview (each draft of a drafts run) the classifiers look at,
spread over it: each preview is the whole clip's current estimate, which changes little from
one preview to the next, and the finished clip is checked at 12 frames before it is posted."""

PARENT_WITHHELD = (
    "That clip was withheld by the safety check; only its owner can make more from it."
)


class SafetyMode(StrEnum):
    """What a server does with a clip the check holds back. Values are stored."""

    WITHHOLD = "withhold"
    SPOILER = "spoiler"
    OFF = "off"


MODE_MEANINGS = {
    SafetyMode.WITHHOLD: (
        "clips the safety check flags are never posted, in any channel; moderators review them"
        " with /admin safety review"
    ),
    SafetyMode.SPOILER: (
        "clips the safety check flags are withheld in ordinary channels and posted as spoilers"
        " in age-restricted ones"
    ),
    SafetyMode.OFF: (
        "reelbot does not look at clips in this server: whatever the model draws is posted,"
        " in every channel"
    ),
}


class IfUnchecked(StrEnum):
    """What happens to a clip when the classifier could not load or look at it."""

    WITHHOLD = "withhold"
    POST = "post"


class Verdict(StrEnum):
    """What the check found in a clip. Values are stored."""

    SAFE = "safe"
    UNSAFE = "unsafe"
    UNCHECKED = "unchecked"
    """The classifier could not load or look at the clip."""
    OFF = "off"
    """The server turned the check off; nobody looked."""


class HeldState(StrEnum):
    """What became of a held clip. Values are stored."""

    WITHHELD = "withheld"
    SPOILERED = "spoilered"
    RELEASED = "released"
    DELETED = "deleted"


@dataclass(frozen=True)
class SafetyPolicy:
    """A server's policy; ``thresholds`` holds only the categories it changed."""

    mode: SafetyMode = SafetyMode.WITHHOLD
    thresholds: dict[str, float] = field(default_factory=dict)
    strikes: bool = False
    """Whether a withheld clip counts as a strike against its user (the model drew it)."""
    if_unchecked: IfUnchecked = IfUnchecked.WITHHOLD


@dataclass(frozen=True)
class OutputVerdict:
    """The check's answer for one clip, as stored with its job."""

    verdict: Verdict
    scores: dict[str, float] = field(default_factory=dict)
    flagged: tuple[str, ...] = ()
    hold: bool = False
    detail: str = ""
    """For moderators and logs: the flagged scores and thresholds, or why nobody looked."""
    seconds: float = 0.0
    """How long the classifiers took (sampling included)."""


def judge(
    policy: SafetyPolicy, scores: ClipScores, check_defaults: Mapping[str, float]
) -> OutputVerdict:
    """The verdict on ``scores`` under ``policy``'s thresholds."""
    thresholds = thresholds_for(check_defaults, policy.thresholds)
    flagged = tuple(scores.flagged(thresholds))
    if not flagged:
        return OutputVerdict(
            Verdict.SAFE, dict(scores.scores), detail=scores.summary(), seconds=scores.seconds
        )
    detail = ", ".join(
        f"{category} {scores.scores[category]:.2f} (threshold {thresholds[category]:.2f})"
        for category in flagged
    )
    return OutputVerdict(
        Verdict.UNSAFE,
        dict(scores.scores),
        flagged,
        hold=True,
        detail=detail,
        seconds=scores.seconds,
    )


def unchecked(policy: SafetyPolicy, reason: str) -> OutputVerdict:
    """The verdict when nobody could look: held unless the server chose to post anyway."""
    return OutputVerdict(
        Verdict.UNCHECKED, hold=policy.if_unchecked is IfUnchecked.WITHHOLD, detail=reason
    )


# Worst first: an unsafe shot makes an unsafe film.
_VERDICT_ORDER = (Verdict.UNSAFE, Verdict.UNCHECKED, Verdict.OFF, Verdict.SAFE)


def worst_verdict(verdicts: Sequence[OutputVerdict]) -> OutputVerdict:
    """A film's verdict from its shots' (at least one): the worst of them, each category's
    highest score, every flagged category, held if any shot is, the detail of each shot
    with the worst verdict (named by its number) and the classifiers' time over all."""
    if not verdicts:
        raise ValueError("worst_verdict needs at least one verdict, got none")
    worst = min((shot.verdict for shot in verdicts), key=_VERDICT_ORDER.index)
    scores: dict[str, float] = {}
    for shot in verdicts:
        for category, score in shot.scores.items():
            scores[category] = max(score, scores.get(category, score))
    return OutputVerdict(
        worst,
        scores,
        flagged=tuple(sorted({category for shot in verdicts for category in shot.flagged})),
        hold=any(shot.hold for shot in verdicts),
        detail="; ".join(
            f"shot {number}: {shot.detail}"
            for number, shot in enumerate(verdicts, start=1)
            if shot.verdict is worst
        ),
        seconds=sum(shot.seconds for shot in verdicts),
    )


def is_withheld(job: Job) -> bool:
    """Held back and not (yet) released or posted as a spoiler: to be shown to nobody."""
    return job.safety_hold and job.safety_state not in (HeldState.SPOILERED, HeldState.RELEASED)


def may_show(job: Job) -> bool:
    """Whether ``job``'s clip may be shown outside its channel's delivery (a gallery, a link).

    A clip posted as a spoiler stays in its age-restricted channel: it is not shown elsewhere.
    """
    return job.status is JobStatus.DONE and (
        not job.safety_hold or job.safety_state == HeldState.RELEASED
    )


def may_build_on(parent: Job, user_id: int) -> bool:
    """Whether ``user_id`` may start a job from ``parent``'s clip (a withheld one: its owner
    only, and what they make is checked again)."""
    return not is_withheld(parent) or parent.user_id == user_id


class SafetyPolicies:
    """Each server's policy, with the settings' defaults for what it has not set."""

    def __init__(self, db: Database, defaults: SafetyPolicy) -> None:
        self.db = db
        self.defaults = defaults

    async def policy(self, guild_id: int | None) -> SafetyPolicy:
        guild = _guild(guild_id)
        return await self.db.read(lambda db: read_policy(db, guild, self.defaults))

    async def check_status(self) -> dict[str, Any]:
        """What the workers last said about their classifiers (``classifiers``,
        ``thresholds`` and ``error``); empty until a worker has started."""
        text = await self.db.read(lambda db: read_state(db, CHECK_STATUS_KEY))
        return json.loads(text) if text else {}

    async def known_thresholds(self) -> dict[str, float]:
        """Every category the workers' classifiers score, with its default threshold."""
        status = await self.check_status()
        return dict(status.get("thresholds") or PACKAGED_THRESHOLDS)


def read_policy(db: sqlite_utils.Database, guild_id: int, defaults: SafetyPolicy) -> SafetyPolicy:
    row = db.execute(
        "SELECT mode, thresholds, strikes, if_unchecked FROM safety_policies WHERE guild_id = ?",
        [guild_id],
    ).fetchone()
    if row is None:
        return defaults
    mode, thresholds, strikes, if_unchecked = row
    return SafetyPolicy(
        mode=defaults.mode if mode is None else SafetyMode(mode),
        thresholds={**defaults.thresholds, **json.loads(thresholds or "{}")},
        strikes=defaults.strikes if strikes is None else bool(strikes),
        if_unchecked=defaults.if_unchecked if if_unchecked is None else IfUnchecked(if_unchecked),
    )


def _write_policy(db: sqlite_utils.Database, guild_id: int, column: str, value: Any) -> None:
    db.execute("INSERT OR IGNORE INTO safety_policies (guild_id) VALUES (?)", [guild_id])
    db.execute(f"UPDATE safety_policies SET {column} = ? WHERE guild_id = ?", [value, guild_id])


class ClipJudge:
    """The classifiers, loaded once, and the verdict on a clip under a given policy.

    It needs no database: a worker on another host judges its clips with the policy the bot
    sent along with the job.
    """

    def __init__(self, config: SafetyConfig) -> None:
        self.config = config
        self.check: SafetyCheck | None = None
        self.load_error: str | None = None

    async def load(self) -> float:
        """Load the classifiers (on the CPU, in a thread); the seconds it took.

        A classifier that cannot load does not stop the worker: the error is logged and each
        clip is then handled as its server's policy says for unchecked clips.
        """
        started = time.perf_counter()
        try:
            self.check = await asyncio.to_thread(SafetyCheck.load, self.config)
        except SafetyUnavailable as exc:
            self.load_error = str(exc)
            log.exception("the output safety check could not load; clips stay unchecked")
        return time.perf_counter() - started

    def status(self) -> dict[str, Any]:
        """Which classifiers run (``classifiers``, ``thresholds``, ``error``), for /admin."""
        return {
            "classifiers": [] if self.check is None else list(self.config.classifiers),
            "thresholds": {} if self.check is None else self.check.default_thresholds,
            "error": self.load_error,
        }

    async def judge(
        self,
        job_id: int,
        clip: EncodedClip,
        policy: SafetyPolicy,
        *,
        frames: np.ndarray | None = None,
    ) -> OutputVerdict:
        """The verdict on job ``job_id``'s finished clip under ``policy``: ``frames`` sampled
        from it before it was encoded (:attr:`pipeline.clip.MadeClip.safety_frames`), else
        those read back from the file, and its poster. Never raises for the classifier's
        sake: a failure to look is an unchecked verdict."""
        if policy.mode is SafetyMode.OFF:
            return OutputVerdict(Verdict.OFF, detail="the server turned the check off")
        if self.check is None:
            return unchecked(policy, self.load_error or "the safety check is not loaded")
        check = self.check
        kept = frames if frames is not None and len(frames) > 0 else None
        try:
            if kept is not None:
                scores = await asyncio.to_thread(check.check_frames, kept, poster=clip.poster_path)
            else:
                scores = await asyncio.to_thread(
                    check.check_clip,
                    clip.path,
                    poster=clip.poster_path,
                    total_frames=clip.frames,
                    size=(clip.width, clip.height),
                )
        except SafetyUnavailable as exc:
            log.warning("job %d: the safety check could not look at the clip: %s", job_id, exc)
            return unchecked(policy, str(exc))
        verdict = judge(policy, scores, check.default_thresholds)
        log.info(
            "job %d: safety %s in %.2f s over %d frames %s (%s)",
            job_id,
            verdict.verdict,
            scores.seconds,
            scores.frames_checked,
            "read back from the file" if kept is None else "kept from before encoding",
            verdict.detail,
        )
        return verdict

    def preview_screen(
        self, job_id: int, policy: SafetyPolicy, *, on_refused: Callable[[], None]
    ) -> PreviewScreen | None:
        """What job ``job_id``'s live previews pass before they are kept for the bot: a
        preview the check would hold is refused, and ``on_refused`` (which removes the
        preview shown last) runs once. None where the server turned the check off: previews
        are shown as they come. Runs on the pipeline's preview thread."""
        if policy.mode is SafetyMode.OFF:
            return None
        warned_unchecked = False

        def screen_preview(clips: np.ndarray) -> bool:
            nonlocal warned_unchecked
            verdict = self.preview_verdict(clips, policy)
            if verdict.verdict is Verdict.UNCHECKED and not verdict.hold and not warned_unchecked:
                warned_unchecked = True
                log.warning(
                    "job %d: live previews are shown unchecked, as its server chose: %s",
                    job_id,
                    verdict.detail,
                )
            if not verdict.hold:
                return True
            log.info(
                "job %d: live previews stop, the safety check holds one: %s", job_id, verdict.detail
            )
            on_refused()
            return False

        return screen_preview

    def preview_verdict(self, clips: np.ndarray, policy: SafetyPolicy) -> OutputVerdict:
        """The verdict on one live preview under ``policy``, from its clips' frames
        ((B, F, H, W, 3) uint8, :data:`PREVIEW_FRAMES` of each looked at); blocks (the
        preview thread's work)."""
        if self.check is None:
            return unchecked(policy, self.load_error or "the safety check is not loaded")
        try:
            scores = self.check.check_clips(clips, count=PREVIEW_FRAMES)
        except SafetyUnavailable as exc:
            return unchecked(policy, str(exc))
        return judge(policy, scores, self.check.default_thresholds)


class OutputGuard:
    """The worker's side on the bot's host: the classifiers (a :class:`ClipJudge`), each
    server's policy, and the verdict stored with each job."""

    def __init__(self, db: Database, config: SafetyConfig, defaults: SafetyPolicy) -> None:
        self.db = db
        self.policies = SafetyPolicies(db, defaults)
        self.clips = ClipJudge(config)

    async def load(self) -> float:
        """Load the classifiers and tell /admin which run; the seconds it took."""
        seconds = await self.clips.load()
        await self.report_status(self.clips.status())
        return seconds

    async def report_status(self, status: dict[str, Any]) -> None:
        """Record which classifiers the workers run (a remote worker's, told by the broker)."""
        await self.db.write(lambda db: write_state(db, CHECK_STATUS_KEY, json.dumps(status)))

    async def refuse_withheld_parent(self, job: Job) -> None:
        """Fail a job that starts from a withheld clip it may not start from
        (:func:`withheld_start_refusal`)."""
        if job.parent_id is None:
            return
        parent_id = job.parent_id
        parent = await self.db.read(lambda db: fetch_job(db, parent_id))
        refusal = None if parent is None else withheld_start_refusal(parent, job.kind, job.user_id)
        if refusal is not None:
            raise ClipFailed(refusal, f"parent job {parent_id} is withheld")

    async def judge(
        self, job: Job, clip: EncodedClip, *, frames: np.ndarray | None = None
    ) -> OutputVerdict:
        """The verdict on ``job``'s finished clip (``frames``: sampled from it before
        encoding, see :meth:`ClipJudge.judge`) under its server's policy."""
        policy = await self.policies.policy(job.guild_id)
        return await self.clips.judge(job.id, clip, policy, frames=frames)

    async def preview_screen(
        self, job: Job, *, on_refused: Callable[[], None]
    ) -> PreviewScreen | None:
        """What ``job``'s live previews pass under its server's policy
        (:meth:`ClipJudge.preview_screen`)."""
        policy = await self.policies.policy(job.guild_id)
        return self.clips.preview_screen(job.id, policy, on_refused=on_refused)

    async def record(self, job_id: int, worker_id: str, verdict: OutputVerdict) -> bool:
        """Store ``verdict`` with the job, if ``worker_id`` still runs it (before it is done,
        so the bot never sees a finished clip without its verdict)."""
        if verdict.verdict is Verdict.UNCHECKED and not verdict.hold:
            log.warning(
                "job %d goes out unchecked, as its server chose: %s", job_id, verdict.detail
            )
        values = [
            verdict.verdict.value,
            json.dumps(verdict.scores),
            json.dumps(list(verdict.flagged)),
            int(verdict.hold),
            job_id,
            worker_id,
        ]

        def write(db: sqlite_utils.Database) -> bool:
            cursor = db.execute(
                "UPDATE jobs SET safety_verdict = ?, safety_scores = ?, safety_flagged = ?,"
                " safety_hold = ?, safety_state = NULL, safety_state_at = NULL,"
                " safety_state_by = NULL WHERE id = ? AND worker_id = ? AND status = ?",
                [*values, JobStatus.RUNNING.value],
            )
            return cursor.rowcount == 1

        return await self.db.write(write)


@dataclass(frozen=True)
class HeldClip:
    """A withheld clip, as moderators review it."""

    job: Job
    withheld_at: float


class HeldClips:
    """The bot's side: policies changed by moderators, and what becomes of held clips.

    Every change writes its audit row in the same transaction (through
    :class:`~jobqueue.moderation.Moderation`), so the mod-log channel hears of each.
    """

    def __init__(self, moderation: Moderation, defaults: SafetyPolicy) -> None:
        self.moderation = moderation
        self.policies = SafetyPolicies(moderation.db, defaults)

    async def policy(self, guild_id: int | None) -> SafetyPolicy:
        return await self.policies.policy(guild_id)

    # --- the policy ---------------------------------------------------------------------

    async def set_mode(
        self, guild_id: int | None, mode: SafetyMode, *, actor_id: int
    ) -> SafetyPolicy:
        return await self._set(guild_id, "mode", mode.value, actor_id, f"mode {mode}")

    async def set_threshold(
        self, guild_id: int | None, category: str, value: float | None, *, actor_id: int
    ) -> SafetyPolicy:
        """Set a category's threshold, or with ``None`` go back to the default."""
        known = await self.policies.known_thresholds()
        if category not in known:
            raise ModerationError(
                f"No classifier scores {category!r}; the categories are {', '.join(known)}."
            )
        current = await self.policy(guild_id)
        own = {name: score for name, score in current.thresholds.items() if name in known}
        if value is None:
            own.pop(category, None)
            detail = f"{category} threshold back to the default"
        else:
            own[category] = value
            detail = f"{category} threshold {value:.2f}"
        return await self._set(guild_id, "thresholds", json.dumps(own), actor_id, detail)

    async def set_strikes(self, guild_id: int | None, on: bool, *, actor_id: int) -> SafetyPolicy:
        detail = "withheld clips count as strikes" if on else "withheld clips are no strikes"
        return await self._set(guild_id, "strikes", int(on), actor_id, detail)

    async def set_if_unchecked(
        self, guild_id: int | None, choice: IfUnchecked, *, actor_id: int
    ) -> SafetyPolicy:
        detail = f"unchecked clips: {choice}"
        return await self._set(guild_id, "if_unchecked", choice.value, actor_id, detail)

    async def _set(
        self, guild_id: int | None, column: str, value: Any, actor_id: int, detail: str
    ) -> SafetyPolicy:
        note = AuditNote(actor_id, AuditAction.SAFETY_SET, detail=detail)
        defaults, guild = self.policies.defaults, _guild(guild_id)

        def change(db: sqlite_utils.Database, now: float) -> tuple[SafetyPolicy, list[AuditNote]]:
            _write_policy(db, guild, column, value)
            return read_policy(db, guild, defaults), [note]

        return await self.moderation._write_audited(guild, change)

    # --- held clips ---------------------------------------------------------------------

    async def withhold(self, job: Job) -> bool:
        """Record that ``job``'s clip is withheld (audited, a strike if the server counts
        them); False if it already was."""
        policy = await self.policy(job.guild_id)
        reason = _held_reason(job)
        note = AuditNote(
            AUTOMATIC_ACTOR_ID,
            AuditAction.OUTPUT_WITHHELD,
            target_user_id=job.user_id,
            target_job_id=job.id,
            reason=reason,
        )
        counts = policy.strikes and job.safety_verdict == Verdict.UNSAFE

        def withhold(db: sqlite_utils.Database, now: float) -> tuple[bool, list[AuditNote]]:
            if not _set_state(db, job.id, HeldState.WITHHELD, None, now, when_state=None):
                return False, []
            notes = [note]
            if counts:
                notes.extend(self._strike(db, job, reason, now))
            return True, notes

        return await self.moderation._write_audited(job.guild_id, withhold)

    def _strike(
        self, db: sqlite_utils.Database, job: Job, reason: str, now: float
    ) -> list[AuditNote]:
        guild = _guild(job.guild_id)
        db.execute(
            "INSERT INTO strikes (guild_id, user_id, created_at, rule_id, category, field)"
            " VALUES (?, ?, ?, NULL, ?, 'clip')",
            [guild, job.user_id, now, f"output: {', '.join(job.safety_flagged)}"],
        )
        ban = self.moderation._ban_for_strikes(db, guild, job.user_id, now=now)
        if ban is None:
            return []
        duration = format_duration(self.moderation.strike_ban_s)
        return [
            AuditNote(
                AUTOMATIC_ACTOR_ID,
                AuditAction.STRIKE_BAN,
                target_user_id=job.user_id,
                reason=ban.reason,
                detail=f"for {duration}",
            )
        ]

    async def spoilered(self, job: Job) -> bool:
        """Record that ``job``'s clip goes to its age-restricted channel as a spoiler
        (audited); False if that was recorded already."""
        note = AuditNote(
            AUTOMATIC_ACTOR_ID,
            AuditAction.OUTPUT_SPOILERED,
            target_user_id=job.user_id,
            target_job_id=job.id,
            reason=_held_reason(job),
        )

        def spoil(db: sqlite_utils.Database, now: float) -> tuple[bool, list[AuditNote]]:
            if not _set_state(db, job.id, HeldState.SPOILERED, None, now, when_state=None):
                return False, []
            return True, [note]

        return await self.moderation._write_audited(job.guild_id, spoil)

    async def review(self, guild_id: int | None) -> list[HeldClip]:
        """The server's withheld clips, newest first."""

        def read(db: sqlite_utils.Database) -> list[HeldClip]:
            found = rows(
                db,
                "SELECT * FROM jobs WHERE safety_state = 'withheld' AND guild_id = ?"
                " ORDER BY finished_at DESC",
                [_guild(guild_id)],
            )
            return [HeldClip(Job.from_row(row), row["safety_state_at"] or 0.0) for row in found]

        return await self.moderation.db.read(read)

    async def release(self, guild_id: int | None, job_id: int, *, actor_id: int) -> Job:
        """Release a withheld clip: the bot posts it (once, as any clip), and the audit log
        names who released it. Raises :class:`ModerationError` with a sentence."""
        held = await self._withheld(guild_id, job_id)
        clip = Path(held.result_path or "")
        if not held.result_path or not await asyncio.to_thread(clip.is_file):
            raise ModerationError(f"The files of clip #{job_id} are gone: nothing to post.")
        return await self._end_withholding(
            guild_id, job_id, HeldState.RELEASED, AuditAction.OUTPUT_RELEASED, actor_id, _undeliver
        )

    async def delete(
        self, guild_id: int | None, job_id: int, clips_dir: Path, *, actor_id: int
    ) -> Job:
        """Delete a withheld clip's files for good, and the pictures it was made from (audited)."""
        deleted = await self._end_withholding(
            guild_id, job_id, HeldState.DELETED, AuditAction.OUTPUT_DELETED, actor_id
        )
        await asyncio.to_thread(delete_job_files, clips_dir, job_id)
        await asyncio.to_thread(delete_uploaded_pictures, deleted)
        return deleted

    async def _end_withholding(
        self,
        guild_id: int | None,
        job_id: int,
        state: HeldState,
        action: AuditAction,
        actor_id: int,
        also: Callable[[sqlite_utils.Database, float, int], None] | None = None,
    ) -> Job:
        """Move a withheld clip to ``state`` (and do ``also``), audited as ``action``."""
        held = await self._withheld(guild_id, job_id)
        note = AuditNote(
            actor_id,
            action,
            target_user_id=held.user_id,
            target_job_id=held.id,
            reason=_held_reason(held),
        )

        def change(db: sqlite_utils.Database, now: float) -> tuple[Job, list[AuditNote]]:
            if not _set_state(db, job_id, state, actor_id, now, when_state=HeldState.WITHHELD):
                raise ModerationError(f"Clip #{job_id} is not withheld any more.")
            if also is not None:
                also(db, now, job_id)
            changed = fetch_job(db, job_id)
            assert changed is not None
            return changed, [note]

        return await self.moderation._write_audited(guild_id, change)

    async def _withheld(self, guild_id: int | None, job_id: int) -> Job:
        job = await self.moderation.db.read(lambda db: fetch_job(db, job_id))
        if job is None or job.guild_id != guild_id:
            raise ModerationError(f"There is no clip #{job_id} in this server.")
        if job.safety_state != HeldState.WITHHELD:
            raise ModerationError(f"Clip #{job_id} is not withheld by the safety check.")
        return job


def _undeliver(db: sqlite_utils.Database, now: float, job_id: int) -> None:
    """Make a job undelivered again, as a change: the bot's delivery posts it like any
    finished clip, exactly once, also after a restart. The "withheld" line becomes the job's
    status message, which the clip replaces."""
    db.execute(
        "UPDATE jobs SET delivered_at = NULL, result_message_id = NULL,"
        " status_message_id = COALESCE(NULLIF(result_message_id, 0), status_message_id),"
        " updated_at = ?, version = ? WHERE id = ?",
        [now, next_version(db), job_id],
    )


def _guild(guild_id: int | None) -> int:
    return DM_GUILD_ID if guild_id is None else guild_id


def _set_state(
    db: sqlite_utils.Database,
    job_id: int,
    state: HeldState,
    actor_id: int | None,
    now: float,
    *,
    when_state: HeldState | None,
) -> bool:
    condition = "safety_state IS NULL" if when_state is None else "safety_state = ?"
    params: list[Any] = [state.value, now, actor_id, job_id]
    if when_state is not None:
        params.append(when_state.value)
    cursor = db.execute(
        "UPDATE jobs SET safety_state = ?, safety_state_at = ?, safety_state_by = ?"
        f" WHERE id = ? AND safety_hold = 1 AND {condition}",
        params,
    )
    return cursor.rowcount == 1


def _held_reason(job: Job) -> str:
    """Why the clip is held, for the audit log: its flagged scores, or that nobody looked."""
    if job.safety_verdict == Verdict.UNCHECKED:
        return "the safety check could not look at it"
    flagged = ", ".join(
        f"{category} {job.safety_scores.get(category, 0.0):.2f}" for category in job.safety_flagged
    )
    return f"flagged: {flagged}" if flagged else "flagged by the safety check"


GRID_WITHHELD = (
    "Those drafts were withheld by the safety check: nothing can be made from them unless a"
    " moderator releases them."
)


def withheld_start_refusal(parent: Job, kind: JobKind, user_id: int) -> str | None:
    """Why ``user_id`` may not start a ``kind`` job from ``parent`` (None: they may).

    A withheld clip starts nothing for anyone but its owner: an Extend continues its frames,
    and HD, Remix and Retry make it again from its seed or prompt. A withheld grid starts no
    Render, Vary or new drafts for anyone, its owner included: a render is the draft made
    larger, which nobody was meant to see.
    """
    if (kind.makes_drafts or kind.starts_from_draft) and parent.kind.makes_drafts:
        return GRID_WITHHELD if is_withheld(parent) else None
    return None if may_build_on(parent, user_id) else PARENT_WITHHELD
