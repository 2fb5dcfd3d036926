"""A storyboard: an idea as a short list of shots that share one character and style sheet.

Each shot's prompt repeats the sheet, so the video model draws the same people in the same look
from shot to shot (the surveys' trick for multi-shot coherence without a shared memory).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from pipeline.camera import CAMERA_MOVES
from pipeline.errors import InvalidRequest
from pipeline.text import clean_text

log = logging.getLogger(__name__)

MIN_SHOTS = 2
MAX_SHOTS = 8
DEFAULT_SHOTS = 4
# The shortest shot worth a render: under a second a model barely moves.
MIN_SHOT_SECONDS = 1.0
MAX_SCENE_CHARS = 400
MAX_SHEET_CHARS = 600
MAX_IDEA_CHARS = 1000

# The simple plan's beats: a film opens wide and ends on a way out; the middle shots take
# the next beats in turn.
_OPENING = ("Establishing shot: {idea}, the whole setting in view", "dolly in")
_MIDDLE = (
    ("Closer view: {idea}, the main character in focus", "zoom in"),
    ("The action: {idea}, the main moment as it happens", "handheld"),
    ("A new angle: {idea}, seen from the side", "orbit"),
    ("A detail: {idea}, hands, faces and small things up close", "static"),
    ("The surroundings: {idea}, what is around the character", "pan right"),
    ("Looking up: {idea}, the character against the sky", "tilt up"),
)
_CLOSING = ("Closing shot: {idea}, the scene settles as the view widens", "dolly out")
_FALLBACK_LOOK = "the same main character, clothes, colours and lighting in every shot"


@dataclass(frozen=True)
class Shot:
    """One shot: what happens, how the camera moves (a CAMERA_MOVES word or None), how long."""

    scene: str
    camera: str | None
    duration_s: float


@dataclass(frozen=True)
class Plan:
    """The shots of a film, the sheet repeated into each shot's prompt, and ``note``: the
    sentence shown when the model's plan was unusable and a simple one stands in."""

    idea: str
    sheet: str
    shots: tuple[Shot, ...]
    note: str | None = None

    @property
    def duration_s(self) -> float:
        return sum(shot.duration_s for shot in self.shots)

    def shot_prompt(self, index: int) -> str:
        """The video model's prompt for shot ``index`` (0-based): scene, sheet, camera move."""
        shot = self.shots[index]
        parts = [_sentence(shot.scene), _sentence(self.sheet)]
        if shot.camera:
            parts.append(f"Camera: {shot.camera}.")
        return " ".join(part for part in parts if part)

    def to_json(self) -> str:
        return json.dumps(
            {
                "idea": self.idea,
                "sheet": self.sheet,
                "shots": [
                    {"scene": shot.scene, "camera": shot.camera, "duration_s": shot.duration_s}
                    for shot in self.shots
                ],
                "note": self.note,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> Plan:
        """The plan ``to_json`` wrote; raises ValueError naming what is missing or wrong."""
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("shots"), list):
            raise ValueError("a plan is a JSON object with a list of shots")
        shots = tuple(_stored_shot(item) for item in data["shots"])
        if not shots:
            raise ValueError("a plan has at least one shot")
        return cls(
            idea=_stored_text(data, "idea"),
            sheet=_stored_text(data, "sheet"),
            shots=shots,
            note=data.get("note") if isinstance(data.get("note"), str) else None,
        )


def checked_shot_count(shots: int) -> int:
    """``shots`` when a storyboard may have that many; raises InvalidRequest with the range."""
    if not MIN_SHOTS <= shots <= MAX_SHOTS:
        raise InvalidRequest(
            f"A storyboard has {MIN_SHOTS} to {MAX_SHOTS} shots; {shots} was asked for."
        )
    return shots


def fallback_plan(idea: str, *, shots: int, seconds: float, style: str | None, reason: str) -> Plan:
    """A simple plan made from the idea alone: an establishing shot, closer views and action,
    a closing shot, each with a different camera move. ``reason`` (why the model's plan was
    not used) goes into the plan's note."""
    checked_shot_count(shots)
    idea = _plain_idea(idea)
    beats = [_OPENING, *(_MIDDLE[index % len(_MIDDLE)] for index in range(shots - 2)), _CLOSING]
    duration = max(MIN_SHOT_SECONDS, seconds)
    look = clean_text(style or "")
    sheet = f"{look}; {_FALLBACK_LOOK}" if look else _FALLBACK_LOOK
    log.info("storyboard for %r uses the simple plan: %s", idea, reason)
    return Plan(
        idea=idea,
        sheet=sheet[:MAX_SHEET_CHARS],
        shots=tuple(
            Shot(scene=scene.format(idea=idea), camera=camera, duration_s=duration)
            for scene, camera in beats
        ),
        note=f"The model's shot plan could not be used ({reason}); "
        "this is a simple plan made from your idea.",
    )


def _plain_idea(idea: str) -> str:
    """The idea as one trimmed line without a closing full stop (it goes inside sentences)."""
    return " ".join(clean_text(idea).split())[:MAX_IDEA_CHARS].rstrip(".")


def _sentence(text: str) -> str:
    text = text.strip()
    if not text or text[-1] in ".!?":
        return text
    return f"{text}."


def _stored_text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ValueError(f"a plan's {key!r} must be text, got {value!r}")
    return value


def _stored_shot(item: object) -> Shot:
    if not isinstance(item, dict):
        raise ValueError(f"a shot is a JSON object, got {item!r}")
    camera = item.get("camera")
    if camera is not None and camera not in CAMERA_MOVES:
        raise ValueError(f"camera move {camera!r} is not one of {', '.join(CAMERA_MOVES)}")
    duration = item.get("duration_s")
    if not isinstance(duration, int | float) or isinstance(duration, bool) or duration <= 0:
        raise ValueError(f"a shot's duration_s must be a positive number, got {duration!r}")
    return Shot(scene=_stored_text(item, "scene"), camera=camera, duration_s=float(duration))
