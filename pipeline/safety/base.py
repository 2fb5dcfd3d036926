"""What every output classifier is, and what a check of one clip found.

A classifier looks at frames (``(H, W, 3)`` uint8 RGB arrays) and gives each frame a score
from 0 to 1 per category it knows (``{"nudity": 0.93}``); ``default_thresholds`` names those
categories and the score from which a frame counts as unsafe. Anything with that shape can be
plugged in (see :func:`pipeline.safety.loading.load_classifier`): the two packaged models are
two implementations among others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

FrameScores = Mapping[str, float]
"""One frame's score per category, each from 0 (surely fine) to 1 (surely unsafe)."""


@runtime_checkable
class FrameClassifier(Protocol):
    """A model that scores frames for unsafe content, loaded once and reused."""

    @property
    def name(self) -> str:
        """Short, stable name for logs and the stored verdict (``"nudenet"``)."""
        ...

    @property
    def default_thresholds(self) -> Mapping[str, float]:
        """Each category this classifier scores, with the score from which a frame is unsafe."""
        ...

    def score(self, frames: Sequence[np.ndarray]) -> list[FrameScores]:
        """One :data:`FrameScores` per frame, in order. May be slow: callers use a thread."""
        ...


@dataclass(frozen=True)
class ClipScores:
    """What the classifiers found in one clip's sampled frames.

    ``scores`` holds each category's highest score over the frames (one bad frame is enough),
    ``worst_frame`` the index, among the sampled frames, where it was seen.
    """

    scores: dict[str, float]
    worst_frame: dict[str, int] = field(default_factory=dict)
    frames_checked: int = 0
    classifiers: tuple[str, ...] = ()
    seconds: float = 0.0

    def flagged(self, thresholds: Mapping[str, float]) -> list[str]:
        """The categories at or over their threshold, worst first (a threshold of 0 flags
        every category that was scored, whatever the frames show)."""
        over = [
            category
            for category, score in self.scores.items()
            if category in thresholds and score >= thresholds[category]
        ]
        return sorted(over, key=lambda category: -self.scores[category])

    def summary(self) -> str:
        """``nudity 0.93, nsfw 0.12`` (worst first), for logs and people."""
        ranked = sorted(self.scores.items(), key=lambda item: -item[1])
        return ", ".join(f"{category} {score:.2f}" for category, score in ranked)


def worst_of(per_frame: Sequence[FrameScores]) -> tuple[dict[str, float], dict[str, int]]:
    """The highest score per category over ``per_frame``, and the frame where it was seen."""
    worst: dict[str, float] = {}
    where: dict[str, int] = {}
    for index, frame_scores in enumerate(per_frame):
        for category, score in frame_scores.items():
            if category not in worst or score > worst[category]:
                worst[category] = float(score)
                where[category] = index
    return worst, where
