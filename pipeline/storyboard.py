"""A storyboard: an idea as a short list of shots that share one character and style sheet.

Each shot's prompt repeats the sheet, so the video model draws the same people in the same look
from shot to shot (the surveys' trick for multi-shot coherence without a shared memory).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.camera import CAMERA_MOVES
from pipeline.errors import InvalidRequest
from pipeline.rewrite.base import BackendError, TextBackend
from pipeline.rewrite.guardrails import kept_share
from pipeline.text import checked_text, clean_text

if TYPE_CHECKING:
    from pipeline.presets import ModelPreset

log = logging.getLogger(__name__)

MIN_SHOTS = 2
MAX_SHOTS = 8
DEFAULT_SHOTS = 6
"""Six shots of Wan's longest clip (5 s) make a 30 s film; eight make 40 s."""
# The shortest shot the model may plan, unless every shot is shorter: under a second a model
# barely moves.
MIN_SHOT_SECONDS = 1.0
MAX_SCENE_CHARS = 400
MAX_SHEET_CHARS = 600
MAX_IDEA_CHARS = 1000
MAX_STYLE_CHARS = 200
LOGGED_ANSWER_CHARS = 500
MAX_CUTS_TRIED = 10
# A plan spreads the idea over its shots: half of its words is enough (a rewrite keeps more),
# less is a model copying its examples.
MIN_IDEA_KEPT = 0.5

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

# Planning: a 270M base model writes about 12 tokens a second on two idle CPU cores; a shot in
# the examples' shape is about 30 tokens, the sheet about 40, but the packaged Gemma writes
# scenes twice as long (4 shots at 45 tokens each were cut short after the second).
PLAN_TIMEOUT_S = 180.0
PLAN_TOKENS_BASE = 80
PLAN_TOKENS_PER_SHOT = 70
PLAN_STOP = ("\nIdea:", "\n\n")
# The prompt ends with the plan's first characters: a small base model then goes on in JSON
# instead of starting with a number or a list.
PLAN_PRIMER = '{"sheet": "'
_STARTS_WITH_JSON = re.compile(r"\s*(?:```(?:json)?\s*)?\{")
MAX_ANSWER_CHARS = 20_000
MAX_JSON_DEPTH = 4
_PLAN_INTRO = (
    "Shot lists for short films. Each plan is one line of JSON: a sheet describing the main "
    "character and the visual style, and the shots in order, each with a scene, a camera move "
    f"({', '.join(CAMERA_MOVES)}) and a duration in seconds."
)
_EXAMPLES: tuple[tuple[str, str | None, dict[str, Any]], ...] = (
    (
        "a lighthouse keeper saves a ship in a storm",
        "oil painting",
        {
            "sheet": "An old lighthouse keeper with a grey beard and a yellow raincoat; "
            "stormy night sea, oil painting, heavy brush strokes",
            "shots": [
                {
                    "shot": 1,
                    "scene": "The lighthouse on a cliff as huge waves crash below",
                    "camera": "dolly in",
                    "duration": 5,
                },
                {
                    "shot": 2,
                    "scene": "The keeper climbs the spiral stairs with a lantern",
                    "camera": "tilt up",
                    "duration": 4,
                },
                {
                    "shot": 3,
                    "scene": "The keeper turns the great lamp toward a ship in the waves",
                    "camera": "orbit",
                    "duration": 5,
                },
            ],
        },
    ),
    (
        "a girl and her robot plant a garden on the moon",
        None,
        {
            "sheet": "A girl of ten in a white space suit with red stripes and a small round "
            "silver robot; grey moon dust, black sky, bright cinematic light",
            "shots": [
                {
                    "shot": 1,
                    "scene": "The girl and the robot walk across a crater with seeds",
                    "camera": "pan right",
                    "duration": 5,
                },
                {
                    "shot": 2,
                    "scene": "The robot digs small holes in the moon dust",
                    "camera": "static",
                    "duration": 4,
                },
                {
                    "shot": 3,
                    "scene": "The girl waters the first green sprouts under a dome",
                    "camera": "zoom in",
                    "duration": 5,
                },
                {
                    "shot": 4,
                    "scene": "They sit together watching the Earth rise over the garden",
                    "camera": "dolly out",
                    "duration": 5,
                },
            ],
        },
    ),
)


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
        """The video model's prompt for shot ``index`` (0-based): its scene, then the sheet.

        The shot's camera move is not written here: it goes with the shot's request
        (``camera``), and the pipeline words it the one way every clip's move is worded."""
        shot = self.shots[index]
        parts = [_sentence(shot.scene), _sentence(self.sheet)]
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


