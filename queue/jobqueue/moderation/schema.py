"""Moderation's tables, as ``sqlite_utils`` migrations (the set named "moderation").

Every table is per server (``guild_id``; direct messages use 0). ``mod_guilds`` holds a
server's settings and ``blocklist_version``, advanced by every blocklist change so each
process knows when its compiled copy of the list is stale.
"""

from __future__ import annotations

import sqlite_utils

MIGRATIONS = sqlite_utils.Migrations("moderation")


_TABLES = """
        CREATE TABLE mod_guilds (
            guild_id INTEGER PRIMARY KEY,
            blocklist_seeded_at REAL,
            blocklist_version INTEGER NOT NULL DEFAULT 0,
            mod_role_id INTEGER,
            mod_log_channel_id INTEGER
        );
        CREATE TABLE blocklist_rules (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            guild_id INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('term', 'regex')),
            pattern TEXT NOT NULL,
            category TEXT NOT NULL,
            source TEXT NOT NULL CHECK (source IN ('default', 'admin')),
            added_by INTEGER,
            added_at REAL NOT NULL,
            UNIQUE (guild_id, kind, pattern)
        );
        CREATE TABLE channel_rules (
            guild_id INTEGER NOT NULL,
            channel_id INTEGER NOT NULL,
            allowed INTEGER NOT NULL,
            PRIMARY KEY (guild_id, channel_id)
        );
        CREATE TABLE bans (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            guild_id INTEGER NOT NULL,
            user_id INTEGER NOT NULL,
            created_at REAL NOT NULL,
            until REAL,
            reason TEXT NOT NULL DEFAULT '',
            banned_by INTEGER NOT NULL,
            lifted_at REAL,
            lifted_by INTEGER
        );
        CREATE INDEX bans_by_user ON bans (guild_id, user_id, created_at);
        CREATE TABLE strikes (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            guild_id INTEGER NOT NULL,
            user_id INTEGER NOT NULL,
            created_at REAL NOT NULL,
            rule_id INTEGER,
            category TEXT NOT NULL,
            field TEXT NOT NULL
        );
        CREATE INDEX strikes_by_user ON strikes (guild_id, user_id, created_at);
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            guild_id INTEGER NOT NULL,
            created_at REAL NOT NULL,
            actor_id INTEGER NOT NULL,
            action TEXT NOT NULL,
            target_user_id INTEGER,
            target_job_id INTEGER,
            reason TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX audit_by_guild ON audit_log (guild_id, id);
        CREATE INDEX audit_by_target ON audit_log (guild_id, target_user_id, id);
        """


@MIGRATIONS()
def create_moderation_tables(db: sqlite_utils.Database) -> None:
    # One statement at a time: executescript would COMMIT the caller's transaction.
    for statement in _TABLES.split(";"):
        if statement.strip():
            db.execute(statement)
