"""Camera moves and motion levels a user may ask for: the words, and the checks at the door.

The ``camera`` and ``motion`` of a :class:`~pipeline.request.ClipRequest` are one of these
names (``None`` when left out: the model decides).
"""

from __future__ import annotations

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
