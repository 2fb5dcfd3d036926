"""Why a clip was not made, each as a sentence a user can read."""

from __future__ import annotations

from pathlib import Path


class ClipFailed(Exception):
    """This clip cannot be made for a reason its user can read: ``sentence`` is for them,
    ``detail`` for the log."""

    def __init__(self, sentence: str, detail: str = "") -> None:
        super().__init__(sentence)
        self.sentence = sentence
        self.detail = detail or f"{type(self).__name__}: {sentence}"


class InvalidRequest(ClipFailed, ValueError):
    """A request the model cannot honour; the message names the value and the allowed range."""


class ModelUnavailable(ClipFailed, RuntimeError):
    """The model could not be loaded; the message says what to do instead."""


class StartImageUnreadable(ClipFailed):
    """The start image file (or, as ``which`` says, the end image) could not be opened as a
    picture; ``reason`` says why."""

    def __init__(self, path: Path, reason: str, *, which: str = "start image") -> None:
        super().__init__(
            f"The {which} for this clip could not be read; upload it again.",
            f"cannot read the {which} {path}: {reason}",
        )
        self.path = path
        self.reason = reason
        self.which = which


class GenerationCancelled(Exception):
    """The caller asked to stop; no frames were kept."""
