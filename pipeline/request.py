"""What a user asks for, and the checks that run before any model work.

Every refusal is an ``InvalidRequest`` whose message names the bad value and what is allowed,
written for the person who typed it.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, replace

from PIL import Image

from pipeline.errors import InvalidRequest
from pipeline.presets import ASPECTS, ModelPreset

MAX_PROMPT_CHARS = 2000
MAX_SEED = 2**32 - 1
MIN_GUIDANCE = 1.0
MAX_GUIDANCE = 20.0
MIN_FPS = 4
MAX_FPS = 60


@dataclass
class GenerationRequest:
    """One clip to make. Give ``frames`` or ``duration_s`` (or neither for the model's default)."""

    prompt: str
    negative_prompt: str = ""
    aspect: str = "16:9"
    frames: int | None = None
    duration_s: float | None = None
    fps: int | None = None
    seed: int | None = None
    steps: int | None = None
    guidance: float | None = None
    image: Image.Image | None = None
    hd: bool = False


def validate_request(preset: ModelPreset, request: GenerationRequest) -> GenerationRequest:
    """A copy of ``request`` with every field filled in for ``preset``; raises InvalidRequest.

    Validating the result again returns an equal request (the seed, once chosen, stays).
    """
    prompt = _checked_prompt(request.prompt, "prompt", required=True)
    negative_prompt = _checked_prompt(request.negative_prompt, "negative prompt", required=False)
    _check_aspect(request.aspect)
    _check_image(preset, request.image)
    fps = _checked_fps(request.fps, preset)
    frames = _checked_frames(request.frames, request.duration_s, fps, preset)
    return replace(
        request,
        prompt=prompt,
        negative_prompt=negative_prompt,
        frames=frames,
        duration_s=frames / fps,
        fps=fps,
        seed=_checked_seed(request.seed),
        steps=_checked_steps(request.steps, preset, hd=request.hd),
        guidance=_checked_guidance(request.guidance, preset),
    )


def _checked_prompt(text: str, what: str, *, required: bool) -> str:
    text = text.strip()
    if required and not text:
        raise InvalidRequest(f"The {what} is empty; describe the clip you want.")
    if len(text) > MAX_PROMPT_CHARS:
        raise InvalidRequest(
            f"The {what} is {len(text)} characters long; the limit is {MAX_PROMPT_CHARS}."
        )
    return text


def _check_aspect(aspect: str) -> None:
    if aspect not in ASPECTS:
        raise InvalidRequest(
            f"Aspect ratio {aspect!r} is not supported; choose one of {', '.join(ASPECTS)}."
        )


def _check_image(preset: ModelPreset, image: Image.Image | None) -> None:
    if preset.task == "i2v" and image is None:
        raise InvalidRequest(
            f"The model {preset.name} animates a start image; give one (it has no text-only mode)."
        )
    if preset.task == "t2v" and image is not None:
        raise InvalidRequest(
            f"The model {preset.name} makes clips from text only; "
            "use an image-to-video model to start from an image."
        )


def _checked_fps(fps: int | None, preset: ModelPreset) -> int:
    if fps is None:
        return preset.fps
    if not MIN_FPS <= fps <= MAX_FPS:
        raise InvalidRequest(f"{fps} fps is out of range; choose {MIN_FPS} to {MAX_FPS} fps.")
    return fps


def _checked_frames(
    frames: int | None, duration_s: float | None, fps: int, preset: ModelPreset
) -> int:
    if duration_s is not None:
        from_duration = _frames_for_duration(duration_s, fps, preset)
        if frames is not None and frames != from_duration:
            raise InvalidRequest(
                f"{frames} frames and {duration_s:g} s disagree at {fps} fps; give only one."
            )
        return from_duration
    if frames is None:
        return preset.default_frames
    if frames not in preset.valid_frame_counts():
        raise InvalidRequest(
            f"{frames} frames is not possible with {preset.name}; use 1 + a multiple of "
            f"{preset.frame_step} from {preset.min_frames} to {preset.max_frames}"
            f"{_nearest_hint(frames, preset)}."
        )
    return frames


def _frames_for_duration(duration_s: float, fps: int, preset: ModelPreset) -> int:
    """The valid frame count nearest to ``duration_s`` (5 s at 16 fps is Wan's 81 frames)."""
    frames = 0
    if math.isfinite(duration_s):
        frames = 1 + round(duration_s * fps / preset.frame_step) * preset.frame_step
    if duration_s <= 0 or frames not in preset.valid_frame_counts():
        shortest = preset.min_frames / fps
        longest = preset.max_frames / fps
        raise InvalidRequest(
            f"A duration of {duration_s:g} s is out of range for {preset.name} at {fps} fps; "
            f"choose {shortest:.1f} to {longest:.1f} seconds."
        )
    return frames


def _nearest_hint(frames: int, preset: ModelPreset) -> str:
    valid = preset.valid_frame_counts()
    if not valid.start <= frames <= valid[-1]:
        return ""
    below = valid.start + (frames - valid.start) // valid.step * valid.step
    return f" (such as {below} or {below + valid.step})"


def _checked_seed(seed: int | None) -> int:
    if seed is None:
        return secrets.randbelow(MAX_SEED + 1)
    if not 0 <= seed <= MAX_SEED:
        raise InvalidRequest(f"Seed {seed} is out of range; choose 0 to {MAX_SEED}.")
    return seed


def _checked_steps(steps: int | None, preset: ModelPreset, *, hd: bool) -> int:
    if steps is None:
        return preset.hd_steps if hd else preset.steps
    if not 1 <= steps <= preset.max_steps:
        raise InvalidRequest(
            f"{steps} steps is out of range for {preset.name}; choose 1 to {preset.max_steps}."
        )
    return steps


def _checked_guidance(guidance: float | None, preset: ModelPreset) -> float:
    if guidance is None:
        return preset.guidance
    if not MIN_GUIDANCE <= guidance <= MAX_GUIDANCE:
        raise InvalidRequest(
            f"Guidance {guidance:g} is out of range; choose {MIN_GUIDANCE:g} to {MAX_GUIDANCE:g}."
        )
    return float(guidance)
