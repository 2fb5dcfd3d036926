"""The output safety check as the terminal commands run it: the worker's classifiers and
thresholds (from the settings) on the clips they wrote, and one ``safety:`` line saying what
they found. The clips are written whatever the verdict: it is the user's own terminal."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from jobqueue.safety import OutputVerdict, SafetyPolicy
    from jobqueue.settings import CoreSettings
    from pipeline.encode import EncodedClip
    from pipeline.safety import SafetyCheck

log = logging.getLogger(__name__)


def safety_verdict(settings: CoreSettings, clips: Sequence[EncodedClip]) -> OutputVerdict:
    """The check on ``clips``, its classifiers loaded once. Several clips are a film's shots,
    judged as the bot judges a storyboard film: by the worst of them, naming the shots."""
    from jobqueue.safety import unchecked, worst_verdict
    from pipeline.safety import SafetyCheck, SafetyUnavailable

    policy = settings.safety_policy()
    try:
        check = SafetyCheck.load(settings.safety_config())
    except SafetyUnavailable as exc:
        return unchecked(policy, str(exc))
    verdicts = [_clip_verdict(check, policy, clip) for clip in clips]
    return verdicts[0] if len(verdicts) == 1 else worst_verdict(verdicts)


def report_safety(out: TextIO, verdict: OutputVerdict) -> None:
    """``safety: safe (...)``, ``safety: UNSAFE, ...`` or ``safety: not checked: ...``."""
    from jobqueue.safety import Verdict

    if verdict.verdict is Verdict.UNCHECKED:
        out.write(f"safety: not checked: {verdict.detail}\n")
        return
    scores = ", ".join(f"{name} {score:.2f}" for name, score in verdict.scores.items())
    if verdict.verdict is Verdict.UNSAFE:
        out.write(f"safety: UNSAFE, the bot would withhold it: {verdict.detail}; all: {scores}\n")
    else:
        out.write(f"safety: safe ({scores}; {verdict.seconds:.2f} s)\n")


def _clip_verdict(check: SafetyCheck, policy: SafetyPolicy, clip: EncodedClip) -> OutputVerdict:
    from jobqueue.safety import judge, unchecked
    from pipeline.safety import SafetyUnavailable

    try:
        scores = check.check_clip(
            clip.path,
            poster=clip.poster_path,
            total_frames=clip.frames,
            size=(clip.width, clip.height),
        )
    except SafetyUnavailable as exc:
        return unchecked(policy, str(exc))
    log.info("safety check of %s: %s", clip.path, scores.summary())
    return judge(policy, scores, check.default_thresholds)
