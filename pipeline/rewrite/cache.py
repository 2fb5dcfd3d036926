"""Rewrites already made, so a retry with the same seed does not pay for the model again.

An in-memory LRU in front of an optional folder of small JSON files (one per key, written
atomically), which several worker processes can share and which survives restarts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .prompts import INSTRUCTIONS_REVISION

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheKey:
    backend: str
    model: str
    prompt: str
    mode: str
    seed: int
    image: str = ""
    """``image_digest`` of the picture the model saw; empty when it saw none."""

    def digest(self) -> str:
        fields: list[object] = [
            INSTRUCTIONS_REVISION,
            self.backend,
            self.model,
            self.prompt,
            self.mode,
            self.seed,
        ]
        if self.image:
            fields.append(self.image)
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()


def image_digest(image: Image.Image | None) -> str:
    """A digest of the picture's size, mode and pixels; empty for no picture."""
    if image is None:
        return ""
    hasher = hashlib.sha256(f"{image.mode} {image.size}".encode())
    hasher.update(image.tobytes())
    return hasher.hexdigest()


@dataclass(frozen=True)
class CachedRewrite:
    rewritten: str
    enhanced: bool
    fallback_reason: str | None


class RewriteCache:
    """LRU of ``capacity`` entries, backed by ``directory`` when one is given."""

    def __init__(self, *, directory: Path | None = None, capacity: int = 512) -> None:
        self._directory = directory
        self._capacity = capacity
        self._memory: OrderedDict[CacheKey, CachedRewrite] = OrderedDict()

    def get(self, key: CacheKey) -> CachedRewrite | None:
        entry = self._memory.get(key)
        if entry is None:
            entry = self._read(key)
            if entry is None:
                return None
        self._remember(key, entry)
        return entry

    def put(self, key: CacheKey, entry: CachedRewrite) -> None:
        self._remember(key, entry)
        self._write(key, entry)

    def _remember(self, key: CacheKey, entry: CachedRewrite) -> None:
        self._memory[key] = entry
        self._memory.move_to_end(key)
        while len(self._memory) > self._capacity:
            self._memory.popitem(last=False)

    def _path(self, key: CacheKey) -> Path | None:
        if self._directory is None:
            return None
        digest = key.digest()
        return self._directory / digest[:2] / f"{digest}.json"

    def _read(self, key: CacheKey) -> CachedRewrite | None:
        path = self._path(key)
        if path is None or not path.exists():
            return None
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            if stored["key"] != asdict(key):
                return None
            return CachedRewrite(**stored["rewrite"])
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("Ignoring unreadable rewrite cache file %s", path, exc_info=True)
            return None

    def _write(self, key: CacheKey, entry: CachedRewrite) -> None:
        path = self._path(key)
        if path is None:
            return
        document = json.dumps({"key": asdict(key), "rewrite": asdict(entry)}, ensure_ascii=False)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor, scratch = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(document)
            os.replace(scratch, path)
        except OSError:
            # A full or read-only disk costs a later rewrite, never this one.
            log.warning("Could not write rewrite cache file %s", path, exc_info=True)
