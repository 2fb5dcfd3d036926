"""The audit log: every action and refusal is stored, shown by /admin log, and posted to the
mod-log channel without pinging anyone, whichever process wrote it, each row once, also across
restarts of the bot."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

import pytest

from bot import modlog
from bot.client import CLIP_RESERVE, ReelBot
from bot.cogs.admin import NOT_ALLOWED
from bot.modlog import ModLog
from jobqueue.db import Database
from jobqueue.moderation import AuditAction, BlockHit, Moderation
from tests.bot_harness import Reel
from tests.fakediscord import FakeDiscord, Message

LINE_TIMEOUT_S = 60.0
"""Generous: lines wait for the channel's budget (three every five seconds), on a busy machine."""

BLOCK_A_REWRITE = """
import asyncio, sys
from pathlib import Path
from jobqueue.db import Database
from jobqueue.moderation import Moderation

async def block_rewrite(path, guild_id, user_id, job_id):
    database = Database(Path(path))
    try:
        moderation = Moderation(database)
        hit = await moderation.check_prompts(
            guild_id, prompt="a quiet field", rewritten_prompt="a wombat in a quiet field"
        )
        await moderation.record_rewrite_block(guild_id, user_id, hit, job_id=job_id)
    finally:
        database.close()

asyncio.run(block_rewrite(sys.argv[1], *map(int, sys.argv[2:])))
"""
"""What a GPU worker or scene writer does when a rewritten prompt is blocked, in its own process."""


async def admin(fake: FakeDiscord, command: str, **options: object) -> Message:
    handle = await fake.invoke(f"admin {command}", dict(options), user=fake.carol)
    return await handle.response(timeout=LINE_TIMEOUT_S)


def log_lines(fake: FakeDiscord) -> list[Message]:
    return fake.channel_messages(fake.other)


async def caught_up(bot: ReelBot) -> None:
    """Until the mod-log has handled every audit row written so far."""
    # Extensions load as fresh modules: the cog's class is not bot.cogs.admin.Admin here.
    mod_log = getattr(bot.get_cog("Admin"), "mod_log", None)
    assert isinstance(mod_log, ModLog)
    await asyncio.wait_for(mod_log.caught_up(), LINE_TIMEOUT_S)


@pytest.fixture
def other_process(admin_reel: Reel) -> Iterator[Moderation]:
    """Moderation as another process (a GPU worker, a scene writer) has it: its own
    connections to the bot's database file."""
    database = Database(admin_reel.settings.database_path)
    try:
        yield Moderation(database)
    finally:
        database.close()


def blocked_rewrite() -> BlockHit:
    return BlockHit(rule_id=1, category="animals", field="rewritten prompt")


async def test_actions_and_refusals_reach_the_mod_log_without_pings(admin_reel: Reel) -> None:
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running():
        await admin(fake, "modlog set", channel=fake.other)
        await admin(fake, "ban", user=fake.bob, duration="2h", reason="@everyone spam <@&1>")
        await admin(fake, "blocklist add", term="wombat", category="animals")
        await fake.invoke("create", {"prompt": "a wombat"}, user=fake.alice)
        await fake.invoke("admin queue pause", {}, user=fake.bob, skip_permission_check=True)
        lines = await fake.wait_for(
            lambda: len(log_lines(fake)) >= 5 and log_lines(fake), timeout=LINE_TIMEOUT_S
        )

    texts = [line.content for line in lines]
    carol, bob, alice = (f"<@{user.id}>" for user in (fake.carol, fake.bob, fake.alice))
    assert texts[0] == f"📜 {carol} set the mod-log channel (<#{fake.other.id}>)."
    assert texts[1].startswith(f"🔨 {carol} banned {bob} (for 2h): ")
    assert "@\u200beveryone" in texts[1]  # shown, but broken so it cannot ping
    assert texts[2].startswith(f"📝 {carol} added a blocklist rule (term #")
    # The refusal and the denied attempt are posted as they happen, in either order.
    refusal = next(text for text in texts[3:] if text.startswith("🚫"))
    assert refusal.startswith(f"🚫 A prompt by {alice} was refused (rule #")
    assert refusal.endswith("): blocked prompt: animals.")
    denied = next(text for text in texts[3:] if text.startswith("⚠️"))
    assert denied == (f"⚠️ {bob} tried an admin command without the rights to (/admin queue pause).")
    for line in lines:
        assert line.pings.nobody
        assert fake.notified_users(line) == set()


