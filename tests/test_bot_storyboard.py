"""/storyboard through the real bot against the fake Discord, with the tiny models: the plan is
posted with Shoot and Edit plan, only its owner may use them, Edit plan changes a shot, Shoot
makes a thread with the joined film (about as long as its shots), Reshoot 2 re-renders from
shot 2 on and posts the new film in the thread. Planning uses no language model here
(``rewriter`` off), so the plan is the simple one with its sentence: the same every run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

import discord
import pytest

from jobqueue.models import JobKind
from jobqueue.storyboards import Storyboard, Storyboards
from pipeline.rewrite import rewriter
from tests.bot_harness import CLIP_TIMEOUT_S, Reel
from tests.broker_harness import BOTH_MODES
from tests.conftest import ChatReply, FakeChatServer
from tests.fakediscord import Channel, Message, User
from tests.mp4probe import probe_mp4

if TYPE_CHECKING:
    from pipeline.rewrite.base import TextBackend
    from pipeline.rewrite.config import RewriterConfig

IDEA = "a fox explores a city at night"
SHOT_SECONDS = 1.0
FPS = 16  # the tiny models' frame rate


async def storyboard(reel: Reel, *, user: User, **options: object) -> tuple[Message, Storyboard]:
    """``user`` runs /storyboard; the plan message and its storyboard."""
    handle = await reel.fake.invoke(
        "storyboard", {"idea": IDEA, "shots": 2, "seconds": SHOT_SECONDS, **options}, user=user
    )
    answer = await handle.response(timeout=30)
    assert handle.ephemeral
    assert "planned" in answer.content, answer.content
    plan = await reel.fake.wait_for_message(
        reel.fake.general, lambda m: any(c.endswith(":shoot") for c in m.custom_ids())
    )
    storyboard_id = int(plan.custom_ids()[0].split(":")[1])
    board = await Storyboards(reel.queue, clips_dir=reel.settings.clips_dir).get(storyboard_id)
    assert board is not None
    return plan, board


async def private_answer(reel: Reel, message: Message, custom_id: str, user: User) -> str:
    handle = await reel.fake.click(message, custom_id, user=user)
    answer = await handle.response(timeout=30)
    assert handle.ephemeral
    return answer.content


async def shoot_in_thread(reel: Reel, *, user: User) -> tuple[Message, Storyboard, Channel]:
    """``user`` plans a storyboard and presses Shoot: its plan, itself and its thread."""
    plan, board = await storyboard(reel, user=user)
    await private_answer(reel, plan, f"storyboard:{board.id}:shoot", user)
    thread = reel.fake.thread_of(plan)
    assert thread is not None
    return plan, board, thread


async def films(reel: Reel, thread: Channel, count: int) -> list[Message]:
    """The thread's films once there are ``count`` of them."""

    def posted() -> list[Message] | None:
        found = [m for m in reel.fake.channel_messages(thread) if m.attachments]
        return found if len(found) >= count else None

    return await reel.fake.wait_for(posted, timeout=CLIP_TIMEOUT_S)


def seconds_of(message: Message, folder: Path) -> float:
    path = folder / f"film-{message.id}.mp4"
    path.write_bytes(message.attachments[0].data)
    info = probe_mp4(path)
    return info.frames / info.fps


