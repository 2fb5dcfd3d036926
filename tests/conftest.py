"""Shared pytest fixtures. Each area appends its own under a comment naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.tiny import ensure_tiny_pipeline

# --- pipeline (pipeline engineer) ---


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding the ``tiny`` and ``tiny-i2v`` pipelines, built once per session.

    It is ``<data dir>/models``: pass it as ``VideoGenerator(..., models_dir=tiny_models_dir)``,
    or set ``REELBOT_DATA_DIR`` to ``tiny_models_dir.parent`` so settings find the models
    (use presets ``tiny`` / ``tiny-i2v``). Treat it as read-only: it is shared by all tests.
    """
    models_dir = tmp_path_factory.mktemp("data") / "models"
    ensure_tiny_pipeline(models_dir, "t2v")
    ensure_tiny_pipeline(models_dir, "i2v")
    return models_dir


# --- fake Discord (fake-Discord engineer) ---
pytest_plugins = ["tests.fakediscord.fixtures"]
