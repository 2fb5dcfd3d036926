"""What every rewriter returns, and what a text backend (local model, HTTP endpoint) provides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from PIL import Image

RewriteMode = Literal["t2v", "i2v"]


@dataclass(frozen=True)
class RewriteResult:
    """The user's prompt and the prompt the video model gets.

    ``rewritten == original`` whenever the model's text is not used; ``fallback_reason`` then
    says why ("disabled", "timeout", "lost the subject", ...).
    """

    original: str
    rewritten: str
    enhanced: bool
    fallback_reason: str | None
    backend: str
    model: str | None
    seconds: float
    cached: bool


class PromptRewriter(Protocol):
    """What the worker and the command line use; ``build_rewriter`` makes one."""

    async def warm_up(self) -> float:
        """Load the model now instead of on the first rewrite; returns seconds spent."""
        ...

    async def rewrite(
        self,
        prompt: str,
        *,
        mode: RewriteMode = "t2v",
        seed: int = 0,
        image: Image.Image | None = None,
    ) -> RewriteResult:
        """Never raises for model trouble: falls back to the user's prompt with a reason.

        ``image`` is the picture an ``i2v`` clip starts from; a vision-language model looks
        at it, any other model ignores it.
        """
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class Completion:
    """A backend's raw answer, before the guardrails look at it."""

    text: str
    tokens: int | None = None


class BackendError(Exception):
    """The model could not answer; ``reason`` is the short fallback reason users see."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TextBackend(Protocol):
    """A language model that turns a user's idea into a scene description.

    ``complete`` raises ``BackendError`` for model trouble and stops its work when the
    awaiting task is cancelled.
    """

    @property
    def name(self) -> str: ...

    @property
    def model(self) -> str:
        """The model that answers; after ``warm_up`` it is the one actually loaded."""
        ...

    @property
    def sees_images(self) -> bool:
        """Whether ``complete`` shows its ``image`` to the model (known after ``warm_up``)."""
        ...

    async def warm_up(self) -> float: ...

    async def complete(
        self, prompt: str, *, mode: RewriteMode, seed: int, image: Image.Image | None = None
    ) -> Completion: ...

    async def complete_text(
        self, prompt: str, *, stop: tuple[str, ...], max_tokens: int, seed: int
    ) -> Completion:
        """The model's answer to ``prompt`` exactly as given (no brief, no examples added):
        a base model continues it, a chat model gets it as the user's message. The answer
        ends before the first of ``stop`` or after ``max_tokens``; raises ``BackendError``
        like ``complete``. For callers with their own prompt, such as the storyboard."""
        ...

    async def aclose(self) -> None: ...
