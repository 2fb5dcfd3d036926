"""The shipped starter blocklist (data/blocklist.default.toml), read into rule specs."""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regex

from jobqueue.moderation.matcher import clean_pattern
from jobqueue.moderation.models import InvalidRule, RuleKind

log = logging.getLogger(__name__)

DEFAULT_BLOCKLIST_PATH = Path(__file__).resolve().parents[3] / "data" / "blocklist.default.toml"
"""The repository's data/blocklist.default.toml (the project is installed editable)."""

DEFAULT_REGEX_MAX_LENGTH = 4000
"""Generated combination rules are long; the shipped file is trusted up to this length."""


class BlocklistFileError(ValueError):
    """The default blocklist file is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class RuleSpec:
    """A rule before it is stored for a server."""

    kind: RuleKind
    pattern: str
    category: str


def combination_regex(subjects: Sequence[str], scenes: Sequence[str]) -> str:
    """A regex matching text that contains one subject and one scene, anywhere, either order."""
    return (
        rf"^(?=.*\b(?:{'|'.join(subjects)})\b)"
        rf"(?=.*\b(?:{'|'.join(scenes)})\b)"
    )


def load_blocklist_file(path: Path) -> list[RuleSpec]:
    """Every rule in a blocklist TOML file (format: the comments at the top of the file)."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BlocklistFileError(f"cannot read the blocklist {path}: {exc}") from exc
    specs: list[RuleSpec] = []
    for index, entry in enumerate(document.get("rules", [])):
        category = _category(entry, path, f"rules #{index + 1}")
        specs += [RuleSpec("term", term, category) for term in _strings(entry, "terms", path)]
        specs += [RuleSpec("regex", rx, category) for rx in _strings(entry, "regexes", path)]
    for index, entry in enumerate(document.get("combinations", [])):
        where = f"combinations #{index + 1}"
        category = _category(entry, path, where)
        names = [_name_fragment(name) for name in _strings(entry, "names", path)]
        subjects = _strings(entry, "subjects", path) + names
        scenes = _strings(entry, "scenes", path)
        if not subjects or not scenes:
            raise BlocklistFileError(f"{path}: {where} needs subjects (or names) and scenes")
        specs.append(RuleSpec("regex", combination_regex(subjects, scenes), category))
    return [_validated(spec, path) for spec in specs]


def load_default_blocklist(path: Path | None = DEFAULT_BLOCKLIST_PATH) -> list[RuleSpec]:
    """The shipped list, or none (with a warning) when the file is not there."""
    if path is None:
        return []
    if not path.exists():
        log.warning("no default blocklist at %s; servers start with an empty blocklist", path)
        return []
    return load_blocklist_file(path)


def _name_fragment(name: str) -> str:
    # Names are literal; written together or apart ("taylorswift") they still match.
    return r" ?".join(regex.escape(part) for part in name.casefold().split())


def _category(entry: dict[str, Any], path: Path, where: str) -> str:
    category = entry.get("category")
    if not isinstance(category, str) or not category.strip():
        raise BlocklistFileError(f"{path}: {where} has no category")
    return category.strip()


def _strings(entry: dict[str, Any], key: str, path: Path) -> list[str]:
    values = entry.get(key, [])
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise BlocklistFileError(f"{path}: {key} must be a list of strings")
    return values


def _validated(spec: RuleSpec, path: Path) -> RuleSpec:
    try:
        pattern = clean_pattern(spec.kind, spec.pattern, max_regex_length=DEFAULT_REGEX_MAX_LENGTH)
    except InvalidRule as exc:
        raise BlocklistFileError(f"{path}: {spec.kind} {spec.pattern[:60]!r}: {exc}") from exc
    return RuleSpec(spec.kind, pattern, spec.category)