@pytest.mark.parametrize("reel_mode", BOTH_MODES, indirect=True)
async def test_storyboard_plan_edit_shoot_and_reshoot(reel: Reel, tmp_path: Path) -> None:
    fake = reel.fake
    async with reel.bot_running(), reel.worker_running():
        plan, board = await storyboard(reel, user=fake.alice)
        embed = plan.embeds[0]
        assert IDEA in embed["title"]
        shot_fields = [f for f in embed["fields"] if f["name"].startswith("Shot ")]
        assert [f["name"].split(" · ")[0] for f in shot_fields] == ["Shot 1", "Shot 2"]
        assert "1 s" in shot_fields[0]["name"]
        assert "simple plan" in embed["footer"]["text"], "the fallback plan says so"
        shoot, edit = f"storyboard:{board.id}:shoot", f"storyboard:{board.id}:edit"
        assert plan.custom_ids() == [shoot, edit]

        refusal = await private_answer(reel, plan, shoot, fake.bob)
        assert refusal.startswith("Only the person who planned")
        assert fake.thread_of(plan) is None, "bob's press started nothing"

        opened = await fake.click(plan, edit, user=fake.alice)
        modal = await opened.modal_opened()
        assert modal["title"] == f"Edit storyboard #{board.id}"
        shots = "\n".join(
            (
                "The fox sniffs a lamp post | static | 1",
                "The fox leaps over a puddle in the rain | pan left | 1",
            )
        )
        edited = await fake.submit_modal(opened, {"shots": shots})
        assert "updated" in (await edited.response(timeout=30)).content
        shown = fake.message(plan.id).embeds[0]["fields"]
        assert shown[1]["value"] == "The fox leaps over a puddle in the rain"
        assert "pan left" in shown[1]["name"]

        answer = await private_answer(reel, plan, shoot, fake.alice)
        thread = fake.thread_of(plan)
        assert thread is not None
        assert thread.mention in answer
        assert fake.message(plan.id).custom_ids() == [], "Shoot and Edit plan are gone"

        (film,) = await films(reel, thread, 1)
        assert abs(seconds_of(film, tmp_path) - 2 * SHOT_SECONDS) < 0.2
        reshoots = [f"storyboard:{board.id}:reshoot:{n}" for n in (1, 2)]
        *buttons, delete = film.custom_ids()
        assert buttons == reshoots
        assert fake.channel_messages(fake.general) == [fake.message(plan.id)], (
            "shots are not posted on their own"
        )
        lines = [r["content"] for r in fake.message(plan.id).revisions]
        assert any("shot 1 of 2" in line for line in lines), lines
        assert "All 2 shots are shot" in fake.message(plan.id).content
        shooting = await Storyboards(reel.queue, clips_dir=reel.settings.clips_dir).get(board.id)
        assert shooting is not None
        first_take = shooting.shot_job_ids
        assert delete == f"job:{shooting.film_job_id}:delete", "the film's own Delete"
        shot_two = await reel.queue.get(first_take[1])
        assert shot_two is not None
        assert "leaps over a puddle" in shot_two.request.prompt

        assert (await private_answer(reel, film, reshoots[1], fake.bob)).startswith("Only")
        answer = await private_answer(reel, film, reshoots[1], fake.alice)
        assert "from shot 2" in answer
        _, again = await films(reel, thread, 2)
        assert abs(seconds_of(again, tmp_path) - 2 * SHOT_SECONDS) < 0.2
        assert again.attachments[0].data != film.attachments[0].data
        assert [m for m in fake.channel_messages(thread) if m.attachments] == [film, again]
        takes = [
            {f["name"]: f["value"] for f in m.embeds[0]["fields"]}["Take"] for m in (film, again)
        ]
        assert takes == ["1", "2"]

        delete_again = again.custom_ids()[-1]
        assert (await private_answer(reel, again, delete_again, fake.bob)).startswith("Only")
        deleted = await private_answer(reel, again, delete_again, fake.alice)
        assert deleted.startswith("Deleted"), deleted
        assert [m for m in fake.channel_messages(thread) if m.attachments] == [film]

    later = await Storyboards(reel.queue, clips_dir=reel.settings.clips_dir).get(board.id)
    assert later is not None
    assert later.shot_job_ids[0] == first_take[0], "shot 1 was kept"
    assert later.shot_job_ids[1] != first_take[1], "shot 2 was made again"
    film_job = await reel.queue.get(later.film_job_id or 0)
    assert film_job is not None
    assert film_job.kind is JobKind.FILM
    assert film_job.result_message_id == again.id, "the new film was delivered once"

    # Take 1's film posted late (its message was lost before the queue heard it was
    # posted), after take 2's: its embed names its own take.
    first_film = int(delete.split(":")[1])
    fake.message(film.id).deleted = True
    await reel.queue.db.write(
        lambda db: db.execute("UPDATE jobs SET delivered_at = NULL WHERE id = ?", [first_film])
    )
    async with reel.bot_running():
        late = await reel.delivered(first_film)
    assert late.result_message_id not in (None, film.id)
    late_fields = fake.message(late.result_message_id or 0).embeds[0]["fields"]
    assert {f["name"]: f["value"] for f in late_fields}["Take"] == "1"


