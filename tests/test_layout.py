"""The project's layout must not break the standard library (see DESIGN.md)."""

from __future__ import annotations

import asyncio
import queue
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_stdlib_queue_is_not_shadowed() -> None:
    assert hasattr(queue, "SimpleQueue"), f"`queue` resolves to {queue.__file__}"
    assert not (ROOT / "queue" / "__init__.py").exists()


async def test_run_in_executor_works() -> None:
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, sum, [1, 2, 3]) == 6


def test_jobqueue_is_importable_from_its_folder() -> None:
    import jobqueue

    assert Path(jobqueue.__file__).parent == ROOT / "queue" / "jobqueue"
