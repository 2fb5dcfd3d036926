"""Moderation: bans, strikes, the blocklist, channel rules, the mod role and the audit log.

The bot checks every submission with :class:`Moderation` (channel allowed, user not banned,
prompts not blocked); the worker checks the rewritten prompt. ``MIGRATIONS`` is the schema,
applied by ``JobQueue.open`` with the job queue's own.
"""

from __future__ import annotations

from jobqueue.moderation.defaults import (
    DEFAULT_BLOCKLIST_PATH,
    BlocklistFileError,
    RuleSpec,
    load_blocklist_file,
    load_default_blocklist,
)
from jobqueue.moderation.durations import format_duration, parse_duration
from jobqueue.moderation.matcher import Blocklist
from jobqueue.moderation.models import (
    DM_GUILD_ID,
    RULE_KINDS,
    AuditAction,
    AuditEntry,
    Ban,
    BlockHit,
    BlockRule,
    InvalidDuration,
    InvalidRule,
    ModerationError,
    PromptField,
    RuleKind,
    RuleNotFound,
)
from jobqueue.moderation.schema import MIGRATIONS
from jobqueue.moderation.service import (
    AUTOMATIC_ACTOR_ID,
    DEFAULT_CATEGORY,
    Moderation,
)

__all__ = [
    "AUTOMATIC_ACTOR_ID",
    "DEFAULT_BLOCKLIST_PATH",
    "DEFAULT_CATEGORY",
    "DM_GUILD_ID",
    "MIGRATIONS",
    "RULE_KINDS",
    "AuditAction",
    "AuditEntry",
    "Ban",
    "BlockHit",
    "BlockRule",
    "Blocklist",
    "BlocklistFileError",
    "InvalidDuration",
    "InvalidRule",
    "Moderation",
    "ModerationError",
    "PromptField",
    "RuleKind",
    "RuleNotFound",
    "RuleSpec",
    "format_duration",
    "load_blocklist_file",
    "load_default_blocklist",
    "parse_duration",
]