async def test_storyboard_refusals_at_the_door(reel: Reel) -> None:
    fake = reel.fake
    chat = fake.world.add_thread(fake.general, "chat", owner=fake.alice)
    async with reel.bot_running():
        too_long = await fake.invoke(
            "storyboard",
            {"idea": IDEA, "seconds": 30.0},
            user=fake.alice,
            client_checks=False,
        )
        assert (await too_long.response(timeout=30)).content == (
            "A shot is 1 to 5 seconds on this server; 30 was asked for."
        )
        too_many = await fake.invoke(
            "storyboard", {"idea": IDEA, "shots": 9}, user=fake.alice, client_checks=False
        )
        assert "2 to 8 shots" in (await too_many.response(timeout=30)).content
        in_thread = await fake.invoke("storyboard", {"idea": IDEA}, user=fake.alice, channel=chat)
        assert "text channel" in (await in_thread.response(timeout=30)).content
        assert fake.channel_messages(fake.general) == [], "no plan was posted"

        plan, board = await storyboard(reel, user=fake.alice)
        edit = f"storyboard:{board.id}:edit"
        assert (await private_answer(reel, plan, edit, fake.bob)).startswith("Only the person")
        for shots, sentence in (
            ("A fox runs | static | 1", "A storyboard has 2 to 8 shots; 1 was asked for."),
            ("A fox runs | static | 1\nA fox sleeps | spin | 1", "Shot 2's camera 'spin'"),
            ("A fox runs | static | 1\nA fox sleeps | none | 9", "Shot 2 is 9 s; a shot is 1 to 5"),
            ("A fox runs | static | 1\nA fox sleeps", "Shot 2 needs three parts"),
        ):
            opened = await fake.click(plan, edit, user=fake.alice)
            await opened.modal_opened()
            submitted = await fake.submit_modal(opened, {"shots": shots})
            assert (await submitted.response(timeout=30)).content.startswith(sentence)
    assert fake.message(plan.id).edit_times == [], "the plan stayed as it was"


async def test_a_film_posted_just_before_a_crash_is_not_posted_again(reel: Reel) -> None:
    fake = reel.fake
    async with reel.bot_running(), reel.worker_running():
        _, board, thread = await shoot_in_thread(reel, user=fake.alice)
        (film,) = await films(reel, thread, 1)
        shot = await Storyboards(reel.queue, clips_dir=reel.settings.clips_dir).get(board.id)
        assert shot is not None
        film_job_id = shot.film_job_id
        assert film_job_id is not None
        await reel.delivered(film_job_id)
    # The crash window: the film is in the thread but the queue never heard it was posted.
    await reel.queue.db.write(
        lambda db: db.execute("UPDATE jobs SET delivered_at = NULL WHERE id = ?", [film_job_id])
    )
    async with reel.bot_running():
        delivered = await reel.delivered(film_job_id)
    assert delivered.result_message_id == film.id
    assert [m.id for m in fake.channel_messages(thread) if m.attachments] == [film.id]


async def test_buttons_after_a_restart_and_a_cancelled_shot_tells_its_owner(reel: Reel) -> None:
    fake = reel.fake
    async with reel.bot_running():
        plan, board = await storyboard(reel, user=fake.alice)
    async with reel.bot_running():
        # No worker runs: shot 1 waits. Carol moderates, so she may shoot alice's plan.
        answer = await private_answer(reel, plan, f"storyboard:{board.id}:shoot", fake.carol)
        assert answer.startswith(f"Shooting storyboard #{board.id}")
        thread = fake.thread_of(plan)
        assert thread is not None
        shooting = await Storyboards(reel.queue, clips_dir=reel.settings.clips_dir).get(board.id)
        assert shooting is not None
        (shot_one,) = shooting.shot_job_ids
        await fake.wait_for(lambda: f"#{shot_one}" in fake.message(plan.id).content, timeout=30)

        cancel = await fake.invoke("cancel", {"job": shot_one}, user=fake.alice)
        await cancel.response(timeout=30)
        told = await fake.wait_for_message(thread, lambda m: "stopped" in m.content, timeout=30)
        await fake.wait_for(lambda: "cancelled" in fake.message(plan.id).content, timeout=30)

        # No worker ever swept the cancelled shot: the bot ended the storyboard itself.
        reshoots = [f"storyboard:{board.id}:reshoot:{n}" for n in (1, 2)]
        assert told.custom_ids() == reshoots
        again = await private_answer(reel, told, reshoots[0], fake.alice)
        assert again.startswith(f"Reshooting storyboard #{board.id} from shot 1"), again

    assert told.content == (
        f"{fake.alice.mention} Storyboard #{board.id} stopped: shot 1 of 2 was cancelled. "
        "Reshoot N starts again from shot N."
    )
    assert fake.notified_users(told) == {fake.alice.id}
    assert [m.id for m in fake.channel_messages(thread)] == [told.id], "nothing else was posted"
    reshot = await Storyboards(reel.queue, clips_dir=reel.settings.clips_dir).get(board.id)
    assert reshot is not None
    assert (reshot.state, reshot.take) == ("shooting", 2)


