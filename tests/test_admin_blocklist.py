"""Blocked prompts end to end: refusals name the category, count strikes, and bans expire."""

from __future__ import annotations

from dataclasses import replace

import pytest

from jobqueue.moderation import AuditAction
from jobqueue.worker import Worker
from pipeline.rewrite import RewriterConfig
from tests.bot_harness import Reel, worker_config
from tests.conftest import ChatReply, FakeChatServer, ManualClock, default_scene
from tests.fakediscord import FakeDiscord, User

MINORS = "sexual content involving minors"
HOUR = 3600.0


async def create(fake: FakeDiscord, user: User, prompt: str, **options: str) -> str:
    """What /create privately answers ``user``."""
    handle = await fake.invoke("create", {"prompt": prompt, **options}, user=user)
    answer = await handle.response()
    assert handle.ephemeral
    return answer.content


async def admin(fake: FakeDiscord, command: str, **options: object) -> str:
    handle = await fake.invoke(f"admin {command}", dict(options), user=fake.carol)
    return (await handle.response()).content


async def test_a_blocked_prompt_is_refused_by_category_and_audited(admin_reel: Reel) -> None:
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running():
        answer = await create(fake, fake.alice, "a sexy 12yo on a beach")
    assert answer == f"Your prompt was refused: it matches blocked content ({MINORS})."
    assert await reel.queue.user_jobs(fake.alice.id) == []
    (refusal,) = await reel.moderation.recent_actions(fake.guild.id)
    assert refusal.action == AuditAction.REFUSAL
    assert (refusal.actor_id, refusal.target_user_id) == (fake.alice.id, fake.alice.id)
    assert refusal.reason == f"blocked prompt: {MINORS}"


async def test_a_blocked_negative_prompt_is_refused(admin_reel: Reel) -> None:
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running():
        await admin(fake, "blocklist add", term="wombat", category="animals")
        answer = await create(fake, fake.alice, "a quiet forest", negative="w o m b a t s, wombat")
    assert answer == "Your negative prompt was refused: it matches blocked content (animals)."


@pytest.mark.parametrize(
    "disguised",
    [
        "a WOMBAT",  # case
        "a wómbàt",  # accents
        "a wоmbаt",  # Cyrillic о and а
        "a ｗｏｍｂａｔ",  # fullwidth
        "a 𝔀𝓸𝓶𝓫𝓪𝓽",  # mathematical script
        "a wom\u200bbat",  # zero-width space
        "a w\u200do\u2060m\ufeffbat",  # joiners and a BOM
        "a \u202ewombat\u202c",  # bidi override
        "a w o m b a t",  # spaced out
        "a w.o.m.b.a.t",  # punctuation
        "a w-o-m-b-a-t",
        "a wom.bat",
        "a w0mb4t",  # leetspeak
        "a wommmbat",  # repeated letters
    ],
)
async def test_unicode_tricks_do_not_get_past_the_blocklist(
    admin_reel: Reel, disguised: str
) -> None:
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running():
        await admin(fake, "blocklist add", term="wombat", category="animals")
        answer = await create(fake, fake.alice, disguised)
    assert "refused" in answer
    assert "(animals)" in answer


async def test_innocent_prompts_pass_the_default_list(admin_reel: Reel) -> None:
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running():
        for prompt in ("a class photo of a school choir", "kids flying kites in a park"):
            assert "Queued" in await create(fake, fake.alice, prompt), prompt


async def test_regex_rules_and_removal(admin_reel: Reel) -> None:
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running():
        added = await admin(fake, "blocklist add", term=r"\bzorb\w*", regex=True, category="zorbs")
        assert added.startswith("Added regex #")
        assert "(zorbs)" in await create(fake, fake.alice, "ZORBING down a hill")
        rule_id = added.split("#")[1].split()[0]
        assert "Removed regex" in await admin(fake, "blocklist remove", term=f"#{rule_id}")
        assert "Queued" in await create(fake, fake.bob, "zorbing down a hill")
        refused = await admin(fake, "blocklist add", term="(a+)+$", regex=True)
    assert refused.startswith("That regular expression is too slow")


async def test_strikes_become_a_ban_that_expires(admin_reel: Reel, clock: ManualClock) -> None:
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running():
        await admin(fake, "blocklist add", term="wombat", category="animals")
        for _ in range(2):
            assert "refused" in await create(fake, fake.alice, "a wombat")
        third = await create(fake, fake.alice, "a wombat")
        assert "You are banned from making clips on this server until <t:" in third
        banned = await create(fake, fake.alice, "a red balloon")
        assert banned.startswith("You are banned from making clips on this server until <t:")
        clock.advance(24 * HOUR + 1)
        assert "Queued" in await create(fake, fake.alice, "a red balloon")
    actions = [entry.action for entry in await reel.moderation.recent_actions(fake.guild.id)]
    assert actions.count(AuditAction.REFUSAL) == 3
    assert AuditAction.STRIKE_BAN in actions


async def test_a_moderators_ban_expires_and_unban_lifts_one(
    admin_reel: Reel, clock: ManualClock
) -> None:
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running():
        answer = await admin(fake, "ban", user=fake.alice, duration="30m", reason="spamming")
        assert answer.startswith(f"<@{fake.alice.id}> is banned from making clips until <t:")
        assert "banned" in await create(fake, fake.alice, "a red balloon")
        clock.advance(31 * 60)
        assert "Queued" in await create(fake, fake.alice, "a red balloon")

        await admin(fake, "ban", user=fake.bob)
        clock.advance(1000 * HOUR)
        assert await create(fake, fake.bob, "a boat") == (
            "You are banned from making clips on this server."
        )
        assert "may make clips again" in await admin(fake, "unban", user=fake.bob)
        assert "Queued" in await create(fake, fake.bob, "a boat")
        assert "not a duration" in await admin(fake, "ban", user=fake.bob, duration="soon")


async def test_a_blocked_rewrite_is_dropped_and_logged(
    admin_reel: Reel, chat_server: FakeChatServer
) -> None:
    reel, fake = admin_reel, admin_reel.fake
    config = replace(
        worker_config(reel.settings),
        rewriter=RewriterConfig(
            backend="openai", openai_base_url=chat_server.base_url, openai_model="scene-writer"
        ),
    )
    prompt = "a paper boat on a river"
    chat_server.script(ChatReply(content=default_scene(prompt) + " A wombat watches."))
    async with reel.bot_running():
        await admin(fake, "blocklist add", term="wombat", category="animals")
        assert "Queued" in await create(fake, fake.alice, prompt)
        await Worker(reel.settings.database_path, config=config, worker_id="w").run(burst=True)
        jobs = await reel.queue.user_jobs(fake.alice.id, active_only=False)
        clip = await reel.clip_message(jobs[0].id)
    field_names = {field["name"] for field in clip.embeds[0].get("fields", [])}
    assert "Rewritten prompt" not in field_names
    actions = await reel.moderation.recent_actions(fake.guild.id, user_id=fake.alice.id)
    assert [entry.action for entry in actions] == [AuditAction.REWRITE_BLOCKED]
