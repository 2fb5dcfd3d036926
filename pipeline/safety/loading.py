"""Finding and loading the configured classifiers by name.

A name is either one of the packaged classifiers (``nudenet``, ``opennsfw``) or
``package.module:factory``: the factory is called without arguments and must return an object
with the :class:`~pipeline.safety.base.FrameClassifier` shape (a ``name``, its
``default_thresholds`` and ``score(frames)``). That is how a server owner plugs in another
model, for example one that also knows gore.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from pipeline.safety.base import FrameClassifier
from pipeline.safety.packaged import NudeNetClassifier, OpenNsfwClassifier

PACKAGED: dict[str, Callable[[], FrameClassifier]] = {
    "nudenet": NudeNetClassifier,
    "opennsfw": OpenNsfwClassifier,
}
DEFAULT_CLASSIFIERS = ("nudenet", "opennsfw")


class SafetyUnavailable(Exception):
    """A classifier could not be loaded or could not look at a clip; the message says why."""


def load_classifier(spec: str) -> FrameClassifier:
    """The classifier ``spec`` names, loaded; raises :class:`SafetyUnavailable`."""
    factory = PACKAGED.get(spec) or _factory(spec)
    try:
        classifier = factory()
    except Exception as exc:
        raise SafetyUnavailable(f"the safety classifier {spec!r} failed to load: {exc}") from exc
    if not isinstance(classifier, FrameClassifier):
        raise SafetyUnavailable(
            f"{spec!r} made a {type(classifier).__name__}, which has no name,"
            " default_thresholds and score(frames)"
        )
    return classifier


def _factory(spec: str) -> Callable[[], FrameClassifier]:
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        known = ", ".join(PACKAGED)
        raise SafetyUnavailable(
            f"unknown safety classifier {spec!r}: use {known} or module:factory"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SafetyUnavailable(f"cannot import {module_name!r} for {spec!r}: {exc}") from exc
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise SafetyUnavailable(f"{module_name!r} has no callable {attribute!r}")
    return factory
