"""What a user asks for, the checks that run before any model work, and what they resolve to.

A :class:`ClipRequest` is a clip as asked: anything left out is ``None`` and the model's
default fills it later. :func:`check_request` is the door check the bot runs before queueing
(everything but the start image); :func:`resolve_request` runs the same checks and fills every
default for one preset, giving a :class:`ResolvedRequest` with nothing left to decide.

Every refusal is an ``InvalidRequest`` whose message names the bad value and what is allowed,
written for the person who typed it.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, replace

from PIL import Image

from pipeline.camera import checked_camera, checked_motion
from pipeline.errors import InvalidRequest
from pipeline.presets import ASPECTS, PRESETS, ModelPreset
from pipeline.text import checked_negative_prompt, checked_prompt

MAX_SEED = 2**32 - 1
MIN_GUIDANCE = 1.0
MAX_GUIDANCE = 20.0
MIN_FPS = 4
MAX_FPS = 60


@dataclass(frozen=True)
class ClipRequest:
    """One clip as asked. Give ``frames`` or ``duration_s`` (or neither for the model's default).

    ``None`` means "the model's default" (a random seed for ``seed``).
    """

    prompt: str
    negative_prompt: str = ""
    aspect: str = ASPECTS[0]
    frames: int | None = None
    duration_s: float | None = None
    fps: int | None = None
    seed: int | None = None
    steps: int | None = None
    guidance: float | None = None
    hd: bool = False
    camera: str | None = None
    """A camera move from :data:`~pipeline.camera.CAMERA_MOVES` (``None``: the model's choice)."""
    motion: str | None = None
    """How much moves: one of :data:`~pipeline.camera.MOTION_LEVELS` (``None``: as usual)."""
    loop: bool = False
    """The clip's last frame returns to its first (image-to-video models that take an end
    frame)."""


@dataclass(frozen=True)
class ResolvedRequest:
    """One clip with every setting decided for one model: what the generator runs.

    ``start_image`` is the picture an image-to-video model starts from; it is set exactly
    when the model is one (``resolve_request`` checks), never for a text-to-video model.
    """

    model: str
    prompt: str
    negative_prompt: str
    aspect: str
    width: int
    height: int
    frames: int
    fps: int
    seed: int
    steps: int
    guidance: float
    hd: bool
    start_image: Image.Image | None
    camera: str | None = None
    motion: str | None = None
    loop: bool = False
    end_image: Image.Image | None = None
    """The picture the clip ends on (given, or the start image for a loop)."""

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


def check_request(
    preset: ModelPreset, asked: ClipRequest, *, end_image: bool = False
) -> ClipRequest:
    """``asked`` with its text cleaned, once it is known ``preset`` can make it.

    Checks everything but the pictures themselves (prompts, aspect, length, fps, seed, steps,
    guidance, and whether the model can take an end frame for a loop or, when ``end_image``
    says one will be given, an end image); raises InvalidRequest with a sentence for the user.
    """
    resolved = _resolved(preset, asked)
    _check_end_frame(preset, loop=asked.loop, end_image=end_image)
    return replace(asked, prompt=resolved.prompt, negative_prompt=resolved.negative_prompt)


def resolve_request(
    preset: ModelPreset,
    asked: ClipRequest,
    *,
    image: Image.Image | None = None,
    end_image: Image.Image | None = None,
) -> ResolvedRequest:
    """Every setting of ``asked`` decided for ``preset`` (a seed chosen when none was given),
    with ``image`` as the start image and ``end_image`` as the last frame (for a loop, the
    start image); raises InvalidRequest."""
    resolved = _resolved(preset, asked)
    _check_image(preset, image)
    _check_end_frame(preset, loop=asked.loop, end_image=end_image is not None)
    last = image if asked.loop else end_image
    return replace(resolved, start_image=image, end_image=last)


def _resolved(preset: ModelPreset, asked: ClipRequest) -> ResolvedRequest:
    prompt = checked_prompt(asked.prompt)
    negative_prompt = checked_negative_prompt(asked.negative_prompt)
    _check_aspect(asked.aspect)
    fps = _checked_fps(asked.fps, preset)
    frames = _checked_frames(asked.frames, asked.duration_s, fps, preset)
    width, height = preset.size_for(asked.aspect, hd=asked.hd)
    return ResolvedRequest(
        model=preset.name,
        prompt=prompt,
        negative_prompt=negative_prompt,
        aspect=asked.aspect,
        width=width,
        height=height,
        frames=frames,
        fps=fps,
        seed=_checked_seed(asked.seed),
        steps=_checked_steps(asked.steps, preset, hd=asked.hd),
        guidance=_checked_guidance(asked.guidance, preset),
        hd=asked.hd,
        start_image=None,
        camera=checked_camera(asked.camera),
        motion=checked_motion(asked.motion),
        loop=asked.loop,
    )


def frames_asked(preset: ModelPreset, asked: ClipRequest) -> tuple[int, int]:
    """The frames and frame rate of the clip ``asked`` makes with ``preset`` (its length,
    known before it runs); raises InvalidRequest like :func:`check_request`."""
    fps = _checked_fps(asked.fps, preset)
    return _checked_frames(asked.frames, asked.duration_s, fps, preset), fps


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


def _check_end_frame(preset: ModelPreset, *, loop: bool, end_image: bool) -> None:
    if loop and end_image:
        raise InvalidRequest("A loop ends on its start image; give no end image with it.")
    wanted = loop or end_image
    if preset.needs_end_frame and not wanted:
        raise InvalidRequest(
            f"The model {preset.name} makes a clip between a first and a last frame; give an"
            " end image, or ask for a loop."
        )
    if wanted and not preset.takes_end_frame:
        able = ", ".join(name for name, other in PRESETS.items() if other.takes_end_frame)
        raise InvalidRequest(
            f"The model {preset.name} cannot end a clip on a chosen frame (a loop or an end"
            f" image); use one that can: {able}."
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
