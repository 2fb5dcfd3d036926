"""What moderation stores and returns: rules, hits, bans, audit entries, and its errors."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

RuleKind = Literal["term", "regex"]
RULE_KINDS: tuple[RuleKind, ...] = ("term", "regex")

PromptField = Literal["prompt", "negative prompt", "rewritten prompt"]

DM_GUILD_ID = 0
"""Where direct messages keep their moderation state (Discord ids are never 0)."""


class ModerationError(Exception):
    """A moderation request that cannot be done; the message is one sentence for the user."""


class InvalidRule(ModerationError):
    """A blocklist term or regular expression that cannot be added."""


class RuleNotFound(ModerationError):
    """No blocklist rule with that id or text in this server."""


class InvalidDuration(ModerationError):
    """A ban duration that is not like 30m, 2h, 7d or permanent."""


class AuditAction(StrEnum):
    """What an audit row records. Values are stable: they are stored."""

    BAN = "ban"
    UNBAN = "unban"
    STRIKE_BAN = "strike_ban"
    REFUSAL = "refusal"
    REWRITE_BLOCKED = "rewrite_blocked"
    BLOCKLIST_ADD = "blocklist_add"
    BLOCKLIST_REMOVE = "blocklist_remove"
    LIMITS_SET = "limits_set"
    QUEUE_PAUSE = "queue_pause"
    QUEUE_RESUME = "queue_resume"
    QUEUE_CLEAR = "queue_clear"
    JOB_CANCEL = "job_cancel"
    JOB_DELETE = "job_delete"
    CHANNEL_ALLOW = "channel_allow"
    CHANNEL_DENY = "channel_deny"
    MOD_ROLE_SET = "mod_role_set"
    MOD_LOG_SET = "mod_log_set"
    DENIED = "denied"
    """Someone without moderator rights tried an admin command."""
    SAFETY_SET = "safety_set"
    OUTPUT_WITHHELD = "output_withheld"
    """The output safety check held a clip back and it was not posted."""
    OUTPUT_SPOILERED = "output_spoilered"
    """A held clip was posted as a spoiler in an age-restricted channel."""
    OUTPUT_RELEASED = "output_released"
    OUTPUT_DELETED = "output_deleted"
    GALLERY_ALLOW = "gallery_allow"
    """A channel's clips were made public in the web gallery."""
    GALLERY_DENY = "gallery_deny"
    DRAFTS_SET = "drafts_set"
    """Whether /create makes drafts first on the server was changed."""


@dataclass(frozen=True)
class BlockRule:
    """One blocklist entry of a server."""

    id: int
    guild_id: int
    kind: RuleKind
    pattern: str
    category: str
    source: Literal["default", "admin"]
    added_by: int | None
    added_at: float


@dataclass(frozen=True)
class BlockHit:
    """A prompt matched a rule. Users are told the category, never the pattern."""

    rule_id: int
    category: str
    field: PromptField


@dataclass(frozen=True)
class Ban:
    """A user may not generate in a server until ``until`` (``None``: until unbanned)."""

    id: int
    guild_id: int
    user_id: int
    until: float | None
    reason: str
    by: int
    """Who banned: a moderator's user id, or the user's own id for a strike ban."""
    created_at: float

    @property
    def permanent(self) -> bool:
        return self.until is None


@dataclass(frozen=True)
class AuditNote:
    """An audit row about to be written: who did what to whom, and why."""

    actor_id: int
    action: str
    target_user_id: int | None = None
    target_job_id: int | None = None
    reason: str = ""
    detail: str = ""


@dataclass(frozen=True)
class AuditEntry:
    """Who (actor) did what (action) to whom (target), why (reason) and when (created_at)."""

    id: int
    guild_id: int
    created_at: float
    actor_id: int
    action: str
    target_user_id: int | None
    target_job_id: int | None
    reason: str
    detail: str
    """What exactly changed, for moderators (a ban's end, a rule's id and category)."""
