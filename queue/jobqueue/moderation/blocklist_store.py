"""A server's blocklist rows: seeding from the defaults, adding, removing, listing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlite_utils

from jobqueue.moderation.defaults import RuleSpec
from jobqueue.moderation.models import BlockRule, InvalidRule, RuleNotFound

_COLUMNS = "id, guild_id, kind, pattern, category, source, added_by, added_at"


def ensure_guild(db: sqlite_utils.Database, guild_id: int) -> None:
    db.execute("INSERT OR IGNORE INTO mod_guilds (guild_id) VALUES (?)", [guild_id])


def blocklist_version(db: sqlite_utils.Database, guild_id: int) -> int | None:
    """The list's version, or ``None`` while the server has not been given the defaults."""
    row = db.execute(
        "SELECT blocklist_version FROM mod_guilds"
        " WHERE guild_id = ? AND blocklist_seeded_at IS NOT NULL",
        [guild_id],
    ).fetchone()
    return None if row is None else int(row[0])


def seed_defaults(
    db: sqlite_utils.Database, guild_id: int, defaults: Sequence[RuleSpec], *, now: float
) -> int:
    """Give a server the default rules once (never again, even if admins remove them)."""
    ensure_guild(db, guild_id)
    version = blocklist_version(db, guild_id)
    if version is not None:
        return version
    db.conn.executemany(
        "INSERT OR IGNORE INTO blocklist_rules"
        " (guild_id, kind, pattern, category, source, added_by, added_at)"
        " VALUES (?, ?, ?, ?, 'default', NULL, ?)",
        [(guild_id, spec.kind, spec.pattern, spec.category, now) for spec in defaults],
    )
    db.execute("UPDATE mod_guilds SET blocklist_seeded_at = ? WHERE guild_id = ?", [now, guild_id])
    return _bump_version(db, guild_id)


def guild_rules(db: sqlite_utils.Database, guild_id: int) -> list[BlockRule]:
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM blocklist_rules WHERE guild_id = ? ORDER BY id", [guild_id]
    ).fetchall()
    return [_rule(row) for row in rows]


def versioned_rules(db: sqlite_utils.Database, guild_id: int) -> tuple[int, list[BlockRule]]:
    """The version and the rules read together, so they always belong to each other."""
    return blocklist_version(db, guild_id) or 0, guild_rules(db, guild_id)


def insert_rule(
    db: sqlite_utils.Database, guild_id: int, spec: RuleSpec, *, added_by: int, now: float
) -> BlockRule:
    existing = _find_by_pattern(db, guild_id, spec.pattern, kind=spec.kind)
    if existing is not None:
        raise InvalidRule(f"That {spec.kind} is already on the blocklist (rule #{existing.id}).")
    cursor = db.execute(
        "INSERT INTO blocklist_rules"
        " (guild_id, kind, pattern, category, source, added_by, added_at)"
        " VALUES (?, ?, ?, ?, 'admin', ?, ?)",
        [guild_id, spec.kind, spec.pattern, spec.category, added_by, now],
    )
    _bump_version(db, guild_id)
    return BlockRule(
        id=int(cursor.lastrowid or 0),
        guild_id=guild_id,
        kind=spec.kind,
        pattern=spec.pattern,
        category=spec.category,
        source="admin",
        added_by=added_by,
        added_at=now,
    )


def delete_rule(db: sqlite_utils.Database, guild_id: int, rule: str | int) -> BlockRule:
    """Remove a rule named by its id (``12`` or ``"#12"``) or its exact text."""
    found = _find(db, guild_id, rule)
    if found is None:
        raise RuleNotFound(f"There is no blocklist rule {rule!s} in this server; see the list.")
    db.execute("DELETE FROM blocklist_rules WHERE id = ?", [found.id])
    _bump_version(db, guild_id)
    return found


def _find(db: sqlite_utils.Database, guild_id: int, rule: str | int) -> BlockRule | None:
    text = str(rule).strip()
    if text.removeprefix("#").isdigit():
        row = db.execute(
            f"SELECT {_COLUMNS} FROM blocklist_rules WHERE guild_id = ? AND id = ?",
            [guild_id, int(text.removeprefix("#"))],
        ).fetchone()
        if row is not None:
            return _rule(row)
    return _find_by_pattern(db, guild_id, text, kind=None)


def _find_by_pattern(
    db: sqlite_utils.Database, guild_id: int, pattern: str, *, kind: str | None
) -> BlockRule | None:
    # Terms ignore case ("Loli" names "loli"); a regex's case can matter (\S is not \s).
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM blocklist_rules WHERE guild_id = ? AND lower(pattern) = lower(?)"
        " ORDER BY id",
        [guild_id, pattern],
    ).fetchall()
    for rule in map(_rule, rows):
        if (kind is None or rule.kind == kind) and (rule.kind == "term" or rule.pattern == pattern):
            return rule
    return None


def _bump_version(db: sqlite_utils.Database, guild_id: int) -> int:
    ensure_guild(db, guild_id)
    db.execute(
        "UPDATE mod_guilds SET blocklist_version = blocklist_version + 1 WHERE guild_id = ?",
        [guild_id],
    )
    row = db.execute(
        "SELECT blocklist_version FROM mod_guilds WHERE guild_id = ?", [guild_id]
    ).fetchone()
    return int(row[0])


def _rule(row: tuple[Any, ...]) -> BlockRule:
    return BlockRule(*row)
