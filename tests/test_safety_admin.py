"""``/admin safety``: moderators set their server's output safety policy through the real bot
on the fake Discord; every change is audited and reaches the mod-log channel."""

from __future__ import annotations

from bot.cogs.admin import NOT_ALLOWED
from jobqueue.moderation import AuditAction
from jobqueue.safety import IfUnchecked, SafetyMode, SafetyPolicies, SafetyPolicy
from tests.bot_harness import Reel
from tests.fakediscord import FakeDiscord, Message

ANSWER_TIMEOUT_S = 60.0
"""Generous: the fake Discord answers late when the machine is busy."""


async def admin(fake: FakeDiscord, command: str, **options: object) -> Message:
    handle = await fake.invoke(f"admin safety {command}", dict(options), user=fake.carol)
    return await handle.response(timeout=ANSWER_TIMEOUT_S)


async def test_show_says_what_the_check_does_by_default(admin_reel: Reel) -> None:
    fake = admin_reel.fake
    async with admin_reel.bot_running():
        shown = await admin(fake, "show")
    embed = shown.embeds[0]
    assert embed["description"] == (
        "**withhold**: clips the safety check flags are never posted, in any channel;"
        " moderators review them with /admin safety review."
    )
    fields = {field["name"]: field["value"] for field in embed["fields"]}
    assert fields["Thresholds"] == "nudity: 0.50 (default)\nnsfw: 0.70 (default)"
    assert fields["Strikes"] == "not counted"
    assert fields["Clips nobody could check"] == "withhold"
    assert fields["Classifiers"] == "no worker has started yet"


async def test_off_says_plainly_what_it_means_and_is_logged(admin_reel: Reel) -> None:
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running():
        modlog = await fake.invoke("admin modlog set", {"channel": fake.other}, user=fake.carol)
        await modlog.response(timeout=ANSWER_TIMEOUT_S)
        answer = await admin(fake, "mode", mode="off")
        line = await fake.wait_for_message(
            fake.other, lambda m: "safety" in m.content, timeout=ANSWER_TIMEOUT_S
        )
    assert answer.content == (
        "The safety check's mode is off: reelbot does not look at clips in this server:"
        " whatever the model draws is posted, in every channel."
    )
    assert line.content == f"🛡️ <@{fake.carol.id}> changed the output safety check (mode off)."
    assert (await policy_of(reel)).mode is SafetyMode.OFF


async def test_thresholds_strikes_and_unchecked_clips_are_set_per_server(
    admin_reel: Reel,
) -> None:
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running():
        lower = await admin(fake, "threshold", category="Nudity", value=0.3)
        strikes = await admin(fake, "strikes", on=True)
        unchecked = await admin(fake, "unchecked", action="post")
        policy = await policy_of(reel)
        back = await admin(fake, "threshold", category="nudity")
        shown = await admin(fake, "show")
    assert lower.content == "Clips scoring 0.30 or more for nudity are flagged."
    assert strikes.content == "Withheld clips now count as strikes, like refused prompts."
    assert unchecked.content == "Clips the safety check cannot look at are posted (the log warns)."
    assert policy == SafetyPolicy(
        mode=SafetyMode.WITHHOLD,
        thresholds={"nudity": 0.3},
        strikes=True,
        if_unchecked=IfUnchecked.POST,
    )
    assert back.content == "The nudity threshold is back to the classifier's default."
    fields = {field["name"]: field["value"] for field in shown.embeds[0]["fields"]}
    assert fields["Thresholds"] == "nudity: 0.50 (default)\nnsfw: 0.70 (default)"
    assert fields["Strikes"] == "counted"
    actions = [entry.action for entry in await reel.moderation.recent_actions(fake.guild.id)]
    assert actions.count(AuditAction.SAFETY_SET) == 4


async def test_an_unknown_category_is_refused_in_one_sentence(admin_reel: Reel) -> None:
    fake = admin_reel.fake
    async with admin_reel.bot_running():
        answer = await admin(fake, "threshold", category="gore", value=0.5)
    assert answer.content == "No classifier scores 'gore'; the categories are nudity, nsfw."


async def test_nothing_is_withheld_at_first_and_releasing_a_stranger_is_refused(
    admin_reel: Reel,
) -> None:
    fake = admin_reel.fake
    async with admin_reel.bot_running():
        review = await admin(fake, "review")
        release = await admin(fake, "release", job=4242)
        delete = await admin(fake, "delete", job=4242)
    assert review.embeds[0]["description"] == "No clip is withheld."
    assert release.content == delete.content == "There is no clip #4242 in this server."


async def test_only_moderators_may_change_the_policy(admin_reel: Reel) -> None:
    reel, fake = admin_reel, admin_reel.fake
    async with reel.bot_running():
        handle = await fake.invoke(
            "admin safety mode", {"mode": "off"}, user=fake.bob, skip_permission_check=True
        )
        answer = await handle.response(timeout=ANSWER_TIMEOUT_S)
    assert answer.content == NOT_ALLOWED
    assert (await policy_of(reel)).mode is SafetyMode.WITHHOLD


async def policy_of(reel: Reel) -> SafetyPolicy:
    policies = SafetyPolicies(reel.queue.db, reel.settings.safety_policy())
    return await policies.policy(reel.fake.guild.id)