async def test_the_plan_is_the_language_models_or_the_simple_one_with_its_reason(
    reel: Reel, chat_server: FakeChatServer
) -> None:
    fake = reel.fake
    scenes = (
        "The fox slips out of an alley onto a busy city street",
        "The fox watches the city lights from a rooftop",
    )
    model_plan = {
        "sheet": "A small red fox with a white-tipped tail; neon-lit wet streets, night",
        "shots": [
            {"scene": scenes[0], "camera": "pan right", "duration": 1},
            {"scene": scenes[1], "camera": "dolly out", "duration": 1},
        ],
    }
    chat_server.script(
        ChatReply(content=json.dumps(model_plan)), ChatReply(content="Sure! Here is a plan:")
    )
    reel.settings = reel.settings.model_copy(
        update={
            "rewriter": "openai",
            "openai_base_url": chat_server.base_url,
            "openai_model": "planner",
        }
    )
    async with reel.bot_running():
        plan, _ = await storyboard(reel, user=fake.alice)
        fields = plan.embeds[0]["fields"]
        assert [f["value"] for f in fields[:2]] == list(scenes)
        assert "pan right" in fields[0]["name"]
        assert "footer" not in plan.embeds[0], "no sentence: the model's plan was used"
        assert IDEA in chat_server.requests[0]["messages"][-1]["content"]

        handle = await fake.invoke(
            "storyboard", {"idea": IDEA, "shots": 2, "seconds": SHOT_SECONDS}, user=fake.bob
        )
        answer = (await handle.response(timeout=30)).content
    assert "could not be used" in answer, "bob is told why his plan is the simple one"
    simple = fake.channel_messages(fake.general)[-1].embeds[0]
    assert "could not be used" in simple["footer"]["text"]
    assert len(chat_server.requests) == 2


async def test_without_thread_permission_the_film_goes_into_the_channel(reel: Reel) -> None:
    fake = reel.fake
    bot_role = fake.role(fake.bot_user.name)
    bot_role.permissions &= ~discord.Permissions(create_public_threads=True).value
    async with reel.bot_running():
        plan, board = await storyboard(reel, user=fake.alice)
        answer = await private_answer(reel, plan, f"storyboard:{board.id}:shoot", fake.alice)

    assert "posted in this channel" in answer
    assert fake.threads() == []
    shooting = await Storyboards(reel.queue, clips_dir=reel.settings.clips_dir).get(board.id)
    assert shooting is not None
    assert shooting.post_channel_id == fake.general.id
    assert len(shooting.shot_job_ids) == 1, "shot 1 is queued all the same"


