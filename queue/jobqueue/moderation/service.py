"""The moderation API the bot and the worker use, over the shared :class:`Database`.

Every change a moderator makes, and every refusal, writes an audit row in the same
transaction as the change itself. Listeners (the bot's mod-log poster) hear about each new
audit row after it is committed; they run as tasks, so a slow Discord never delays a reply.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

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

AuditListener = Callable[[AuditEntry], Awaitable[None]]


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
        self._listeners: list[AuditListener] = []
        self._listener_tasks: set[asyncio.Task[None]] = set()

    # --- audit -------------------------------------------------------------------------

    def add_listener(self, listener: AuditListener) -> None:
        """Call ``listener`` with every audit row this instance writes, once committed."""
        self._listeners.append(listener)

    def remove_listener(self, listener: AuditListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    async def wait_for_listeners(self) -> None:
        """Wait until every listener call started so far has finished."""
        while self._listener_tasks:
            await asyncio.gather(*self._listener_tasks, return_exceptions=True)

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
    ) -> AuditEntry:
        """Record an action done elsewhere (queue control, job deletion, a refused command)."""
        guild = _guild(guild_id)
        now = self._clock()
        entry = await self.db.write(
            lambda db: audit_log.insert_entry(
                db,
                guild,
                now=now,
                actor_id=actor_id,
                action=action,
                target_user_id=target_user_id,
                target_job_id=target_job_id,
                reason=reason,
                detail=detail,
            )
        )
        self._notify(entry)
        return entry

    async def recent_actions(
        self, guild_id: int | None, *, user_id: int | None = None, limit: int = 20
    ) -> list[AuditEntry]:
        """Newest first; with ``user_id``, the actions done by or to that user."""
        guild = _guild(guild_id)
        return await self.db.read(
            lambda db: audit_log.recent_entries(db, guild, user_id=user_id, limit=limit)
        )

    def _notify(self, *entries: AuditEntry) -> None:
        for entry in entries:
            for listener in self._listeners:
                task = asyncio.create_task(self._call_listener(listener, entry))
                self._listener_tasks.add(task)
                task.add_done_callback(self._listener_tasks.discard)

    async def _call_listener(self, listener: AuditListener, entry: AuditEntry) -> None:
        try:
            await listener(entry)
        except Exception:
            log.exception("audit listener failed for entry %s", entry.id)

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
        guild, now = _guild(guild_id), self._clock()
        until = None if duration_s is None else now + duration_s

        def write(db: sqlite_utils.Database) -> tuple[Ban, AuditEntry]:
            ban = bans.insert_ban(
                db, guild, user_id, now=now, until=until, reason=reason, by=actor_id
            )
            entry = audit_log.insert_entry(
                db,
                guild,
                now=now,
                actor_id=actor_id,
                action=AuditAction.BAN,
                target_user_id=user_id,
                reason=reason,
                detail=f"for {format_duration(duration_s)}",
            )
            return ban, entry

        ban, entry = await self.db.write(write)
        self._notify(entry)
        return ban

    async def unban(
        self, guild_id: int | None, user_id: int, *, actor_id: int, reason: str = ""
    ) -> Ban | None:
        """Lift the ban in force; returns it, or ``None`` (and audits nothing) if there was none."""
        guild, now = _guild(guild_id), self._clock()

        def write(db: sqlite_utils.Database) -> tuple[Ban | None, AuditEntry | None]:
            lifted = bans.lift_bans(db, guild, user_id, now=now, by=actor_id)
            if lifted is None:
                return None, None
            entry = audit_log.insert_entry(
                db,
                guild,
                now=now,
                actor_id=actor_id,
                action=AuditAction.UNBAN,
                target_user_id=user_id,
                reason=reason,
                detail=f"ban #{lifted.id} lifted",
            )
            return lifted, entry

        lifted, entry = await self.db.write(write)
        if entry is not None:
            self._notify(entry)
        return lifted

    async def record_refusal(self, guild_id: int | None, user_id: int, hit: BlockHit) -> Ban | None:
        """Audit a refused prompt and count a strike; returns the ban it earned, if any."""
        guild, now = _guild(guild_id), self._clock()

        def write(db: sqlite_utils.Database) -> tuple[Ban | None, list[AuditEntry]]:
            bans.add_strike(db, guild, user_id, hit, now=now)
            entries = [
                audit_log.insert_entry(
                    db,
                    guild,
                    now=now,
                    actor_id=user_id,
                    action=AuditAction.REFUSAL,
                    target_user_id=user_id,
                    reason=f"blocked {hit.field}: {hit.category}",
                    detail=f"rule #{hit.rule_id}",
                )
            ]
            ban = self._ban_for_strikes(db, guild, user_id, now=now)
            if ban is not None:
                entries.append(
                    audit_log.insert_entry(
                        db,
                        guild,
                        now=now,
                        actor_id=AUTOMATIC_ACTOR_ID,
                        action=AuditAction.STRIKE_BAN,
                        target_user_id=user_id,
                        reason=ban.reason,
                        detail=f"for {format_duration(self.strike_ban_s)}",
                    )
                )
            return ban, entries

        ban, entries = await self.db.write(write)
        self._notify(*entries)
        return ban

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
    ) -> AuditEntry:
        """Audit a rewritten prompt that was blocked (the worker then uses the user's own).

        No strike: the user did not write it.
        """
        return await self.audit(
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
        fields: list[tuple[PromptField, str]] = [
            ("prompt", prompt),
            ("negative prompt", negative_prompt),
        ]
        if rewritten_prompt is not None:
            fields.append(("rewritten prompt", rewritten_prompt))
        return await asyncio.to_thread(_first_hit, blocklist, fields)

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
        guild, now = _guild(guild_id), self._clock()
        cleaned = await asyncio.to_thread(clean_pattern, kind, pattern)
        spec = RuleSpec(kind, cleaned, category.strip() or DEFAULT_CATEGORY)
        await self._ensure_seeded(guild)

        def write(db: sqlite_utils.Database) -> tuple[BlockRule, AuditEntry]:
            rule = blocklist_store.insert_rule(db, guild, spec, added_by=actor_id, now=now)
            entry = audit_log.insert_entry(
                db,
                guild,
                now=now,
                actor_id=actor_id,
                action=AuditAction.BLOCKLIST_ADD,
                detail=_describe_rule(rule),
            )
            return rule, entry

        rule, entry = await self.db.write(write)
        self._notify(entry)
        return rule

    async def blocklist_remove(
        self, guild_id: int | None, rule: str | int, *, actor_id: int
    ) -> BlockRule:
        """Remove a rule named by id (``12``, ``"#12"``) or exact text; :class:`RuleNotFound`."""
        guild, now = _guild(guild_id), self._clock()
        await self._ensure_seeded(guild)

        def write(db: sqlite_utils.Database) -> tuple[BlockRule, AuditEntry]:
            removed = blocklist_store.delete_rule(db, guild, rule)
            entry = audit_log.insert_entry(
                db,
                guild,
                now=now,
                actor_id=actor_id,
                action=AuditAction.BLOCKLIST_REMOVE,
                detail=_describe_rule(removed),
            )
            return removed, entry

        removed, entry = await self.db.write(write)
        self._notify(entry)
        return removed

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
        guild, now = _guild(guild_id), self._clock()
        action = AuditAction.CHANNEL_ALLOW if allowed else AuditAction.CHANNEL_DENY

        def write(db: sqlite_utils.Database) -> AuditEntry:
            guild_config.set_channel_rule(db, guild, channel_id, allowed=allowed)
            return audit_log.insert_entry(
                db, guild, now=now, actor_id=actor_id, action=action, detail=f"channel {channel_id}"
            )

        self._notify(await self.db.write(write))

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
        guild, now = _guild(guild_id), self._clock()

        def write(db: sqlite_utils.Database) -> AuditEntry:
            guild_config.set_guild_setting(db, guild, name, value)
            return audit_log.insert_entry(
                db, guild, now=now, actor_id=actor_id, action=action, detail=detail
            )

        self._notify(await self.db.write(write))

    async def _setting(self, guild_id: int | None, name: str) -> int | None:
        guild = _guild(guild_id)
        return await self.db.read(lambda db: guild_config.guild_setting(db, guild, name))


def _guild(guild_id: int | None) -> int:
    return DM_GUILD_ID if guild_id is None else guild_id


def _first_hit(blocklist: Blocklist, fields: Sequence[tuple[PromptField, str]]) -> BlockHit | None:
    for field, text in fields:
        if not text:
            continue
        rule = blocklist.first_match(text)
        if rule is not None:
            return BlockHit(rule_id=rule.id, category=rule.category, field=field)
    return None


def _describe_rule(rule: BlockRule) -> str:
    return f"{rule.kind} #{rule.id} ({rule.category}): {rule.pattern}"
