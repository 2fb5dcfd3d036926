"""Nothing a user types can ping anyone: not the ack, the status message, the clip or a DM."""

from __future__ import annotations

from tests.bot_harness import Reel


async def test_a_prompt_full_of_mentions_pings_nobody(running_reel: Reel) -> None:
    fake = running_reel.fake
    role = fake.role("Moderators")
    prompt = f"@everyone @here {role.mention} {fake.bob.mention} dancing"
    handle, job = await running_reel.create(prompt, negative=f"{fake.carol.mention} @everyone")
    clip = await running_reel.clip_message(job.id)
    await running_reel.delivered(job.id)
    await fake.react(clip, "✉️", user=fake.alice)
    await fake.wait_for(lambda: fake.dms(fake.alice))

    seen = [
        *fake.channel_messages(fake.general, viewer=fake.alice),
        *(fake.message(m.id) for m in fake.dms(fake.alice)),
    ]
    assert handle.original in seen
    for message in seen:
        assert fake.notified_users(message) == set(), message.content
    shown = [m for m in seen if "dancing" in m.content or "dancing" in str(m.embeds)]
    assert len(shown) >= 2  # the clip and the DM (and the status message if it was posted)
    for message in shown:
        text = message.content + str(message.embeds)
        assert "@everyone" not in text
        assert fake.bob.mention not in text
