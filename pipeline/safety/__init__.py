"""The output safety check: look at sampled frames of a finished clip before anyone sees it.

:class:`SafetyCheck` loads the configured :class:`FrameClassifier` models once and returns a
clip's :class:`ClipScores` (each category's worst score over the frames). What to do with a
clip over its thresholds is the caller's policy: the worker's (per server) or ``reelbot
generate``'s (it prints the verdict). Knows nothing of Discord, queues or servers.
"""

from __future__ import annotations

from pipeline.safety.base import ClipScores, FrameClassifier, FrameScores
from pipeline.safety.check import DEFAULT_FRAMES, SafetyCheck, SafetyConfig, thresholds_for
from pipeline.safety.loading import (
    DEFAULT_CLASSIFIERS,
    PACKAGED,
    SafetyUnavailable,
    load_classifier,
)

__all__ = [
    "DEFAULT_CLASSIFIERS",
    "DEFAULT_FRAMES",
    "PACKAGED",
    "ClipScores",
    "FrameClassifier",
    "FrameScores",
    "SafetyCheck",
    "SafetyConfig",
    "SafetyUnavailable",
    "load_classifier",
    "thresholds_for",
]