async def test_the_configured_channel_is_the_default(admin_reel: Reel) -> None:
    reel, fake = admin_reel, admin_reel.fake
    reel.settings = reel.settings.model_copy(update={"mod_log_channel_id": fake.other.id})
    async with reel.bot_running():
        await admin(fake, "ban", user=fake.bob)
        line = await fake.wait_for_message(
            fake.other, lambda m: "banned" in m.content, timeout=LINE_TIMEOUT_S
        )
    assert line.content == f"🔨 <@{fake.carol.id}> banned <@{fake.bob.id}> (for permanent)."


async def test_without_a_channel_nothing_is_posted_but_all_is_logged(admin_reel: Reel) -> None:
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running() as bot:
        await admin(fake, "ban", user=fake.bob, duration="1d", reason="flooding")
        await admin(fake, "unban", user=fake.bob, reason="appealed")
        await admin(fake, "queue pause")
        await caught_up(bot)
        everything = await admin(fake, "log")
        about_bob = await admin(fake, "log", user=fake.bob)
    assert log_lines(fake) == []
    lines = everything.embeds[0]["description"].splitlines()
    assert len(lines) == 3
    assert "paused the queue" in lines[0]
    assert "unbanned" in lines[1]
    assert lines[1].endswith(": appealed.")
    assert lines[2].startswith("<t:")
    assert "banned" in lines[2]
    bob_lines = about_bob.embeds[0]["description"].splitlines()
    assert bob_lines[0] == f"<@{fake.bob.id}>"
    assert len(bob_lines) == 3


async def test_long_logs_are_paged(admin_reel: Reel) -> None:
    reel, fake = admin_reel, admin_reel.fake
    for number in range(40):
        await reel.moderation.audit(
            fake.guild.id,
            actor_id=fake.carol.id,
            action=AuditAction.QUEUE_CLEAR,
            reason=f"n{number}",
        )
    async with reel.bot_running():
        first = (await admin(fake, "log")).embeds[0]
        third = (await admin(fake, "log", page=3)).embeds[0]
        beyond = (await admin(fake, "log", page=9)).embeds[0]
    assert first["footer"]["text"] == "Page 1 of 3 · 40 in all · next: /admin log page:2"
    assert "n39" in first["description"]
    assert third["footer"]["text"] == "Page 3 of 3 · 40 in all"
    assert third["description"].count("\n") == 9
    assert beyond["footer"] == third["footer"]


async def test_the_default_blocklist_is_listed_in_pages(admin_reel: Reel) -> None:
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running():
        first = (await admin(fake, "blocklist list")).embeds[0]
        second = (await admin(fake, "blocklist list", page=2)).embeds[0]
    assert first["title"] == "Blocklist"
    assert first["description"].startswith("`#1` term · sexual content involving minors · default")
    assert "Page 2 of 2" in second["footer"]["text"]
    assert "…" in second["description"]  # long generated patterns are cut


async def test_a_refused_admin_call_never_reveals_anything(admin_reel: Reel) -> None:
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running():
        handle = await fake.invoke("admin log", {}, user=fake.bob, skip_permission_check=True)
        answer = await handle.response()
    assert answer.content == NOT_ALLOWED
    assert answer.embeds == []


async def test_a_rewrite_blocked_in_a_worker_process_reaches_the_mod_log_once(
    admin_reel: Reel,
) -> None:
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running() as bot:
        await admin(fake, "modlog set", channel=fake.other)
        await admin(fake, "blocklist add", term="wombat", category="animals")
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            BLOCK_A_REWRITE,
            str(reel.settings.database_path),
            str(fake.guild.id),
            str(fake.alice.id),
            "31",
        )
        assert await asyncio.wait_for(worker.wait(), LINE_TIMEOUT_S) == 0
        await admin(fake, "queue pause")  # a later row: the rewrite's line is not repeated
        await fake.wait_for(
            lambda: any("paused" in line.content for line in log_lines(fake)),
            timeout=LINE_TIMEOUT_S,
        )
        await caught_up(bot)

    rule = next(
        r for r in await reel.moderation.blocklist_list(fake.guild.id) if r.pattern == "wombat"
    )
    blocked = [line.content for line in log_lines(fake) if line.content.startswith("🚫")]
    assert blocked == [
        f"🚫 The rewritten prompt of job #31 by <@{fake.alice.id}> was blocked (rule #{rule.id}):"
        " blocked rewritten prompt: animals."
    ]
    assert len(log_lines(fake)) == 4


