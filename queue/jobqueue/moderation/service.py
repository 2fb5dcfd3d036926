"""The moderation API the bot and the worker use, over the shared :class:`Database`.

Every change a moderator makes, and every refusal, writes an audit row in the same
transaction as the change itself. Any process may write them (the worker audits blocked
rewrites); the bot's mod-log follows the table (:mod:`jobqueue.audit_feed`), not this object.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import sqlite_utils

from jobqueue.db import Database
from jobqueue.moderation import audit as audit_log
from jobqueue.moderation import bans, blocklist_store, guild_config
from jobqueue.moderation.defaults import RuleSpec, load_default_blocklist
from jobqueue.moderation.durations import format_duration
from jobqueue.moderation.matcher import Blocklist, clean_pattern
from jobqueue.moderation.models import (
    DM_GUILD_ID,
    AuditAction,
    AuditEntry,
    AuditNote,
    Ban,
    BlockHit,
    BlockRule,
    PromptField,
    RuleKind,
)

log = logging.getLogger(__name__)

AUTOMATIC_ACTOR_ID = 0
"""``actor_id`` / ``Ban.by`` of what the bot does on its own (a ban for too many strikes)."""

DEFAULT_CATEGORY = "this server's rules"
"""The category of a rule added without one; users are told it when refused."""

T = TypeVar("T")
AuditedChange = Callable[[sqlite_utils.Database, float], tuple[T, Sequence[AuditNote]]]
"""A write, given the database and the time: its result and the audit rows it calls for."""


class Moderation:
    """Bans, strikes, the blocklist, channel rules, the mod role and the audit log."""

    def __init__(
        self,
        db: Database,
        *,
        strikes_for_ban: int = 3,
        strike_window_s: float = 86400,
        strike_ban_s: float = 86400,
        default_rules: Sequence[RuleSpec] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``default_rules`` None reads data/blocklist.default.toml; ``()`` gives none.

        ``strikes_for_ban`` 0 turns automatic bans off.
        """
        self.db = db
        self.strikes_for_ban = strikes_for_ban
        self.strike_window_s = strike_window_s
        self.strike_ban_s = strike_ban_s
        self._defaults = list(load_default_blocklist() if default_rules is None else default_rules)
        self._clock = clock
        self._compiled: dict[int, tuple[int, Blocklist]] = {}

    # --- audit -------------------------------------------------------------------------

    async def audit(
        self,
        guild_id: int | None,
        *,
        actor_id: int,
        action: AuditAction | str,
        target_user_id: int | None = None,
        target_job_id: int | None = None,
        reason: str = "",
        detail: str = "",
    ) -> None:
        """Record an action done elsewhere (queue control, job deletion, a refused command)."""
        note = AuditNote(
            actor_id,
            action,
            target_user_id=target_user_id,
            target_job_id=target_job_id,
            reason=reason,
            detail=detail,
        )
        await self._write_audited(guild_id, lambda db, now: (None, [note]))

    async def _write_audited(self, guild_id: int | None, change: AuditedChange[T]) -> T:
        """Run ``change`` and write the audit rows it calls for in one transaction, so no
        change is ever without its row."""
        guild, now = _guild(guild_id), self._clock()

        def write(db: sqlite_utils.Database) -> T:
            result, notes = change(db, now)
            for note in notes:
                audit_log.insert_entry(db, guild, note, now=now)
            return result

        return await self.db.write(write)

    async def recent_actions(
        self, guild_id: int | None, *, user_id: int | None = None, limit: int = 20
    ) -> list[AuditEntry]:
        """Newest first; with ``user_id``, the actions done by or to that user."""
        guild = _guild(guild_id)
        return await self.db.read(
            lambda db: audit_log.recent_entries(db, guild, user_id=user_id, limit=limit)
        )

    # --- bans and strikes --------------------------------------------------------------

    async def active_ban(self, guild_id: int | None, user_id: int) -> Ban | None:
        guild, now = _guild(guild_id), self._clock()
        return await self.db.read(lambda db: bans.active_ban(db, guild, user_id, now=now))

    async def ban(
        self,
        guild_id: int | None,
        user_id: int,
        *,
        actor_id: int,
        duration_s: float | None,
        reason: str = "",
    ) -> Ban:
        """Ban for ``duration_s`` seconds (``None``: until unbanned), replacing a current ban."""
        guild = _guild(guild_id)
        note = AuditNote(
            actor_id,
            AuditAction.BAN,
            target_user_id=user_id,
            reason=reason,
            detail=f"for {format_duration(duration_s)}",
        )

        def ban(db: sqlite_utils.Database, now: float) -> tuple[Ban, list[AuditNote]]:
            until = None if duration_s is None else now + duration_s
            banned = bans.insert_ban(
                db, guild, user_id, now=now, until=until, reason=reason, by=actor_id
            )
            return banned, [note]

        return await self._write_audited(guild, ban)

    async def unban(
        self, guild_id: int | None, user_id: int, *, actor_id: int, reason: str = ""
    ) -> Ban | None:
        """Lift the ban in force; returns it, or ``None`` (and audits nothing) if there was none."""
        guild = _guild(guild_id)

        def unban(db: sqlite_utils.Database, now: float) -> tuple[Ban | None, list[AuditNote]]:
            lifted = bans.lift_bans(db, guild, user_id, now=now, by=actor_id)
            if lifted is None:
                return None, []
            detail = f"ban #{lifted.id} lifted"
            note = AuditNote(
                actor_id, AuditAction.UNBAN, target_user_id=user_id, reason=reason, detail=detail
            )
            return lifted, [note]

        return await self._write_audited(guild, unban)

    async def record_refusal(self, guild_id: int | None, user_id: int, hit: BlockHit) -> Ban | None:
        """Audit a refused prompt and count a strike; returns the ban it earned, if any."""
        guild = _guild(guild_id)
        refusal = AuditNote(
            user_id,
            AuditAction.REFUSAL,
            target_user_id=user_id,
            reason=f"blocked {hit.field}: {hit.category}",
            detail=f"rule #{hit.rule_id}",
        )

        def refuse(db: sqlite_utils.Database, now: float) -> tuple[Ban | None, list[AuditNote]]:
            bans.add_strike(db, guild, user_id, hit, now=now)
            ban = self._ban_for_strikes(db, guild, user_id, now=now)
            if ban is None:
                return None, [refusal]
            strike_ban = AuditNote(
                AUTOMATIC_ACTOR_ID,
                AuditAction.STRIKE_BAN,
                target_user_id=user_id,
                reason=ban.reason,
                detail=f"for {format_duration(self.strike_ban_s)}",
            )
            return ban, [refusal, strike_ban]

        return await self._write_audited(guild, refuse)

    def _ban_for_strikes(
        self, db: sqlite_utils.Database, guild_id: int, user_id: int, *, now: float
    ) -> Ban | None:
        if self.strikes_for_ban <= 0:
            return None
        strikes = bans.strikes_counting(
            db, guild_id, user_id, now=now, window_s=self.strike_window_s
        )
        if strikes < self.strikes_for_ban:
            return None
        window = format_duration(self.strike_window_s)
        return bans.insert_ban(
            db,
            guild_id,
            user_id,
            now=now,
            until=now + self.strike_ban_s,
            reason=f"{strikes} refused prompts within {window}",
            by=AUTOMATIC_ACTOR_ID,
        )

    async def record_rewrite_block(
        self, guild_id: int | None, user_id: int, hit: BlockHit, *, job_id: int
    ) -> None:
        """Audit a rewritten prompt that was blocked (the worker then uses the user's own).

        No strike: the user did not write it.
        """
        await self.audit(
            guild_id,
            actor_id=AUTOMATIC_ACTOR_ID,
            action=AuditAction.REWRITE_BLOCKED,
            target_user_id=user_id,
            target_job_id=job_id,
            reason=f"blocked {hit.field}: {hit.category}",
            detail=f"rule #{hit.rule_id}",
        )

    # --- blocklist ---------------------------------------------------------------------

    async def check_prompts(
        self,
        guild_id: int | None,
        *,
        prompt: str,
        negative_prompt: str = "",
        rewritten_prompt: str | None = None,
    ) -> BlockHit | None:
        """The first blocked text among the prompt, the negative prompt and the rewrite."""
        blocklist = await self._blocklist(_guild(guild_id))
        return await asyncio.to_thread(
            prompt_hit,
            blocklist,
            prompt=prompt,
            negative_prompt=negative_prompt,
            rewritten_prompt=rewritten_prompt,
        )

    async def blocklist_list(self, guild_id: int | None) -> list[BlockRule]:
        guild = _guild(guild_id)
        await self._ensure_seeded(guild)
        return await self.db.read(lambda db: blocklist_store.guild_rules(db, guild))

    async def blocklist_add(
        self,
        guild_id: int | None,
        pattern: str,
        *,
        actor_id: int,
        kind: RuleKind = "term",
        category: str = "",
    ) -> BlockRule:
        """Add a term or regex; :class:`InvalidRule` says what is wrong with a bad one."""
        guild = _guild(guild_id)
        cleaned = await asyncio.to_thread(clean_pattern, kind, pattern)
        spec = RuleSpec(kind, cleaned, category.strip() or DEFAULT_CATEGORY)
        await self._ensure_seeded(guild)

        def add(db: sqlite_utils.Database, now: float) -> tuple[BlockRule, list[AuditNote]]:
            rule = blocklist_store.insert_rule(db, guild, spec, added_by=actor_id, now=now)
            return rule, [_rule_note(actor_id, AuditAction.BLOCKLIST_ADD, rule)]

        return await self._write_audited(guild, add)

    async def blocklist_remove(
        self, guild_id: int | None, rule: str | int, *, actor_id: int
    ) -> BlockRule:
        """Remove a rule named by id (``12``, ``"#12"``) or exact text; :class:`RuleNotFound`."""
        guild = _guild(guild_id)
        await self._ensure_seeded(guild)

        def remove(db: sqlite_utils.Database, now: float) -> tuple[BlockRule, list[AuditNote]]:
            removed = blocklist_store.delete_rule(db, guild, rule)
            return removed, [_rule_note(actor_id, AuditAction.BLOCKLIST_REMOVE, removed)]

        return await self._write_audited(guild, remove)

    async def _ensure_seeded(self, guild_id: int) -> int:
        version = await self.db.read(lambda db: blocklist_store.blocklist_version(db, guild_id))
        if version is not None:
            return version
        now = self._clock()
        log.info("giving server %s the default blocklist (%d rules)", guild_id, len(self._defaults))
        return await self.db.write(
            lambda db: blocklist_store.seed_defaults(db, guild_id, self._defaults, now=now)
        )

    async def _blocklist(self, guild_id: int) -> Blocklist:
        version = await self._ensure_seeded(guild_id)
        cached = self._compiled.get(guild_id)
        if cached is not None and cached[0] == version:
            return cached[1]
        version, rules = await self.db.read(
            lambda db: blocklist_store.versioned_rules(db, guild_id)
        )
        blocklist = await asyncio.to_thread(Blocklist, rules)
        self._compiled[guild_id] = (version, blocklist)
        return blocklist

    # --- channels, mod role, mod log ---------------------------------------------------

    async def set_channel_allowed(
        self, guild_id: int | None, channel_id: int, allowed: bool, *, actor_id: int
    ) -> None:
        guild = _guild(guild_id)
        action = AuditAction.CHANNEL_ALLOW if allowed else AuditAction.CHANNEL_DENY
        note = AuditNote(actor_id, action, detail=f"channel {channel_id}")

        def allow(db: sqlite_utils.Database, now: float) -> tuple[None, list[AuditNote]]:
            guild_config.set_channel_rule(db, guild, channel_id, allowed=allowed)
            return None, [note]

        await self._write_audited(guild, allow)

    async def channel_allowed(
        self, guild_id: int | None, channel_id: int, default_ids: Sequence[int] = ()
    ) -> bool:
        """Whether generating is allowed in ``channel_id`` (see :func:`is_channel_allowed`)."""
        rules = await self.channel_rules(guild_id)
        return guild_config.is_channel_allowed(rules, channel_id, default_ids)

    async def channel_rules(self, guild_id: int | None) -> dict[int, bool]:
        """Channels admins allowed (True) or denied (False)."""
        guild = _guild(guild_id)
        return await self.db.read(lambda db: guild_config.channel_rules(db, guild))

    async def set_mod_role(
        self, guild_id: int | None, role_id: int | None, *, actor_id: int
    ) -> None:
        """``role_id`` None: no moderator role (only Manage Server counts)."""
        detail = "no role" if role_id is None else f"role {role_id}"
        await self._set_setting(
            guild_id, "mod_role_id", role_id, actor_id, AuditAction.MOD_ROLE_SET, detail
        )

    async def mod_role(self, guild_id: int | None) -> int | None:
        return await self._setting(guild_id, "mod_role_id")

    async def set_mod_log_channel(
        self, guild_id: int | None, channel_id: int | None, *, actor_id: int
    ) -> None:
        detail = "no channel" if channel_id is None else f"channel {channel_id}"
        await self._set_setting(
            guild_id, "mod_log_channel_id", channel_id, actor_id, AuditAction.MOD_LOG_SET, detail
        )

    async def mod_log_channel(self, guild_id: int | None) -> int | None:
        return await self._setting(guild_id, "mod_log_channel_id")

    async def _set_setting(
        self,
        guild_id: int | None,
        name: str,
        value: int | None,
        actor_id: int,
        action: AuditAction,
        detail: str,
    ) -> None:
        guild = _guild(guild_id)
        note = AuditNote(actor_id, action, detail=detail)

        def set_setting(db: sqlite_utils.Database, now: float) -> tuple[None, list[AuditNote]]:
            guild_config.set_guild_setting(db, guild, name, value)
            return None, [note]

        await self._write_audited(guild, set_setting)

    async def _setting(self, guild_id: int | None, name: str) -> int | None:
        guild = _guild(guild_id)
        return await self.db.read(lambda db: guild_config.guild_setting(db, guild, name))


def _guild(guild_id: int | None) -> int:
    return DM_GUILD_ID if guild_id is None else guild_id


def prompt_hit(
    blocklist: Blocklist, *, prompt: str, negative_prompt: str, rewritten_prompt: str | None
) -> BlockHit | None:
    """The first blocked text among the prompt, the negative prompt and the rewrite (blocking:
    the matcher runs regexes; call it in a thread)."""
    fields: list[tuple[PromptField, str]] = [
        ("prompt", prompt),
        ("negative prompt", negative_prompt),
    ]
    if rewritten_prompt is not None:
        fields.append(("rewritten prompt", rewritten_prompt))
    return _first_hit(blocklist, fields)


def _first_hit(blocklist: Blocklist, fields: Sequence[tuple[PromptField, str]]) -> BlockHit | None:
    for field, text in fields:
        if not text:
            continue
        rule = blocklist.first_match(text)
        if rule is not None:
            return BlockHit(rule_id=rule.id, category=rule.category, field=field)
    return None


def _rule_note(actor_id: int, action: AuditAction, rule: BlockRule) -> AuditNote:
    return AuditNote(
        actor_id, action, detail=f"{rule.kind} #{rule.id} ({rule.category}): {rule.pattern}"
    )
