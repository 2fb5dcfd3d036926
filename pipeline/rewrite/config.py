"""How a rewriter is set up: which backend, which model, how long it may take."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

BackendName = Literal["local", "openai", "off"]
OpenAIApi = Literal["auto", "chat", "completions"]
VisionChoice = Literal["auto", "on", "off"]

AUTO_MODEL = "auto"
"""``local_model`` value: the instruction-tuned default on a GPU, the packaged Gemma otherwise."""


@dataclass(frozen=True)
class RewriterConfig:
    """Plain values an entry point fills from its settings."""

    backend: BackendName = "local"
    local_model: str = AUTO_MODEL
    models_dir: Path = Path("data/models")
    cache_dir: Path | None = None
    openai_base_url: str = "http://localhost:11434/v1"
    openai_model: str = "qwen2.5:3b-instruct"
    openai_api_key: str = field(default="", repr=False)
    openai_api: OpenAIApi = "auto"
    openai_vision: VisionChoice = "auto"
    timeout_s: float = 60.0
    device: str = "auto"
    # Enough for 150 words; a small model that runs past it is rambling anyway.
    max_new_tokens: int = 220
