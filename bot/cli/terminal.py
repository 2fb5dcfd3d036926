"""What the commands that run a model show on the terminal: a progress bar of their own, and
no library chatter."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tqdm import tqdm


class ProgressBar:
    """A denoising progress bar on stderr, opened at the first step."""

    def __init__(self) -> None:
        self._bar: tqdm[None] | None = None

    def step(self, step: int, total: int) -> None:
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(total=total, desc="denoising", unit="step", file=sys.stderr)
        self._bar.update(step - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def quiet_libraries() -> None:
    """Keep library chatter (their own progress bars and notices) for debugging."""
    import diffusers
    import transformers

    for library in (diffusers, transformers):
        library.utils.logging.set_verbosity_error()
        library.utils.logging.disable_progress_bar()
