"""What the language model is asked: a director's brief for chat models, examples for base models.

Bump ``INSTRUCTIONS_REVISION`` whenever the text below changes, so cached rewrites made
with the old instructions are not served.
"""

from __future__ import annotations

from typing import Any

from .base import RewriteMode

INSTRUCTIONS_REVISION = 3

_T2V_BRIEF = """\
You are a film director writing the brief for a text-to-video model. Rewrite the user's idea \
as one vivid paragraph describing a single continuous shot.
Rules:
- Keep every element of the user's idea: the subject, what it does, and any detail they give.
- Add the setting, the lighting, the camera movement and the visual style.
- The idea may end with a note in brackets, such as (camera: zoom in; motion: low). Then the \
shot has exactly that camera movement and no other, and its motion is slow and gentle for low, \
fast and energetic for high. Leave the note itself out of the paragraph.
- 60 to 150 words, in English, present tense, plain prose.
- Do not add the names of real people.
- Answer with the paragraph only: no title, no preamble, no quotes, no lists."""

_I2V_BRIEF = """\
You are a film director writing the brief for an image-to-video model. The picture already \
fixes the subject, the setting and the style; describe only what moves and how the camera \
moves, as one paragraph.
Rules:
- Keep every element of the user's idea about the motion.
- Describe the motion of the subject and the surroundings, and one camera movement.
- The idea may end with a note in brackets, such as (camera: zoom in; motion: low). Then the \
camera movement is exactly that one, and the motion is slow and gentle for low, fast and \
energetic for high. Leave the note itself out of the paragraph.
- 30 to 80 words, in English, present tense, plain prose.
- Do not add the names of real people.
- Answer with the paragraph only: no title, no preamble, no quotes, no lists."""

# Base models continue text: each pair shows the shape of a good answer, and the blank line
# after it is where the answer ends. No example carries a camera note: with one, Gemma 3 270M
# lost the subject of plain ideas ("a cat surfing"); the camera sentence after the rewrite
# (pipeline.camera.directed_prompt) is what the video model follows anyway.
_T2V_EXAMPLES = (
    (
        "a lighthouse in a storm",
        "A lone white lighthouse stands on a black basalt cliff as a violent storm rolls in "
        "from the sea. Huge waves burst against the rocks and throw spray into the wind, while "
        "the lighthouse beam sweeps through sheets of rain. Lightning flickers inside low purple "
        "clouds. The camera starts wide over the water and slowly pushes in toward the lamp "
        "room. Cold blue light, dramatic contrast, cinematic realism, 35mm film look.",
    ),
    (
        "a dog running on the beach",
        "A golden retriever runs along a wide sandy beach at sunset, ears flapping, paws kicking "
        "up wet sand as small waves wash over the shore. Warm orange light skims across the "
        "water and long shadows stretch behind the dog. The camera tracks alongside at a low "
        "angle, keeping pace. Shallow depth of field, soft lens flare, natural colours, joyful "
        "summer mood.",
    ),
    (
        "neon city at night",
        "A dense futuristic city at night, rain-soaked streets reflecting pink and cyan neon "
        "signs. Crowds with umbrellas pass under glowing billboards while steam rises from "
        "street vents and a tram glides by. The camera floats slowly forward above the street, "
        "then tilts up toward the towering skyscrapers. Moody cyberpunk atmosphere, high "
        "contrast, anamorphic lens, cinematic colour grading.",
    ),
)

_I2V_EXAMPLES = (
    (
        "the waves crash",
        "Waves roll in and crash against the rocks, throwing white spray into the air before "
        "the foam drains back to sea. Wind ripples the surface of the water. The camera slowly "
        "pushes in toward the shore.",
    ),
    (
        "the woman turns and smiles",
        "The woman slowly turns her head toward the camera and breaks into a warm smile, her "
        "hair lifting slightly in the breeze. The background stays still. The camera holds a "
        "steady medium close-up with a gentle push in.",
    ),
    (
        "make the car drive away",
        "The car pulls away from the curb and drives off down the street, its tail lights "
        "glowing as it shrinks into the distance. Dust swirls behind the wheels. The camera "
        "stays fixed at street level, then slowly pans to follow.",
    ),
)

_LABELS: dict[RewriteMode, tuple[str, str]] = {
    "t2v": ("Short idea", "Cinematic video prompt"),
    "i2v": ("Short idea", "Motion and camera"),
}


def system_brief(mode: RewriteMode) -> str:
    """The system message for a chat model."""
    return _I2V_BRIEF if mode == "i2v" else _T2V_BRIEF


def chat_messages(
    prompt: str, mode: RewriteMode, *, image_part: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The brief and the user's idea; ``image_part`` (the backend's way to attach a picture)
    goes in front of the idea as its own content part."""
    user: str | list[dict[str, Any]] = prompt
    if image_part is not None:
        user = [image_part, {"type": "text", "text": prompt}]
    return [
        {"role": "system", "content": system_brief(mode)},
        {"role": "user", "content": user},
    ]


def few_shot(prompt: str, mode: RewriteMode) -> str:
    """A completion prompt for a base model; the answer follows the last label."""
    idea_label, answer_label = _LABELS[mode]
    examples = _I2V_EXAMPLES if mode == "i2v" else _T2V_EXAMPLES
    shots = "".join(
        f"{idea_label}: {idea}\n{answer_label}: {answer}\n\n" for idea, answer in examples
    )
    return f"{shots}{idea_label}: {' '.join(prompt.split())}\n{answer_label}:"


def end_markers(mode: RewriteMode) -> tuple[str, ...]:
    """Text that means a base model has finished its answer and started something else.

    A blank line ends an example; a base model that skips it starts the next example with one
    of the labels. At most four: OpenAI's limit for ``stop``.
    """
    idea_label, answer_label = _LABELS[mode]
    return ("\n\n", f"{idea_label}:", f"\n{answer_label}:")


def cut_at_markers(text: str, markers: tuple[str, ...]) -> str:
    """``text`` up to the first marker, for backends that went past their stop sequences."""
    positions = [text.find(marker) for marker in markers if marker in text]
    return text[: min(positions)] if positions else text


def system_briefs() -> tuple[str, ...]:
    """Every brief a chat model may be given; an answer that repeats one is not a scene."""
    return (_T2V_BRIEF, _I2V_BRIEF)