async def write_plan(
    backend: TextBackend | None,
    idea: str,
    *,
    shots: int,
    seconds: float,
    style: str | None,
    seed: int = 0,
    timeout_s: float = PLAN_TIMEOUT_S,
) -> Plan:
    """The language model's plan for ``idea``: ``shots`` shots of at most ``seconds`` each,
    one sheet for all. Never raises for model trouble (no model, an error, a timeout, an
    answer that is not a usable plan): the simple plan stands in, its note says why."""
    checked_shot_count(shots)
    checked_shot_seconds(seconds)
    idea, style = checked_idea(idea), checked_style(style)

    def fallback(reason: str) -> Plan:
        return fallback_plan(idea, shots=shots, seconds=seconds, style=style, reason=reason)

    if backend is None:
        return fallback("no language model is set up for planning")
    try:
        await backend.warm_up()
        async with asyncio.timeout(timeout_s):
            answer = await backend.complete_text(
                planning_prompt(idea, shots=shots, style=style),
                stop=plan_stops(shots),
                max_tokens=_token_cap(shots),
                seed=seed,
            )
    except TimeoutError:
        return fallback("it took too long")
    except BackendError as error:
        return fallback(error.reason)
    try:
        plan = plan_from_answer(answer.text, idea, shots=shots, seconds=seconds, style=style)
    except UnusablePlan as unusable:
        log.info("unusable plan (%s): %r", unusable.reason, answer.text[:LOGGED_ANSWER_CHARS])
        return fallback(unusable.reason)
    log.info("planned %d shots for %r with %s", len(plan.shots), idea, backend.model)
    return plan


class UnusablePlan(Exception):
    """The model's answer is not a plan reelbot can shoot; ``reason`` says why, briefly."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def planning_prompt(idea: str, *, shots: int, style: str | None) -> str:
    """Examples of the JSON shape (a small base model copies shapes, not instructions), then
    the idea and the start of its plan, for the model to continue."""
    examples = "".join(
        _example_block(example_idea, len(plan["shots"]), example_style) + json.dumps(plan) + "\n\n"
        for example_idea, example_style, plan in _EXAMPLES
    )
    asked = _example_block(_one_line(idea), shots, style)
    return f"{_PLAN_INTRO}\n\n{examples}{asked}{PLAN_PRIMER}"


def plan_from_answer(
    text: str, idea: str, *, shots: int, seconds: float, style: str | None
) -> Plan:
    """The plan in the model's ``text``, checked and cleaned: the JSON it continued from the
    prompt's primer, or else the first JSON object in it (a chat model answers afresh, maybe
    with prose or a code fence around it). Raises UnusablePlan naming what is wrong."""
    if "{" not in text:
        raise UnusablePlan("it wrote no plan in JSON")
    if _STARTS_WITH_JSON.match(text):
        return _checked_plan(_first_json_object(text), idea, shots, seconds, style)
    try:
        return _checked_plan(_first_json_object(PLAN_PRIMER + text), idea, shots, seconds, style)
    except UnusablePlan as continued:
        try:
            return _checked_plan(_first_json_object(text), idea, shots, seconds, style)
        except UnusablePlan:
            raise continued from None


def _checked_plan(
    data: dict[str, Any], idea: str, shots: int, seconds: float, style: str | None
) -> Plan:
    raw_shots = data.get("shots")
    if not isinstance(raw_shots, list) or not raw_shots:
        raise UnusablePlan("its answer had no list of shots")
    if len(raw_shots) < shots:
        raise UnusablePlan(f"it planned {len(raw_shots)} shots, not {shots}")
    planned = tuple(_planned_shot(item, seconds) for item in raw_shots[:shots])
    sheet = _with_style(_short_text(data.get("sheet"), MAX_SHEET_CHARS), style)
    if not sheet:
        raise UnusablePlan("its plan had no character and style sheet")
    written = " ".join([sheet, *(shot.scene for shot in planned)])
    if kept_share(idea, written) < MIN_IDEA_KEPT:
        raise UnusablePlan("its shots were not about the idea")
    return Plan(idea=idea, sheet=sheet, shots=planned)


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
    idea, style = checked_idea(idea), checked_style(style)
    beats = [_OPENING, *(_MIDDLE[index % len(_MIDDLE)] for index in range(shots - 2)), _CLOSING]
    duration = checked_shot_seconds(seconds)
    sheet = f"{style}; {_FALLBACK_LOOK}" if style else _FALLBACK_LOOK
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


def checked_idea(idea: str) -> str:
    """The idea on one line; raises InvalidRequest when it is empty or too long."""
    return _one_line(checked_text(idea, "idea", limit=MAX_IDEA_CHARS, required=True))


def checked_style(style: str | None) -> str | None:
    """The style on one line (``None`` when there is none); raises InvalidRequest when it is
    too long."""
    checked = _one_line(checked_text(style or "", "style", limit=MAX_STYLE_CHARS, required=False))
    return checked or None


def checked_shot_seconds(seconds: float) -> float:
    """``seconds`` when it can be a shot's length; raises InvalidRequest otherwise."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidRequest(f"A shot lasts more than 0 seconds; {seconds:g} was asked.")
    return seconds


