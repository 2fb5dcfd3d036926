"""The options /create and /animate share, and from them to a job request.

The fields of :class:`CommandOptions` are the shared options: :func:`clip_options` declares
them on each command, so each option's name, type, range, description and choices is written
once. The user's /settings fill what they left out, then the server's defaults.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from discord import app_commands

from bot.settings import Settings
from bot.store import UserPrefs
from jobqueue.models import JobKind, JobRequest
from pipeline.camera import CAMERA_MOVES, MOTION_LEVELS
from pipeline.errors import InvalidRequest
from pipeline.presets import (
    ASPECTS,
    PRESETS,
    ModelPreset,
    Task,
    end_frame_model,
    resolve_preset,
)
from pipeline.request import MAX_SEED
from pipeline.text import MAX_NEGATIVE_CHARS, MAX_PROMPT_CHARS

NO_END_FRAME_MODEL = (
    "This server has no model that ends a clip on a chosen frame, so loop and end_image are"
    " off here; animate without them."
)
ASPECT_CHOICES = [app_commands.Choice(name=aspect, value=aspect) for aspect in ASPECTS]
CAMERA_CHOICES = [app_commands.Choice(name=move, value=move) for move in CAMERA_MOVES]
MOTION_CHOICES = [app_commands.Choice(name=level, value=level) for level in MOTION_LEVELS]


def model_names(task: Task) -> list[str]:
    """The presets a user may pick for a task, as Discord lists them (it allows 25 choices)."""
    return [name for name, preset in PRESETS.items() if preset.task == task][:25]


def model_choices(task: Task) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=name, value=name) for name in model_names(task)]


@dataclass(frozen=True)
class CommandOptions:
    """What a user typed into /create or /animate; ``None`` means left out.

    The ranges are what Discord's client lets a user type; a bot cannot rely on them (discord.py
    does not check them), so the request is checked again before it is queued.
    """

    prompt: app_commands.Range[str, 1, MAX_PROMPT_CHARS]
    negative: app_commands.Range[str, 1, MAX_NEGATIVE_CHARS] | None = None
    aspect: str | None = None
    duration: app_commands.Range[float, 0.1, 60.0] | None = None
    seed: app_commands.Range[int, 0, MAX_SEED] | None = None
    enhance: bool | None = None
    model: str | None = None
    camera: str | None = None
    motion: str | None = None


OPTION_DESCRIPTIONS = {
    "negative": "What to keep out of the clip",
    "aspect": "Shape of the clip (your /settings default if left out)",
    "duration": "Length in seconds (the model's default if left out)",
    "seed": "Seed for a repeatable clip (random if left out)",
    "enhance": "Let a language model expand the prompt first (your /settings default)",
    "camera": "How the camera moves (the model's choice if left out)",
    "motion": "How much moves in the clip: low or high (as usual if left out)",
}

# Keyword-only, so they may follow a command's own parameters whatever their defaults.
_SHARED_PARAMETERS = tuple(
    parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY)
    for parameter in inspect.signature(CommandOptions, eval_str=True).parameters.values()
)

Callback = TypeVar("Callback", bound=Callable[..., Any])


def clip_options(task: Task, **descriptions: str) -> Callable[[Callback], Callback]:
    """Declare CommandOptions' fields as options of the decorated command callback.

    discord.py makes a command's options from its callback's signature. The callback takes
    the shared options as ``**options`` (``CommandOptions(**options)``); this writes them into
    the signature after the callback's own required parameters (its optional ones come last,
    as Discord lists them) and adds their descriptions and choices. ``descriptions``
    describes the command's own parameters and the shared options each command words its own
    way (``prompt``, ``model``). Apply it below ``@app_commands.command``.
    """

    def declare(callback: Callback) -> Callback:
        own = inspect.signature(callback).parameters.values()
        kept = [parameter for parameter in own if parameter.kind is not parameter.VAR_KEYWORD]
        required = [parameter for parameter in kept if parameter.default is parameter.empty]
        optional = [
            parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for parameter in kept
            if parameter.default is not parameter.empty
        ]
        signature = inspect.Signature([*required, *_SHARED_PARAMETERS, *optional])
        callback.__signature__ = signature  # type: ignore[attr-defined]
        described = app_commands.describe(**(OPTION_DESCRIPTIONS | descriptions))(callback)
        return app_commands.choices(
            aspect=ASPECT_CHOICES,
            model=model_choices(task),
            camera=CAMERA_CHOICES,
            motion=MOTION_CHOICES,
        )(described)

    return declare


def build_request(
    options: CommandOptions,
    prefs: UserPrefs,
    settings: Settings,
    *,
    image_path: str | None = None,
) -> JobRequest:
    """The request, with the user's defaults, then the server's, for what they left out."""
    enhance = options.enhance
    if enhance is None:
        enhance = prefs.enhance if prefs.enhance is not None else settings.enhance_default
    return JobRequest(
        prompt=options.prompt,
        negative_prompt=options.negative or "",
        aspect=options.aspect or prefs.aspect or ASPECTS[0],
        duration_s=options.duration,
        seed=options.seed,
        enhance=enhance,
        model=options.model,
        image_path=image_path,
        camera=options.camera,
        motion=options.motion,
    )


def job_preset(
    settings: Settings, kind: JobKind, model: str | None, *, end_frame: bool = False
) -> ModelPreset:
    """The preset a job of ``kind`` will run on: the one asked for, else the server's default
    (for a clip that ends on a chosen frame, ``end_frame``, its end-frame model when the
    image-to-video one cannot).

    Raises InvalidRequest for a model the commands do not offer for the job's task (only a
    modified client could send one: Discord's shows the choices), and for an end frame on a
    server with no model for it.
    """
    task: Task = "i2v" if kind.task == "i2v" else "t2v"
    if model is None and task == "i2v" and end_frame:
        chosen = end_frame_model(settings.i2v_model, settings.end_frame_model)
        if chosen is None:
            raise InvalidRequest(NO_END_FRAME_MODEL)
        return resolve_preset(chosen)
    if model is None:
        return resolve_preset(settings.i2v_model if task == "i2v" else settings.model)
    offered = model_names(task)
    if model not in offered:
        raise InvalidRequest(
            f"The model {model!r} cannot make this clip; choose one of {', '.join(offered)}."
        )
    return PRESETS[model]
