"""Moderation over a real SQLite file: blocklists per server, bans, strikes, channels, audit."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobqueue.db import Database
from jobqueue.moderation import (
    AUTOMATIC_ACTOR_ID,
    MIGRATIONS,
    AuditAction,
    BlockHit,
    InvalidRule,
    Moderation,
    RuleNotFound,
    RuleSpec,
)
from tests.conftest import ManualClock

GUILD = 111
OTHER_GUILD = 222
ADMIN = 900
USER = 500
HOUR = 3600.0


async def test_a_server_gets_the_default_list_on_first_use(moderation: Moderation) -> None:
    hit = await moderation.check_prompts(GUILD, prompt="a nude child")
    assert hit is not None
    assert hit.category == "sexual content involving minors"
    assert hit.field == "prompt"
    assert await moderation.check_prompts(GUILD, prompt="a red balloon") is None


async def test_each_prompt_field_is_checked(moderation: Moderation) -> None:
    fine = "a quiet beach"
    negative = await moderation.check_prompts(GUILD, prompt=fine, negative_prompt="l o l i")
    rewritten = await moderation.check_prompts(
        GUILD, prompt=fine, rewritten_prompt="A lolicon scene."
    )
    assert negative is not None
    assert negative.field == "negative prompt"
    assert rewritten is not None
    assert rewritten.field == "rewritten prompt"


async def test_removed_defaults_stay_removed(moderation: Moderation) -> None:
    rules = await moderation.blocklist_list(GUILD)
    loli = next(rule for rule in rules if rule.pattern == "loli")
    await moderation.blocklist_remove(GUILD, f"#{loli.id}", actor_id=ADMIN)
    await moderation.blocklist_remove(GUILD, "LOLICON", actor_id=ADMIN)
    assert await moderation.check_prompts(GUILD, prompt="loli") is None
    assert len(await moderation.blocklist_list(GUILD)) == len(rules) - 2


async def test_added_rules_apply_at_once_and_only_in_their_server(moderation: Moderation) -> None:
    rule = await moderation.blocklist_add(GUILD, "Wombat", actor_id=ADMIN, category="animals")
    regex = await moderation.blocklist_add(GUILD, r"\bkoala\w*", actor_id=ADMIN, kind="regex")
    hit = await moderation.check_prompts(GUILD, prompt="a w.o.m.b.a.t")
    assert hit == BlockHit(rule.id, "animals", "prompt")
    koalas = await moderation.check_prompts(GUILD, prompt="two KOALAS")
    assert koalas is not None
    assert koalas.rule_id == regex.id
    assert koalas.category == "this server's rules"
    assert await moderation.check_prompts(OTHER_GUILD, prompt="a wombat") is None


async def test_duplicates_and_unknown_rules_are_refused(moderation: Moderation) -> None:
    await moderation.blocklist_add(GUILD, "wombat", actor_id=ADMIN)
    with pytest.raises(InvalidRule, match="already on the blocklist"):
        await moderation.blocklist_add(GUILD, "WOMBAT", actor_id=ADMIN)
    with pytest.raises(RuleNotFound):
        await moderation.blocklist_remove(GUILD, "#99999", actor_id=ADMIN)
    with pytest.raises(InvalidRule, match="too slow"):
        await moderation.blocklist_add(GUILD, "(a+)+$", actor_id=ADMIN, kind="regex")


async def test_another_process_sees_blocklist_changes(
    moderation: Moderation, moderation_db: Database, tmp_path: Path
) -> None:
    worker_db = Database.open(moderation_db.path, [MIGRATIONS])
    try:
        worker = Moderation(worker_db)
        assert await worker.check_prompts(GUILD, prompt="a wombat") is None
        await moderation.blocklist_add(GUILD, "wombat", actor_id=ADMIN)
        assert await worker.check_prompts(GUILD, prompt="a wombat") is not None
    finally:
        worker_db.close()


async def test_a_temporary_ban_expires(moderation: Moderation, clock: ManualClock) -> None:
    ban = await moderation.ban(GUILD, USER, actor_id=ADMIN, duration_s=2 * HOUR, reason="spam")
    assert ban.until == clock.now + 2 * HOUR
    assert await moderation.active_ban(GUILD, USER) == ban
    assert await moderation.active_ban(OTHER_GUILD, USER) is None
    clock.advance(2 * HOUR + 1)
    assert await moderation.active_ban(GUILD, USER) is None


async def test_a_permanent_ban_lasts_until_unbanned(
    moderation: Moderation, clock: ManualClock
) -> None:
    await moderation.ban(GUILD, USER, actor_id=ADMIN, duration_s=None)
    clock.advance(10_000 * HOUR)
    ban = await moderation.active_ban(GUILD, USER)
    assert ban is not None
    assert ban.permanent
    assert await moderation.unban(GUILD, USER, actor_id=ADMIN) == ban
    assert await moderation.active_ban(GUILD, USER) is None
    assert await moderation.unban(GUILD, USER, actor_id=ADMIN) is None


async def test_a_new_ban_replaces_the_old_one(moderation: Moderation, clock: ManualClock) -> None:
    await moderation.ban(GUILD, USER, actor_id=ADMIN, duration_s=None)
    await moderation.ban(GUILD, USER, actor_id=ADMIN, duration_s=HOUR)
    clock.advance(HOUR + 1)
    assert await moderation.active_ban(GUILD, USER) is None


async def test_strikes_within_the_window_become_a_temporary_ban(
    moderation_db: Database, clock: ManualClock
) -> None:
    moderation = Moderation(
        moderation_db, strikes_for_ban=3, strike_window_s=24 * HOUR, strike_ban_s=HOUR, clock=clock
    )
    hit = BlockHit(1, "test", "prompt")
    assert await moderation.record_refusal(GUILD, USER, hit) is None
    clock.advance(23 * HOUR)
    assert await moderation.record_refusal(GUILD, USER, hit) is None
    ban = await moderation.record_refusal(GUILD, USER, hit)
    assert ban is not None
    assert ban.until == clock.now + HOUR
    assert ban.by == AUTOMATIC_ACTOR_ID
    clock.advance(HOUR + 1)
    assert await moderation.active_ban(GUILD, USER) is None
    # The strikes that earned a ban do not count again.
    assert await moderation.record_refusal(GUILD, USER, hit) is None


async def test_old_strikes_fall_out_of_the_window(
    moderation_db: Database, clock: ManualClock
) -> None:
    moderation = Moderation(moderation_db, strikes_for_ban=2, strike_window_s=HOUR, clock=clock)
    hit = BlockHit(1, "test", "prompt")
    await moderation.record_refusal(GUILD, USER, hit)
    clock.advance(HOUR + 1)
    assert await moderation.record_refusal(GUILD, USER, hit) is None


async def test_strike_bans_can_be_turned_off(moderation_db: Database) -> None:
    moderation = Moderation(moderation_db, strikes_for_ban=0, default_rules=())
    for _ in range(5):
        assert await moderation.record_refusal(GUILD, USER, BlockHit(1, "x", "prompt")) is None


async def test_channel_allow_and_deny(moderation: Moderation) -> None:
    assert await moderation.channel_allowed(GUILD, 1)
    assert not await moderation.channel_allowed(GUILD, 1, default_ids=[2])
    await moderation.set_channel_allowed(GUILD, 1, True, actor_id=ADMIN)
    assert await moderation.channel_allowed(GUILD, 1, default_ids=[2])
    assert await moderation.channel_allowed(GUILD, 2, default_ids=[2])
    assert not await moderation.channel_allowed(GUILD, 3)
    await moderation.set_channel_allowed(GUILD, 2, False, actor_id=ADMIN)
    assert not await moderation.channel_allowed(GUILD, 2, default_ids=[2])
    assert await moderation.channel_rules(GUILD) == {1: True, 2: False}


async def test_mod_role_and_log_channel(moderation: Moderation) -> None:
    assert await moderation.mod_role(GUILD) is None
    await moderation.set_mod_role(GUILD, 77, actor_id=ADMIN)
    await moderation.set_mod_log_channel(GUILD, 88, actor_id=ADMIN)
    assert await moderation.mod_role(GUILD) == 77
    assert await moderation.mod_log_channel(GUILD) == 88
    assert await moderation.mod_role(OTHER_GUILD) is None
    await moderation.set_mod_role(GUILD, None, actor_id=ADMIN)
    assert await moderation.mod_role(GUILD) is None


async def test_every_action_is_audited(moderation: Moderation, clock: ManualClock) -> None:
    await moderation.ban(GUILD, USER, actor_id=ADMIN, duration_s=HOUR, reason="spam")
    clock.advance(1)
    await moderation.unban(GUILD, USER, actor_id=ADMIN, reason="appeal")
    await moderation.blocklist_add(GUILD, "wombat", actor_id=ADMIN)
    await moderation.record_refusal(GUILD, USER, BlockHit(3, "animals", "negative prompt"))
    await moderation.audit(
        GUILD, actor_id=ADMIN, action=AuditAction.QUEUE_PAUSE, reason="maintenance"
    )
    entries = await moderation.recent_actions(GUILD)
    assert [entry.action for entry in entries] == [
        "queue_pause",
        "refusal",
        "blocklist_add",
        "unban",
        "ban",
    ]
    ban = entries[-1]
    assert (ban.actor_id, ban.target_user_id, ban.reason) == (ADMIN, USER, "spam")
    assert ban.created_at == clock.now - 1
    refusal = entries[1]
    assert refusal.reason == "blocked negative prompt: animals"
    about_user = await moderation.recent_actions(GUILD, user_id=USER, limit=2)
    assert [entry.action for entry in about_user] == ["refusal", "unban"]
    assert await moderation.recent_actions(OTHER_GUILD) == []


async def test_a_change_that_fails_leaves_no_audit_row(moderation: Moderation) -> None:
    await moderation.blocklist_add(GUILD, "wombat", actor_id=ADMIN)
    with pytest.raises(InvalidRule):
        await moderation.blocklist_add(GUILD, "WOMBAT", actor_id=ADMIN)
    with pytest.raises(RuleNotFound):
        await moderation.blocklist_remove(GUILD, "#99999", actor_id=ADMIN)
    assert await moderation.unban(GUILD, USER, actor_id=ADMIN) is None
    assert [entry.action for entry in await moderation.recent_actions(GUILD)] == ["blocklist_add"]


async def test_direct_messages_have_their_own_state(moderation: Moderation) -> None:
    await moderation.ban(None, USER, actor_id=ADMIN, duration_s=None)
    assert await moderation.active_ban(None, USER) is not None
    assert await moderation.check_prompts(None, prompt="loli") is not None


async def test_defaults_can_be_given_directly(moderation_db: Database) -> None:
    moderation = Moderation(moderation_db, default_rules=[RuleSpec("term", "wombat", "animals")])
    hit = await moderation.check_prompts(GUILD, prompt="a wombat")
    assert hit is not None
    assert hit.category == "animals"
