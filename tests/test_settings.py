"""Every setting is documented in .env.example, with its default; nothing stale is there, and
the READMEs name no setting that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
ENV_EXAMPLE = ROOT / ".env.example"
DOCS = (ROOT / "README.md", ROOT / "benchmarks" / "README.md", ROOT / "data" / "README.md")


def documented_settings() -> dict[str, str]:
    """Map each ``NAME=value`` line in .env.example (commented out or not) to its value."""
    pattern = re.compile(r"^#?\s*([A-Z][A-Z0-9_]+)=(.*)$")
    found: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = pattern.match(line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def env_name(field_name: str) -> str:
    field = Settings.model_fields[field_name]
    alias = field.validation_alias
    choices = getattr(alias, "choices", None)
    if choices:
        return str(choices[0])
    return f"REELBOT_{field_name.upper()}"


def test_every_setting_is_documented() -> None:
    documented = documented_settings()
    expected = {env_name(name) for name in Settings.model_fields}
    assert sorted(expected - documented.keys()) == []
    assert sorted(documented.keys() - expected) == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_the_docs_name_only_real_settings(doc: Path) -> None:
    named = set(re.findall(r"\b(?:REELBOT|DISCORD)_[A-Z0-9_]+\b", doc.read_text()))
    assert sorted(named - documented_settings().keys()) == []


def test_every_documented_line_has_an_explanation() -> None:
    lines = ENV_EXAMPLE.read_text().splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^#?\s*[A-Z][A-Z0-9_]+=", line):
            assert lines[index - 1].startswith("# "), f"{line!r} has no comment above it"


def test_documented_defaults_load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in documented_settings().items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    defaults = Settings.model_construct()
    for name in Settings.model_fields:
        if name == "database":
            continue
        assert getattr(settings, name) == getattr(defaults, name), name


def test_comma_separated_ids(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DISCORD_GUILD_IDS", "1, 2,3")
    assert Settings().discord_guild_ids == [1, 2, 3]
