"""Why a generation did not happen, each as a sentence a user can read."""

from __future__ import annotations


class InvalidRequest(ValueError):
    """A request the model cannot honour; the message names the value and the allowed range."""


class GenerationCancelled(Exception):
    """The caller asked to stop; no frames were kept."""


class ModelUnavailable(RuntimeError):
    """The model could not be loaded; the message says what to do instead."""
