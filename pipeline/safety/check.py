"""One clip in, the classifiers' scores out: the check every output goes through."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.safety.base import ClipScores, FrameClassifier, FrameScores, worst_of
from pipeline.safety.loading import DEFAULT_CLASSIFIERS, SafetyUnavailable, load_classifier
from pipeline.safety.sampling import read_picture, sample_clip, sample_frames

log = logging.getLogger(__name__)

DEFAULT_FRAMES = 12


@dataclass(frozen=True)
class SafetyConfig:
    """Which classifiers look at each clip, and at how many of its frames."""

    classifiers: tuple[str, ...] = DEFAULT_CLASSIFIERS
    frames: int = DEFAULT_FRAMES


class SafetyCheck:
    """Loaded classifiers that look at sampled frames of each clip (CPU work: run it in a
    thread)."""

    def __init__(self, classifiers: Sequence[FrameClassifier], *, frames: int = DEFAULT_FRAMES):
        if not classifiers:
            raise ValueError("a safety check needs at least one classifier")
        if frames < 1:
            raise ValueError(f"frames must be at least 1, got {frames}")
        self.classifiers = tuple(classifiers)
        self.frames = frames

    @classmethod
    def load(cls, config: SafetyConfig) -> SafetyCheck:
        """Load every classifier ``config`` names; raises :class:`SafetyUnavailable`."""
        started = time.perf_counter()
        check = cls([load_classifier(spec) for spec in config.classifiers], frames=config.frames)
        log.info(
            "safety check loaded in %.1f s: %s",
            time.perf_counter() - started,
            ", ".join(classifier.name for classifier in check.classifiers),
        )
        return check

    @property
    def default_thresholds(self) -> dict[str, float]:
        """Every category the classifiers score, with their own thresholds."""
        merged: dict[str, float] = {}
        for classifier in self.classifiers:
            merged.update(classifier.default_thresholds)
        return merged

    def check_clip(
        self,
        path: Path,
        *,
        poster: Path | None = None,
        total_frames: int | None = None,
        size: tuple[int, int] | None = None,
    ) -> ClipScores:
        """Scores of the clip at ``path``: its sampled frames, then its poster if given.

        ``total_frames`` and ``size`` (width, height) save probing the file when known."""
        started = time.perf_counter()
        try:
            frames = sample_clip(path, self.frames, total=total_frames, size=size)
            if poster is not None:
                frames.append(read_picture(poster))
        except Exception as exc:
            raise SafetyUnavailable(f"cannot read the frames of {path.name}: {exc}") from exc
        return self._scored(frames, started)

    def check_frames(
        self, frames: np.ndarray, *, count: int | None = None, poster: Path | None = None
    ) -> ClipScores:
        """Scores of frames in memory ((F, H, W, 3) uint8): ``count`` of them (by default
        as many as of a clip) spread over them, then the poster if given."""
        started = time.perf_counter()
        sampled = sample_frames(frames, self.frames if count is None else count)
        if poster is not None:
            try:
                sampled.append(read_picture(poster))
            except Exception as exc:
                raise SafetyUnavailable(f"cannot read the poster {poster.name}: {exc}") from exc
        return self._scored(sampled, started)

    def check_clips(self, clips: np.ndarray, *, count: int) -> ClipScores:
        """Scores of several clips in memory ((B, F, H, W, 3) uint8), ``count`` frames spread
        over each, every clip looked at on its own (not tiled with the others)."""
        started = time.perf_counter()
        return self._scored(
            [frame for clip in clips for frame in sample_frames(clip, count)], started
        )

    def _scored(self, frames: list[np.ndarray], started: float) -> ClipScores:
        if not frames:
            raise SafetyUnavailable("the clip has no frames to look at")
        per_frame: list[dict[str, float]] = [{} for _ in frames]
        for classifier in self.classifiers:
            try:
                scores = classifier.score(frames)
            except Exception as exc:
                raise SafetyUnavailable(f"{classifier.name} failed on a clip: {exc}") from exc
            _merge(per_frame, scores, classifier.name)
        worst, where = worst_of(per_frame)
        return ClipScores(
            scores=worst,
            worst_frame=where,
            frames_checked=len(frames),
            classifiers=tuple(classifier.name for classifier in self.classifiers),
            seconds=time.perf_counter() - started,
        )


def _merge(per_frame: list[dict[str, float]], scores: Sequence[FrameScores], name: str) -> None:
    if len(scores) != len(per_frame):
        raise SafetyUnavailable(f"{name} scored {len(scores)} of {len(per_frame)} frames")
    for merged, frame_scores in zip(per_frame, scores, strict=True):
        for category, score in frame_scores.items():
            merged[category] = max(merged.get(category, 0.0), _checked_score(score, name))


def _checked_score(score: float, name: str) -> float:
    value = float(score)
    if not 0.0 <= value <= 1.0:
        raise SafetyUnavailable(f"{name} gave a score of {value}, outside 0 to 1")
    return value


def thresholds_for(
    check_defaults: Mapping[str, float], overrides: Mapping[str, float]
) -> dict[str, float]:
    """The classifiers' own thresholds with ``overrides`` (a server's, the settings') on top,
    for the categories the classifiers score."""
    return {category: overrides.get(category, value) for category, value in check_defaults.items()}