def shot_length_range(first: ModelPreset, rest: ModelPreset) -> tuple[float, float]:
    """The shortest and the longest shot, in seconds, that both the text-to-video preset
    ``first`` (shot 1) and the image-to-video preset ``rest`` (each shot after it) can make:
    the stricter of the two at each end, in tenths a user can type and both models accept
    (Wan's 5 to 81 frames at 16 fps: 0.4 to 5.0 s)."""
    presets = (first, rest)
    shortest = max(preset.min_frames / preset.fps for preset in presets)
    longest = min(preset.max_frames / preset.fps for preset in presets)
    return math.ceil(10 * shortest) / 10, math.floor(10 * longest) / 10


def plan_stops(shots: int) -> tuple[str, ...]:
    """Where the model's answer ends: at the next example, or when it starts one shot more
    than was asked (a small model goes on; the plan is read up to its last whole shot)."""
    return (*PLAN_STOP, f'{{"shot": {shots + 1},')


def _example_block(idea: str, shots: int, style: str | None) -> str:
    return f"Idea: {idea}\nShots: {shots}\nStyle: {style or 'any'}\nPlan: "


def _token_cap(shots: int) -> int:
    return PLAN_TOKENS_BASE + PLAN_TOKENS_PER_SHOT * shots


def _first_json_object(text: str) -> dict[str, Any]:
    """The first JSON object in ``text`` (prose or a code fence around it is fine), within
    size and nesting bounds so that a runaway answer cannot cost much to read."""
    text = text[:MAX_ANSWER_CHARS]
    start = text.find("{")
    if start < 0:
        raise UnusablePlan("it wrote no plan in JSON")
    if _nesting(text[start:]) > MAX_JSON_DEPTH:
        raise UnusablePlan("its JSON was nested too deeply")
    try:
        data, _ = json.JSONDecoder().raw_decode(text, start)
    except (ValueError, RecursionError) as error:
        data = _cut_short(text[start:])
        if data is None:
            raise UnusablePlan("its JSON was malformed") from error
    return data  # it starts at a "{": an object


def _cut_short(text: str) -> dict[str, Any] | None:
    """The JSON in ``text`` up to its last complete object that parses, closed: what an
    answer stopped after its last shot, or broken in a later one, still says. ``None`` when
    no cut parses."""
    stack: list[str] = []
    cuts: list[tuple[int, str]] = []
    for index, bracket in _brackets(text):
        if bracket in "{[":
            stack.append("}" if bracket == "{" else "]")
        elif stack:
            stack.pop()
            if bracket == "}" and stack:
                cuts.append((index + 1, "".join(reversed(stack))))
    for end, closers in reversed(cuts[-MAX_CUTS_TRIED:]):
        try:
            data = json.loads(text[:end] + closers)
        except (ValueError, RecursionError):
            continue
        if isinstance(data, dict):
            return data
    return None


def _nesting(text: str) -> int:
    """The deepest bracket nesting of the first JSON value in ``text``."""
    depth = deepest = 0
    for _, bracket in _brackets(text):
        depth += 1 if bracket in "{[" else -1
        deepest = max(deepest, depth)
        if depth <= 0:
            break
    return deepest


def _brackets(text: str) -> Iterator[tuple[int, str]]:
    """Where JSON's brackets are in ``text``, and which: those inside strings do not count."""
    in_string = escaped = False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[]}":
            yield index, char


def _planned_shot(item: object, seconds: float) -> Shot:
    if not isinstance(item, dict):
        raise UnusablePlan("a shot in its plan was not an object")
    scene = _short_text(item.get("scene"), MAX_SCENE_CHARS)
    if not scene:
        raise UnusablePlan("a shot in its plan had no scene")
    return Shot(
        scene=scene, camera=_camera_move(item.get("camera")), duration_s=_duration(item, seconds)
    )


def _short_text(value: object, limit: int) -> str:
    """Text from the model on one line, cleaned and cut at a word within ``limit``."""
    if not isinstance(value, str):
        return ""
    text = " ".join(clean_text(value).split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0]


def _camera_move(value: object) -> str | None:
    """A known move named in the model's camera words ("slow dolly in" is a dolly in); any
    other words are dropped, since the video model would read them as scenery."""
    if not isinstance(value, str):
        return None
    words = " ".join(value.lower().replace("-", " ").split())
    return next((move for move in CAMERA_MOVES if move in words), None)


def _duration(item: dict[str, Any], seconds: float) -> float:
    """The shot's length from the model, within what was asked: a shot may be shorter than
    ``seconds`` (down to the minimum) but never longer."""
    value = item.get("duration", item.get("duration_s"))
    if isinstance(value, str):
        value = value.lower().removesuffix("s").strip()
        try:
            value = float(value)
        except ValueError:
            value = None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return seconds
    return min(max(float(value), MIN_SHOT_SECONDS), seconds)


def _with_style(sheet: str, style: str | None) -> str:
    """The sheet with the user's style in it: the model may have left it out."""
    if not style or style.lower() in sheet.lower():
        return sheet
    return f"{sheet}; {style}" if sheet else style


def _one_line(text: str) -> str:
    """``text`` without line breaks, runs of spaces or a closing full stop (it goes inside
    sentences)."""
    return " ".join(text.split()).rstrip(".")


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
