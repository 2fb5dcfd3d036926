"""The audit log: every action and refusal is stored, shown by /admin log, and posted to the
mod-log channel without pinging anyone."""

from __future__ import annotations

from bot.cogs.admin import NOT_ALLOWED
from jobqueue.moderation import AuditAction
from tests.bot_harness import Reel
from tests.fakediscord import FakeDiscord, Message


async def admin(fake: FakeDiscord, command: str, **options: object) -> Message:
    handle = await fake.invoke(f"admin {command}", dict(options), user=fake.carol)
    return await handle.response()


def log_lines(fake: FakeDiscord) -> list[Message]:
    return fake.channel_messages(fake.other)


async def test_actions_and_refusals_reach_the_mod_log_without_pings(admin_reel: Reel) -> None:
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running():
        await admin(fake, "modlog set", channel=fake.other)
        await admin(fake, "ban", user=fake.bob, duration="2h", reason="@everyone spam <@&1>")
        await admin(fake, "blocklist add", term="wombat", category="animals")
        await fake.invoke("create", {"prompt": "a wombat"}, user=fake.alice)
        await fake.invoke("admin queue pause", {}, user=fake.bob, skip_permission_check=True)
        lines = await fake.wait_for(lambda: len(log_lines(fake)) >= 5 and log_lines(fake))

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
        line = await fake.wait_for_message(fake.other, lambda m: "banned" in m.content)
    assert line.content == f"🔨 <@{fake.carol.id}> banned <@{fake.bob.id}> (for permanent)."


async def test_without_a_channel_nothing_is_posted_but_all_is_logged(admin_reel: Reel) -> None:
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running():
        await admin(fake, "ban", user=fake.bob, duration="1d", reason="flooding")
        await admin(fake, "unban", user=fake.bob, reason="appealed")
        await admin(fake, "queue pause")
        await reel.moderation.wait_for_listeners()
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