async def test_a_restart_posts_nothing_twice_and_what_came_meanwhile_once(
    admin_reel: Reel, other_process: Moderation
) -> None:
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running() as bot:
        await admin(fake, "modlog set", channel=fake.other)
        await admin(fake, "ban", user=fake.bob, reason="spam")
        await caught_up(bot)
    await other_process.record_rewrite_block(
        fake.guild.id, fake.alice.id, blocked_rewrite(), job_id=12
    )
    async with reel.bot_running() as bot:
        await caught_up(bot)
        await other_process.record_rewrite_block(
            fake.guild.id, fake.alice.id, blocked_rewrite(), job_id=13
        )
        await caught_up(bot)
    async with reel.bot_running() as bot:
        await caught_up(bot)

    texts = [line.content for line in log_lines(fake)]
    assert len(texts) == 4
    assert texts[0].startswith("📜")
    assert texts[1].startswith(f"🔨 <@{fake.carol.id}> banned <@{fake.bob.id}>")
    assert texts[2].startswith(f"🚫 The rewritten prompt of job #12 by <@{fake.alice.id}>")
    assert texts[3].startswith(f"🚫 The rewritten prompt of job #13 by <@{fake.alice.id}>")


async def test_lines_waiting_for_the_channel_when_the_bot_stops_are_posted_once_after(
    admin_reel: Reel, other_process: Moderation
) -> None:
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running():
        await admin(fake, "modlog set", channel=fake.other)
        for number in range(6):
            await other_process.audit(
                fake.guild.id, actor_id=0, action=AuditAction.QUEUE_CLEAR, reason=f"n{number}"
            )
        # Three lines fit the channel's budget at once; the rest wait when the bot stops.
        await fake.wait_for(lambda: len(log_lines(fake)) >= 3, timeout=LINE_TIMEOUT_S)
    async with reel.bot_running() as bot:
        await caught_up(bot)
    reasons = [line.content.rsplit(": ", 1)[-1] for line in log_lines(fake)[1:]]
    assert reasons == [f"n{number}." for number in range(6)]


async def test_a_long_backlog_is_cut_to_the_newest_lines_and_a_count(
    admin_reel: Reel, other_process: Moderation, monkeypatch: pytest.MonkeyPatch
) -> None:
    reel, fake = admin_reel, admin_reel.fake
    monkeypatch.setattr(modlog, "CATCH_UP_LINES", 2)
    async with reel.bot_running() as bot:
        await admin(fake, "modlog set", channel=fake.other)
        await caught_up(bot)
    for number in range(5):
        await other_process.audit(
            fake.guild.id,
            actor_id=fake.carol.id,
            action=AuditAction.QUEUE_CLEAR,
            reason=f"n{number}",
        )
    await other_process.audit(  # another server's backlog counts only there
        fake.guild.id + 1, actor_id=fake.carol.id, action=AuditAction.QUEUE_CLEAR
    )
    async with reel.bot_running() as bot:
        await caught_up(bot)

    texts = [line.content for line in log_lines(fake)]
    cleared = f"🧹 <@{fake.carol.id}> cleared the queue"
    assert texts[1:] == [
        f"📚 3 older entries from while reelbot was offline: see /admin log.\n{cleared}: n3.",
        f"{cleared}: n4.",
    ]
    assert len(await reel.moderation.recent_actions(fake.guild.id)) == 6  # all in /admin log


async def test_rows_from_before_the_bot_first_followed_the_log_are_not_posted(
    admin_reel: Reel,
) -> None:
    reel, fake = admin_reel, admin_reel.fake
    await reel.moderation.set_mod_log_channel(fake.guild.id, fake.other.id, actor_id=fake.carol.id)
    await reel.moderation.ban(fake.guild.id, fake.bob.id, actor_id=fake.carol.id, duration_s=None)
    async with reel.bot_running() as bot:
        await caught_up(bot)
        await admin(fake, "unban", user=fake.bob)
        await caught_up(bot)
    assert [line.content for line in log_lines(fake)] == [
        f"🕊️ <@{fake.carol.id}> unbanned <@{fake.bob.id}> (ban #1 lifted)."
    ]


async def test_lines_leave_the_slots_kept_for_clips_free(
    admin_reel: Reel, other_process: Moderation
) -> None:
    reel, fake = admin_reel, admin_reel.fake
    settings = reel.settings
    async with reel.bot_running() as bot:
        await admin(fake, "modlog set", channel=fake.other)
        for number in range(6):
            await other_process.audit(
                fake.guild.id, actor_id=0, action=AuditAction.QUEUE_CLEAR, reason=f"n{number}"
            )
        await caught_up(bot)
    posted = [line.created_at for line in log_lines(fake)]
    assert len(posted) == 7
    most_in_a_window = max(
        sum(1 for at in posted if start <= at < start + settings.channel_window_seconds)
        for start in posted
    )
    assert most_in_a_window <= settings.channel_sends_per_window - CLIP_RESERVE
