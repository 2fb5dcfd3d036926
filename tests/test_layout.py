"""The project's layout must not break the standard library (see DESIGN.md)."""

from __future__ import annotations

import ast
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


def _imported_top_packages(folder: Path) -> set[str]:
    """Top-level names imported anywhere under ``folder`` (at module level or inside functions)."""
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_dependencies_point_one_way_bot_to_jobqueue_to_pipeline() -> None:
    pipeline_imports = _imported_top_packages(ROOT / "pipeline")
    jobqueue_imports = _imported_top_packages(ROOT / "queue" / "jobqueue")
    assert "pipeline" in jobqueue_imports  # the scan sees imports at all
    assert not pipeline_imports & {"bot", "jobqueue", "discord"}
    assert not jobqueue_imports & {"bot", "discord"}
