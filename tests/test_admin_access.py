"""/admin: every subcommand works for managers, administrators and moderators, and nobody else.

Discord hides /admin from members without Manage Server, but a server can grant it to anyone
and an interaction's member fields can be forged; the bot checks each call against the member
as the API reports them, refuses everyone else with a sentence and audits the attempt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from bot.cogs.admin import NOT_ALLOWED
from bot.replies import SOMETHING_WRONG
from jobqueue.models import JobKind, JobRequest, JobStatus
from jobqueue.moderation import AuditAction
from tests.bot_harness import Reel
from tests.fakediscord import CommandNotVisible, FakeDiscord, User

MANAGE_GUILD = 1 << 5
ADMINISTRATOR = 1 << 3


@dataclass(frozen=True)
class Call:
    command: str
    options: Callable[[FakeDiscord, dict[str, int]], dict[str, Any]]
    expect: str
    """A fragment of a successful answer (its content, or its embed's title)."""


def no_options(fake: FakeDiscord, jobs: dict[str, int]) -> dict[str, Any]:
    return {}


CALLS = [
    Call("admin stats", no_options, "reelbot statistics"),
    Call("admin ban", lambda f, j: {"user": f.bob, "duration": "2h", "reason": "spam"}, "banned"),
    Call("admin unban", lambda f, j: {"user": f.bob}, "may make clips again"),
    Call(
        "admin blocklist add",
        lambda f, j: {"term": "wombat", "category": "animals"},
        "Added term",
    ),
    Call("admin blocklist list", lambda f, j: {"page": 2}, "Blocklist"),
    Call("admin blocklist remove", lambda f, j: {"term": "wombat"}, "Removed term"),
    Call(
        "admin limits set", lambda f, j: {"user": f.user("erin"), "waiting": 2}, "2 clips waiting"
    ),
    Call("admin queue pause", no_options, "paused"),
    Call("admin queue resume", no_options, "running again"),
    Call("admin cancel", lambda f, j: {"job": j["cancel"]}, "Cancelled job"),
    Call("admin delete", lambda f, j: {"job": j["delete"]}, "Deleted job"),
    Call("admin queue clear", lambda f, j: {"user": f.user("erin")}, "Cancelled 1 waiting clip"),
    Call("admin channels allow", lambda f, j: {"channel": f.general}, "may be made in"),
    Call("admin channels deny", lambda f, j: {"channel": f.other}, "no longer be made"),
    Call("admin gallery allow", lambda f, j: {"channel": f.general}, "shown in the web gallery"),
    Call("admin gallery deny", lambda f, j: {"channel": f.general}, "no longer shown"),
    Call("admin modrole set", lambda f, j: {"role": f.role("Moderators")}, "moderators now"),
    Call("admin modlog set", lambda f, j: {"channel": f.other}, "logged in"),
    Call("admin log", no_options, "Moderation log"),
]

CHANGES = {
    "admin ban": AuditAction.BAN,
    "admin unban": AuditAction.UNBAN,
    "admin blocklist add": AuditAction.BLOCKLIST_ADD,
    "admin blocklist remove": AuditAction.BLOCKLIST_REMOVE,
    "admin limits set": AuditAction.LIMITS_SET,
    "admin queue pause": AuditAction.QUEUE_PAUSE,
    "admin queue resume": AuditAction.QUEUE_RESUME,
    "admin queue clear": AuditAction.QUEUE_CLEAR,
    "admin cancel": AuditAction.JOB_CANCEL,
    "admin delete": AuditAction.JOB_DELETE,
    "admin channels allow": AuditAction.CHANNEL_ALLOW,
    "admin channels deny": AuditAction.CHANNEL_DENY,
    "admin gallery allow": AuditAction.GALLERY_ALLOW,
    "admin gallery deny": AuditAction.GALLERY_DENY,
    "admin modrole set": AuditAction.MOD_ROLE_SET,
    "admin modlog set": AuditAction.MOD_LOG_SET,
}


async def queue_jobs(reel: Reel) -> dict[str, int]:
    """Waiting jobs in the test server for /admin cancel, delete and queue clear."""
    fake, jobs = reel.fake, {}
    for name, owner in (
        ("cancel", fake.alice),
        ("delete", fake.alice),
        ("clear", fake.user("erin")),
    ):
        job = await reel.queue.submit(
            JobKind.CREATE,
            JobRequest(prompt=f"a {name} test"),
            user_id=owner.id,
            guild_id=fake.guild.id,
            channel_id=fake.general.id,
        )
        jobs[name] = job.id
    return jobs


async def answer(fake: FakeDiscord, call: Call, user: User, jobs: dict[str, int], **kw: Any) -> str:
    handle = await fake.invoke(
        call.command, call.options(fake, jobs), user=user, skip_permission_check=True, **kw
    )
    message = await handle.response()
    assert handle.ephemeral, call.command
    return message.content or message.embeds[0]["title"]


@pytest.mark.parametrize("actor", ["carol", "admin", "owner", "dave"])
async def test_every_subcommand_works_for_managers_and_moderators(
    admin_reel: Reel, actor: str
) -> None:
    """carol has Manage Server, admin is Administrator, owner owns the server, dave moderates."""
    reel, fake = admin_reel, admin_reel.fake
    user = fake.user(actor)
    async with reel.bot_running():
        await reel.moderation.set_mod_role(
            fake.guild.id, fake.role("Moderators").id, actor_id=fake.carol.id
        )
        jobs = await queue_jobs(reel)
        for call in CALLS:
            assert call.expect in await answer(fake, call, user, jobs), call.command

    entries = await reel.moderation.recent_actions(fake.guild.id, limit=100)
    done_by_actor = {entry.action for entry in entries if entry.actor_id == user.id}
    assert done_by_actor == set(CHANGES.values())
    cancelled = await reel.queue.get(jobs["cancel"])
    assert cancelled is not None
    assert cancelled.status is JobStatus.CANCELLED


@pytest.mark.parametrize("forged", [None, {"permissions": str(ADMINISTRATOR | MANAGE_GUILD)}])
async def test_everyone_else_is_refused_and_audited(
    admin_reel: Reel, forged: dict[str, Any] | None
) -> None:
    """bob has no rights; with ``forged`` his interactions claim Administrator as well."""
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running():
        jobs = await queue_jobs(reel)
        for call in CALLS:
            refusal = await answer(fake, call, fake.bob, jobs, forge_member=forged)
            assert refusal == NOT_ALLOWED, call.command

    moderation, guild = reel.moderation, fake.guild.id
    entries = await moderation.recent_actions(guild, limit=100)
    assert [entry.action for entry in entries] == [AuditAction.DENIED] * len(CALLS)
    assert {entry.detail for entry in entries} == {f"/{call.command}" for call in CALLS}
    assert {entry.actor_id for entry in entries} == {fake.bob.id}
    # Nothing changed.
    assert await moderation.active_ban(guild, fake.bob.id) is None
    assert await moderation.mod_role(guild) is None
    assert not await reel.queue.is_paused()
    for job_id in jobs.values():
        job = await reel.queue.get(job_id)
        assert job is not None
        assert job.status is JobStatus.QUEUED


async def test_answers_and_refusals_replace_a_private_thinking_message(
    admin_reel: Reel, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """/admin acknowledges before asking Discord who the caller is; whatever comes after (a
    refusal of the caller, a request that cannot be done, a failure) still reaches them."""
    reel, fake = admin_reel, admin_reel.fake

    async def broken(*args: object) -> None:
        raise RuntimeError("the database broke")

    async with reel.bot_running():
        calls = [
            fake.invoke("admin queue pause", {}, user=fake.bob, skip_permission_check=True),
            fake.invoke("admin unban", {"user": fake.alice}, user=fake.carol),
        ]
        handles = [await call for call in calls]
        answers = [(await handle.response()).content for handle in handles]
        monkeypatch.setattr(reel.queue, "stats", broken)
        handles.append(await fake.invoke("admin stats", {}, user=fake.carol))
        # Only the moderator role is left to ask about bob, and it cannot be read.
        monkeypatch.setattr(reel.moderation, "mod_role", broken)
        handles.append(
            await fake.invoke("admin stats", {}, user=fake.bob, skip_permission_check=True)
        )
        answers += [(await handle.response()).content for handle in handles[2:]]

    assert answers == [
        NOT_ALLOWED,
        f"<@{fake.alice.id}> is not banned.",
        SOMETHING_WRONG,
        SOMETHING_WRONG,
    ]
    for handle in handles:
        assert handle.deferred
        assert handle.ephemeral
    logged = [record.exc_info for record in caplog.records if record.exc_info]
    assert len(logged) == 2
    assert all("the database broke" in repr(exc_info[1]) for exc_info in logged)


async def test_a_forged_moderator_role_is_refused(admin_reel: Reel) -> None:
    reel, fake = admin_reel, admin_reel.fake
    moderators = fake.role("Moderators")
    async with reel.bot_running():
        await reel.moderation.set_mod_role(fake.guild.id, moderators.id, actor_id=fake.carol.id)
        handle = await fake.invoke(
            "admin queue pause",
            {},
            user=fake.bob,
            skip_permission_check=True,
            forge_member={"roles": [str(moderators.id)]},
        )
        assert (await handle.response()).content == NOT_ALLOWED
    assert not await reel.queue.is_paused()


async def test_discord_offers_admin_only_to_managers(admin_reel: Reel) -> None:
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running():
        (admin,) = [c for c in fake.registered_commands(fake.guild) if c["name"] == "admin"]
        assert int(admin["default_member_permissions"]) == MANAGE_GUILD
        assert admin["contexts"] == [0]  # guild channels only
        with pytest.raises(CommandNotVisible):
            await fake.invoke("admin stats", {}, user=fake.bob)
