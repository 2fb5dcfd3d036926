"""Under load and through gateway trouble every interaction is answered in time, once."""

from __future__ import annotations

import asyncio

from jobqueue.models import JobKind, JobRequest
from tests.bot_harness import JOB_NUMBER, Reel
from tests.fakediscord import InteractionHandle

USERS = 20


async def fill_queue(reel: Reel, jobs: int) -> None:
    await reel.queue.set_limits(user_id=None, waiting=jobs, running=None, daily=None)
    for index in range(jobs):
        await reel.queue.submit(
            JobKind.CREATE,
            JobRequest(prompt=f"queued clip {index}", frames=81, steps=20),
            user_id=10_000 + index,
            guild_id=reel.fake.guild.id,
            channel_id=reel.fake.general.id,
        )


async def test_every_create_is_acknowledged_in_time_with_100_queued_and_the_worker_busy(
    reel: Reel,
) -> None:
    fake = reel.fake
    await fill_queue(reel, 100)
    users = [fake.add_member(f"user{index}") for index in range(USERS)]
    async with reel.worker_running(), reel.bot_running():
        handles = await asyncio.gather(
            *(fake.invoke("create", {"prompt": f"clip of {u.name}"}, user=u) for u in users)
        )
        answers = await asyncio.gather(*(handle.response(timeout=30) for handle in handles))
    assert all(handle.acked and not handle.rejections for handle in handles)
    assert all(answer.content.startswith("Queued your clip #") for answer in answers)


async def test_a_gateway_reconnect_loses_no_interaction(running_reel: Reel) -> None:
    fake = running_reel.fake
    reconnect = asyncio.create_task(fake.force_reconnect())
    during: list[InteractionHandle] = []
    while not reconnect.done():
        user = fake.add_member(f"during{len(during)}")
        during.append(await fake.invoke("create", {"prompt": "a clip"}, user=user))
        await asyncio.sleep(0)
    await reconnect
    assert during, "no interaction was sent while the gateway reconnected"
    after = await fake.invoke("create", {"prompt": "after"}, user=fake.alice)
    handles = [*during, after]
    answers = [await handle.response(timeout=10) for handle in handles]
    # Each private reply names its job (kept current, it may already say the clip is made).
    assert all(JOB_NUMBER.search(answer.content) for answer in answers)
    assert not any(handle.rejections for handle in handles)
    stats = await running_reel.queue.stats()
    assert stats.waiting + stats.running + stats.done_today == len(handles)