async def test_a_film_that_cannot_be_joined_tells_its_owner_in_the_thread(
    reel: Reel, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("jobqueue.storyboards.join_clips", disk_full)
    fake = reel.fake
    async with reel.bot_running(), reel.worker_running():
        _, board, thread = await shoot_in_thread(reel, user=fake.alice)
        told = await fake.wait_for_message(
            thread, lambda m: "could not be joined" in m.content, timeout=CLIP_TIMEOUT_S
        )
        reshoots = [f"storyboard:{board.id}:reshoot:{n}" for n in (1, 2)]
        assert told.custom_ids() == reshoots
        again = await private_answer(reel, told, reshoots[1], fake.alice)
        assert again.startswith(f"Reshooting storyboard #{board.id} from shot 2"), again

    assert fake.alice.mention in told.content
    assert not told.attachments
    ended = await Storyboards(reel.queue, clips_dir=reel.settings.clips_dir).get(board.id)
    assert ended is not None
    assert ended.take == 2, "the failed storyboard was reshot"


async def test_shoot_only_from_the_plan_message(reel: Reel) -> None:
    fake = reel.fake
    async with reel.bot_running():
        plan, board = await storyboard(reel, user=fake.alice)
        shoot = f"storyboard:{board.id}:shoot"
        # The same button on another of the bot's messages (Discord would let it be pressed).
        row = {
            "type": 1,
            "components": [{"type": 2, "style": 1, "label": "Shoot", "custom_id": shoot}],
        }
        other = fake.server.messages.create(
            fake.general, fake.bot_user, {"content": "a copy", "components": [row]}, []
        )
        answer = await private_answer(reel, other, shoot, fake.alice)

    assert answer == f"Press Shoot on storyboard #{board.id}'s plan message to shoot it."
    assert fake.threads() == [], "no thread was started from the other message"
    still = await Storyboards(reel.queue, clips_dir=reel.settings.clips_dir).get(board.id)
    assert still is not None
    assert still.state == "planned"
    assert fake.message(plan.id).custom_ids() == [shoot, f"storyboard:{board.id}:edit"]


async def test_in_a_voice_channels_chat_the_film_goes_into_the_chat(reel: Reel) -> None:
    fake = reel.fake
    lounge = fake.world.add_channel(fake.guild, "lounge", voice=True)
    async with reel.bot_running():
        handle = await fake.invoke(
            "storyboard",
            {"idea": IDEA, "shots": 2, "seconds": SHOT_SECONDS},
            user=fake.alice,
            channel=lounge,
        )
        assert "planned" in (await handle.response(timeout=30)).content
        (plan,) = fake.channel_messages(lounge)
        shoot = plan.custom_ids()[0]
        answer = await private_answer(reel, plan, shoot, fake.alice)

    assert "posted in this channel" in answer, answer
    assert fake.threads() == []
    board_id = int(shoot.split(":")[1])
    shooting = await Storyboards(reel.queue, clips_dir=reel.settings.clips_dir).get(board_id)
    assert shooting is not None
    assert shooting.post_channel_id == lounge.id
    assert len(shooting.shot_job_ids) == 1, "shot 1 is queued"


async def test_a_plan_that_cannot_be_posted_leaves_no_planned_storyboard(reel: Reel) -> None:
    fake = reel.fake
    for role in (fake.role(fake.bot_user.name), fake.guild.everyone):
        role.permissions &= ~discord.Permissions(send_messages=True).value
    async with reel.bot_running():
        handle = await fake.invoke(
            "storyboard", {"idea": IDEA, "shots": 2, "seconds": SHOT_SECONDS}, user=fake.alice
        )
        answer = (await handle.response(timeout=30)).content

    assert "may not post" in answer, answer
    states = await reel.queue.db.read(
        lambda db: [row[0] for row in db.execute("SELECT state FROM storyboards")]
    )
    assert "planned" not in states, states


async def test_the_planners_model_loads_once_within_its_own_time_limit(
    reel: Reel, chat_server: FakeChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model slower to load than a plan may take keeps loading for the next plans, and
    plans get /storyboard's time limit, not the rewriter's."""
    fake = reel.fake
    builds: list[TextBackend] = []
    release, loaded = asyncio.Event(), asyncio.Event()
    real_build = rewriter.build_backend

    def slow_to_load(config: RewriterConfig) -> TextBackend:
        backend = real_build(config)
        warm_up = backend.warm_up

        async def load() -> float:
            await release.wait()  # a big model on a slow CPU
            took = await warm_up()
            loaded.set()
            return took

        monkeypatch.setattr(backend, "warm_up", load)
        builds.append(backend)
        return backend

    # The cog's module is imported afresh by every bot start: it takes the builder from here.
    monkeypatch.setattr(rewriter, "build_backend", slow_to_load)
    reel.settings = reel.settings.model_copy(
        update={
            "rewriter": "openai",
            "openai_base_url": chat_server.base_url,
            "openai_model": "planner",
            "rewriter_timeout_s": 0.001,
            "plan_timeout_s": 2.0,
        }
    )
    options = {"idea": IDEA, "shots": 2, "seconds": SHOT_SECONDS}
    async with reel.bot_running():
        for user in (fake.alice, fake.bob):
            handle = await fake.invoke("storyboard", options, user=user)
            assert "took too long" in (await handle.response(timeout=30)).content
        release.set()
        await asyncio.wait_for(loaded.wait(), timeout=30)
        scene = "The fox slips out of an alley onto a busy city street"
        model_plan = {
            "sheet": "A small red fox; neon-lit wet streets, night",
            "shots": [{"scene": scene, "camera": "pan right", "duration": 1}] * 2,
        }
        chat_server.script(ChatReply(content=json.dumps(model_plan)))
        handle = await fake.invoke("storyboard", options, user=fake.alice)
        answer = (await handle.response(timeout=30)).content

    assert "simple plan" not in answer, answer
    assert fake.channel_messages(fake.general)[-1].embeds[0]["fields"][0]["value"] == scene
    assert len(builds) == 1, "one load served every plan"
