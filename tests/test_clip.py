"""One request in, one encoded clip out: ``ClipMaker.make_clip`` on the tiny pipelines.

The worker and ``reelbot generate`` both make their clips through it; the last tests here
check that they do, and that they make the same frames from the same seed.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bot.cli import main
from jobqueue.jobs import JobQueue
from jobqueue.models import JobKind, JobRequest, JobStatus
from jobqueue.worker import Worker, WorkerConfig
from pipeline.clip import (
    CLIP_TO_EXTEND_GONE,
    REWRITE_BLOCKED_NOTE,
    ClipMaker,
    ClipStage,
    MadeClip,
    ModelChoice,
    OutputPath,
    ScreenVerdict,
    StageChange,
)
from pipeline.encode import ClipTooLarge, read_frames, read_tags
from pipeline.errors import ClipFailed, GenerationCancelled, InvalidRequest, StartImageUnreadable
from pipeline.request import ClipRequest, ResolvedRequest
from pipeline.rewrite import PromptRewriter
from tests.conftest import ChatReply, FakeChatServer, default_scene

# What a user can type into Discord that a terminal, an embed or ffmpeg's command line chokes
# on: NUL, an ESC colour sequence, BEL and a right-to-left override.
HOSTILE = "a cat\x00 with\x1b[31m text\x07 \u202emirrored"
CLEANED = "a cat with[31m text mirrored"
CONTROLS = ("\x00", "\x1b", "\x07", "\u202e")


@pytest.fixture
def models(tiny_models_dir: Path) -> ModelChoice:
    return ModelChoice(
        models_dir=tiny_models_dir, t2v_model="tiny", i2v_model="tiny-i2v", device="cpu"
    )


@pytest.fixture
def maker(models: ModelChoice) -> ClipMaker:
    return ClipMaker(models)


def into(path: Path) -> OutputPath:
    return lambda _request: path


async def make(maker: ClipMaker, path: Path, asked: ClipRequest, **options: Any) -> MadeClip:
    options.setdefault("model", "tiny")
    return await maker.make_clip(asked, output=into(path), max_bytes=10 * 2**20, **options)


class Screen:
    """A blocklist of words, recording what it was asked to check."""

    def __init__(self, *blocked: str) -> None:
        self.blocked = blocked
        self.checked: list[tuple[str, str, str | None]] = []

    async def check(
        self, prompt: str, negative_prompt: str, rewritten: str | None
    ) -> ScreenVerdict:
        self.checked.append((prompt, negative_prompt, rewritten))
        if any(word in prompt for word in self.blocked):
            return ScreenVerdict(refusal="This prompt is not allowed here.", detail="word")
        if rewritten is not None and any(word in rewritten for word in self.blocked):
            return ScreenVerdict(rewrite_blocked=True, detail="word in the rewrite")
        return ScreenVerdict()


async def test_a_clip_is_made_encoded_and_described(maker: ClipMaker, tmp_path: Path) -> None:
    made = await make(maker, tmp_path / "clip.mp4", ClipRequest("a red balloon", seed=3))
    frames, fps = read_frames(made.clip.path)
    assert frames.shape == (9, 64, 112, 3)
    assert fps == 16
    assert made.clip.poster_path.exists()
    assert (made.request.seed, made.request.model, made.request.steps) == (3, "tiny", 2)
    assert made.prompt.text == "a red balloon"
    assert made.prompt.rewritten is None
    assert {"rewrite", "load", "denoise", "decode", "encode"} <= made.timings.keys()


async def test_control_characters_in_a_prompt_give_a_clip_with_clean_metadata(
    maker: ClipMaker, tmp_path: Path
) -> None:
    made = await make(maker, tmp_path / "clip.mp4", ClipRequest(HOSTILE, negative_prompt="\x00"))
    tags = read_tags(made.clip.path)
    assert tags["title"] == CLEANED
    assert f"Prompt: {CLEANED}" in tags["comment"]
    for control in CONTROLS:
        assert control not in "".join(tags.values())
    assert made.request.prompt == CLEANED


async def test_control_characters_in_a_rewrite_are_removed_before_the_model_and_the_file(
    maker: ClipMaker,
    tmp_path: Path,
    chat_server: FakeChatServer,
    scene_writer: PromptRewriter,
) -> None:
    scene = default_scene("a paper boat")
    chat_server.script(ChatReply(content=f"{scene} \x00A bell\x07 rings\x1b[0m.\u202e"))
    made = await make(
        maker, tmp_path / "clip.mp4", ClipRequest("a paper boat"), rewriter=scene_writer
    )
    assert made.prompt.rewritten == f"{scene} A bell rings[0m."
    assert made.prompt.text == made.prompt.rewritten
    comment = read_tags(made.clip.path)["comment"]
    assert f"Rewritten prompt: {made.prompt.rewritten}" in comment
    for control in CONTROLS:
        assert control not in comment


async def test_stages_arrive_in_order_with_the_prompt_settled_before_generating(
    maker: ClipMaker, tmp_path: Path, scene_writer: PromptRewriter
) -> None:
    changes: list[StageChange] = []
    steps: list[tuple[int, int]] = []

    async def on_stage(change: StageChange) -> None:
        changes.append(change)

    await make(
        maker,
        tmp_path / "clip.mp4",
        ClipRequest("waves on rocks", steps=3),
        rewriter=scene_writer,
        on_stage=on_stage,
        on_step=lambda step, total: steps.append((step, total)),
    )
    assert [change.stage for change in changes] == list(ClipStage)
    generating = changes[1]
    assert generating.total_steps == 3
    assert generating.prompt is not None
    assert generating.prompt.rewritten == default_scene("waves on rocks")
    assert steps == [(1, 3), (2, 3), (3, 3)]


async def test_a_blocked_prompt_fails_with_the_screens_sentence(
    maker: ClipMaker, tmp_path: Path
) -> None:
    screen = Screen("boat")
    with pytest.raises(ClipFailed) as failure:
        await make(maker, tmp_path / "clip.mp4", ClipRequest(" a\x00 boat "), screen=screen)
    assert failure.value.sentence == "This prompt is not allowed here."
    assert screen.checked == [("a boat", "", None)]
    assert not (tmp_path / "clip.mp4").exists()


async def test_a_blocked_rewrite_falls_back_to_the_users_words_with_a_note(
    maker: ClipMaker,
    tmp_path: Path,
    chat_server: FakeChatServer,
    scene_writer: PromptRewriter,
) -> None:
    chat_server.script(ChatReply(content=default_scene("a paper boat") + " A zorblax watches."))
    made = await make(
        maker,
        tmp_path / "clip.mp4",
        ClipRequest("a paper boat"),
        rewriter=scene_writer,
        screen=Screen("zorblax"),
    )
    assert (made.prompt.text, made.prompt.rewritten) == ("a paper boat", None)
    assert made.prompt.note == REWRITE_BLOCKED_NOTE
    assert "zorblax" not in read_tags(made.clip.path)["comment"]


async def test_a_failed_rewrite_says_why_the_users_words_were_used(
    maker: ClipMaker,
    tmp_path: Path,
    chat_server: FakeChatServer,
    scene_writer: PromptRewriter,
) -> None:
    chat_server.script(ChatReply(content="Sure!"))
    made = await make(
        maker, tmp_path / "clip.mp4", ClipRequest("a paper boat"), rewriter=scene_writer
    )
    assert made.prompt.text == "a paper boat"
    assert made.prompt.note is not None
    assert made.prompt.note.startswith("Your prompt was used as written (")


async def test_a_bad_request_fails_before_any_model_is_loaded(tmp_path: Path) -> None:
    # The default model cannot load here: a bad request must fail on its own terms first.
    maker = ClipMaker(ModelChoice(models_dir=tmp_path, t2v_model="x", i2v_model="y"))
    with pytest.raises(InvalidRequest, match="10 frames is not possible"):
        await make(
            maker, tmp_path / "clip.mp4", ClipRequest("x", frames=10), model="wan2.1-t2v-1.3b"
        )


async def test_an_unreadable_start_image_and_a_vanished_clip_to_extend_say_so(
    maker: ClipMaker, tmp_path: Path
) -> None:
    not_a_picture = tmp_path / "start.png"
    not_a_picture.write_text("hello")
    with pytest.raises(StartImageUnreadable) as unreadable:
        await make(
            maker, tmp_path / "a.mp4", ClipRequest("x"), model="tiny-i2v", start_image=not_a_picture
        )
    assert unreadable.value.sentence == (
        "The start image for this clip could not be read; upload it again."
    )
    with pytest.raises(ClipFailed) as gone:
        await make(
            maker, tmp_path / "b.mp4", ClipRequest("x"), model="tiny-i2v", extend=tmp_path / "7.mp4"
        )
    assert gone.value.sentence == CLIP_TO_EXTEND_GONE


async def test_a_start_image_animates_and_an_extension_continues_its_clip(
    maker: ClipMaker, tmp_path: Path
) -> None:
    start = tmp_path / "start.png"
    Image.new("RGB", (160, 90), (200, 30, 30)).save(start)
    first = await make(
        maker,
        tmp_path / "1.mp4",
        ClipRequest("the square spins", seed=1),
        model="tiny-i2v",
        start_image=start,
    )
    assert first.request.model == "tiny-i2v"
    extended = await make(
        maker,
        tmp_path / "2.mp4",
        ClipRequest("it spins on", seed=2),
        model="tiny-i2v",
        extend=first.clip.path,
    )
    # The new part's first frame is the old clip's last, so it is not repeated.
    assert extended.clip.frames == first.clip.frames + 9 - 1
    old, _ = read_frames(first.clip.path)
    joined, _ = read_frames(extended.clip.path)
    assert np.abs(joined[0].astype(int) - old[0].astype(int)).mean() < 8


async def test_a_clip_over_the_byte_budget_fails_and_keeps_its_smallest_attempt(
    maker: ClipMaker, tmp_path: Path
) -> None:
    with pytest.raises(ClipTooLarge) as too_large:
        await maker.make_clip(
            ClipRequest("noise", seed=0),
            model="tiny",
            output=into(tmp_path / "c.mp4"),
            max_bytes=100,
        )
    assert isinstance(too_large.value, ClipFailed)
    assert too_large.value.best.path.exists()


async def test_the_output_path_can_depend_on_the_chosen_seed(
    maker: ClipMaker, tmp_path: Path
) -> None:
    def named(request: ResolvedRequest) -> Path:
        return tmp_path / f"seed-{request.seed}.mp4"

    made = await maker.make_clip(ClipRequest("waves"), model="tiny", output=named, max_bytes=2**24)
    assert made.clip.path == tmp_path / f"seed-{made.request.seed}.mp4"


async def test_a_model_loads_once_and_is_reused(maker: ClipMaker, tmp_path: Path) -> None:
    assert await maker.load("tiny") >= 0
    assert await maker.load("tiny") == 0.0
    made = await make(maker, tmp_path / "clip.mp4", ClipRequest("waves", seed=1))
    assert made.timings["load"] == 0.0


async def test_cancelling_the_caller_stops_the_generation_at_its_next_step(
    maker: ClipMaker, tmp_path: Path
) -> None:
    steps: list[int] = []
    first_step = threading.Event()

    def on_step(step: int, total: int) -> None:
        steps.append(step)
        first_step.set()

    task = asyncio.create_task(
        make(maker, tmp_path / "a.mp4", ClipRequest("rain", steps=50, seed=1), on_step=on_step)
    )
    assert await asyncio.to_thread(first_step.wait, 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The generator runs one clip at a time: this one starts once the abandoned run stopped.
    await make(maker, tmp_path / "b.mp4", ClipRequest("rain", steps=2, seed=1))
    assert len(steps) < 50 + 2
    assert not (tmp_path / "a.mp4").exists()


async def test_should_cancel_stops_the_clip(maker: ClipMaker, tmp_path: Path) -> None:
    with pytest.raises(GenerationCancelled):
        await make(
            maker, tmp_path / "a.mp4", ClipRequest("rain", seed=1), should_cancel=lambda: True
        )


async def test_the_worker_and_reelbot_generate_make_the_same_clip_through_make_clip(
    job_queue: JobQueue,
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    real_make_clip = ClipMaker.make_clip

    async def counted(self: ClipMaker, asked: ClipRequest, **options: Any) -> MadeClip:
        calls.append(asked.prompt)
        return await real_make_clip(self, asked, **options)

    monkeypatch.setattr(ClipMaker, "make_clip", counted)
    monkeypatch.setenv("REELBOT_DATA_DIR", str(data_dir))
    monkeypatch.chdir(tmp_path)

    job = await job_queue.submit(
        JobKind.CREATE,
        JobRequest(prompt="a lighthouse at night", seed=11, enhance=False),
        user_id=5,
        guild_id=1,
        channel_id=2,
    )
    config = WorkerConfig(
        clips_dir=data_dir / "clips",
        models=ModelChoice(
            models_dir=data_dir / "models", t2v_model="tiny", i2v_model="tiny-i2v", device="cpu"
        ),
        poll_interval_s=0.05,
    )
    await Worker(job_queue.db.path, config=config, worker_id="w").run(burst=True)
    done = await job_queue.get(job.id)
    assert done is not None
    assert done.status is JobStatus.DONE, done.error_detail
    argv = ["generate", "a lighthouse at night", "--model", "tiny", "--seed", "11"]
    assert await asyncio.to_thread(main, [*argv, "-o", "cli.mp4"]) == 0

    assert calls == ["a lighthouse at night", "a lighthouse at night"]
    from_worker, _ = read_frames(data_dir / "clips" / f"{job.id}.mp4")
    from_cli, _ = read_frames(tmp_path / "cli.mp4")
    assert np.array_equal(from_worker, from_cli)
