"""Camera moves and motion levels a user may ask for: the words, the checks at the door, and
what the video model is given for them.

The ``camera`` and ``motion`` of a :class:`~pipeline.request.ClipRequest` are one of these
names (``None`` when left out: the model decides). Wan and LTX follow camera language written
in the prompt, so a move becomes a sentence after the prompt the model gets (after any rewrite,
which cannot lose it: :func:`directed_prompt`); the rewriter is told the move as a note after
the idea (:func:`idea_with_direction`) so that its scene agrees. Motion also moves the flow
shift of the models that sample with one (:func:`motion_flow_shift`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from pipeline.errors import InvalidRequest

CAMERA_MOVES = (
    "static",
    "pan left",
    "pan right",
    "tilt up",
    "tilt down",
    "zoom in",
    "zoom out",
    "dolly in",
    "dolly out",
    "orbit",
    "handheld",
)
MOTION_LEVELS = ("low", "high")

# Phrased as the captions Wan and LTX were trained on describe shots ("the camera slowly
# zooms in"), not as the user's one-word choice, which the text encoder reads less surely.
CAMERA_PHRASES: Mapping[str, str] = MappingProxyType(
    {
        "static": "Static camera, locked-off shot.",
        "pan left": "The camera slowly pans to the left.",
        "pan right": "The camera slowly pans to the right.",
        "tilt up": "The camera slowly tilts up.",
        "tilt down": "The camera slowly tilts down.",
        "zoom in": "The camera slowly zooms in.",
        "zoom out": "The camera slowly zooms out.",
        "dolly in": "The camera dollies in, moving forward toward the subject.",
        "dolly out": "The camera dollies out, moving back away from the subject.",
        "orbit": "The camera orbits around the subject.",
        "handheld": "Handheld camera, slight natural shake.",
    }
)
MOTION_PHRASES: Mapping[str, str] = MappingProxyType(
    {
        "low": "Subtle, slow, gentle motion.",
        "high": "Fast, dynamic, energetic motion.",
    }
)

# A larger flow shift spends more of the schedule at high noise, where a clip's layout and
# movement are settled; a smaller one leaves more to the fine detail of a steadier clip
# (HunyuanVideo-I2V's authors lower it for stable clips, raise it for dynamic ones). Kept
# modest: Wan's 480p shift of 3 becomes 2.25 or 4.5, short of the 5 it uses at 720p.
MOTION_SHIFT_FACTORS: Mapping[str, float] = MappingProxyType({"low": 0.75, "high": 1.5})

_SENTENCE_ENDS = (".", "!", "?", "…")
_MOVE = f"(?:{'|'.join(CAMERA_MOVES)})"
_LEVEL = f"(?:{'|'.join(MOTION_LEVELS)})"
_DIRECTION_NOTE = re.compile(
    rf"\s*\((?:camera: {_MOVE}(?:; motion: {_LEVEL})?|motion: {_LEVEL})\)$"
)


def checked_camera(camera: str | None) -> str | None:
    """``camera`` when it is a move reelbot knows; raises InvalidRequest with the choices."""
    if camera is None or camera in CAMERA_MOVES:
        return camera
    raise InvalidRequest(
        f"Camera move {camera!r} is not one reelbot knows; choose one of {', '.join(CAMERA_MOVES)}."
    )


def checked_motion(motion: str | None) -> str | None:
    """``motion`` when it is a known level; raises InvalidRequest with the choices."""
    if motion is None or motion in MOTION_LEVELS:
        return motion
    raise InvalidRequest(f"Motion {motion!r} is not known; choose {' or '.join(MOTION_LEVELS)}.")


def direction_phrases(camera: str | None, motion: str | None) -> tuple[str, ...]:
    """The sentences the video model gets for ``camera`` and ``motion`` (none when left out)."""
    phrases = []
    if (move := checked_camera(camera)) is not None:
        phrases.append(CAMERA_PHRASES[move])
    if (level := checked_motion(motion)) is not None:
        phrases.append(MOTION_PHRASES[level])
    return tuple(phrases)


def directed_prompt(prompt: str, camera: str | None, motion: str | None) -> str:
    """``prompt`` followed by the camera and motion sentences it does not already end with.

    A prompt that already carries them (a render's scene, taken from its drafts) gets them
    once, not twice.
    """
    text = prompt.rstrip()
    for phrase in direction_phrases(camera, motion):
        if phrase in text:
            continue
        if text and not text.endswith(_SENTENCE_ENDS):
            text += "."
        text = f"{text} {phrase}" if text else phrase
    return text


def idea_with_direction(prompt: str, camera: str | None, motion: str | None) -> str:
    """The idea the rewriter is given: the prompt, then a note of the camera move and motion
    asked for, such as ``(camera: zoom in; motion: high)``, which its brief says to keep."""
    notes = []
    if camera is not None:
        notes.append(f"camera: {checked_camera(camera)}")
    if motion is not None:
        notes.append(f"motion: {checked_motion(motion)}")
    if not notes:
        return prompt
    return f"{prompt.rstrip()} ({'; '.join(notes)})"


def idea_without_direction(idea: str) -> str:
    """``idea`` without the note :func:`idea_with_direction` put after it: what the user wrote,
    which a rewrite must keep (the note's words are the brief's to follow, not the subject)."""
    return _DIRECTION_NOTE.sub("", idea)


def motion_flow_shift(shift: float | None, motion: str | None, *, sampler: str) -> float | None:
    """The flow shift for a clip of ``motion``, from the preset's ``shift``.

    Unchanged without a shift (LTX shifts by size itself) and for the step-distilled
    sampler ("lcm"), which only works at the shift it was distilled with.
    """
    level = checked_motion(motion)
    if shift is None or level is None or sampler == "lcm":
        return shift
    return shift * MOTION_SHIFT_FACTORS[level]
