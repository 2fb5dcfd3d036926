"""From a command's options to a job request: the user's /settings fill what they left out."""

from __future__ import annotations

from dataclasses import dataclass

from discord import app_commands

from bot.settings import Settings
from bot.store import UserPrefs
from jobqueue.models import JobRequest
from pipeline.presets import ASPECTS, PRESETS, Task, resolve_preset

PROMPT_MAX = 1500
NEGATIVE_MAX = 1000
SEED_MAX = 2**32 - 1

ASPECT_CHOICES = [app_commands.Choice(name=aspect, value=aspect) for aspect in ASPECTS]


def model_choices(task: Task) -> list[app_commands.Choice[str]]:
    """The presets a user may pick for a command (Discord allows 25 choices)."""
    names = [name for name, preset in PRESETS.items() if preset.task == task]
    return [app_commands.Choice(name=name, value=name) for name in names[:25]]


@dataclass(frozen=True)
class CommandOptions:
    """What a user typed into /create or /animate; ``None`` means left out."""

    prompt: str
    negative: str | None = None
    aspect: str | None = None
    duration: float | None = None
    seed: int | None = None
    enhance: bool | None = None
    model: str | None = None


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
        prompt=options.prompt.strip(),
        negative_prompt=(options.negative or "").strip(),
        aspect=options.aspect or prefs.aspect or ASPECTS[0],
        duration_s=options.duration,
        seed=options.seed,
        enhance=enhance,
        model=options.model,
        image_path=image_path,
    )


def duration_problem(request: JobRequest, settings: Settings, task: Task) -> str | None:
    """A sentence naming the allowed range when the duration does not suit the model."""
    if request.duration_s is None:
        return None
    default_model = settings.i2v_model if task == "i2v" else settings.model
    preset = resolve_preset(request.model or default_model)
    shortest = preset.min_frames / preset.fps
    longest = preset.max_frames / preset.fps
    if shortest <= request.duration_s <= longest:
        return None
    return (
        f"Duration {request.duration_s:g} s is out of range: {preset.name} makes clips"
        f" from {shortest:.1f} to {longest:.1f} seconds."
    )
