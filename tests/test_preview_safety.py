"""Live previews pass the output safety check before anyone sees them.

A preview is shown while the clip renders, before the clip itself is judged, so each one goes
through the same classifiers under the job's server policy first: a flagged render shows no
preview (nor stores one), and once a preview is flagged, the one shown before is taken down
and no more come, on the bot's host and on a remote worker alike. Age-restricted channels in
``spoiler`` mode get no flagged preview either (a preview is no spoilered file); with the check
``off``, previews are shown unchecked.

A threshold of 0 judges every frame unsafe with the real packaged classifiers; a scripted
classifier flags frames from a chosen moment on.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from jobqueue.clipfiles import preview_path, store_preview
from jobqueue.models import Job, JobStatus
from jobqueue.safety import (
    PREVIEW_FRAMES,
    ClipJudge,
    HeldClips,
    HeldState,
    IfUnchecked,
    SafetyMode,
    SafetyPolicy,
)
from pipeline.generator import VideoGenerator
from pipeline.presets import PRESETS
from pipeline.preview import LivePreview, PreviewOptions, project_to_rgb
from pipeline.request import ClipRequest, resolve_request
from pipeline.safety import FrameScores, SafetyConfig
from tests import bot_harness
from tests.bot_harness import CLIP_TIMEOUT_S, Reel
from tests.broker_harness import BOTH_MODES
from tests.fakediscord import Channel, FakeDiscord, Message
from tests.test_bot_preview import EDIT_EVERY_S, PREVIEWS, previews_shown, submit

TINY = PRESETS["tiny"]
EVERY_STEP = PreviewOptions(every_steps=1, min_seconds=0.0, width=224)
MODERATOR = 99


# --- the pipeline: a screen in front of the previews ---


def previews_of(tiny_models_dir: Path, screen: object) -> tuple[list[bytes], int]:
    """The previews an 8-step tiny run delivers behind ``screen``, and its clip's frame count."""
    generator = VideoGenerator(TINY, models_dir=tiny_models_dir, device="cpu")
    request = resolve_request(TINY, ClipRequest("waves on rocks", seed=1, steps=8))
    received: list[bytes] = []
    result = generator.generate(
        request, on_preview=received.append, preview=EVERY_STEP, preview_screen=screen
    )
    return received, len(result.frames)


def test_a_refused_preview_ends_the_runs_previews(tiny_models_dir: Path) -> None:
    looked_at: list[np.ndarray] = []

    def first_only(frames: np.ndarray) -> bool:
        looked_at.append(frames)
        return len(looked_at) == 1

    received, frames = previews_of(tiny_models_dir, first_only)

    assert len(received) == 1
    assert len(looked_at) == 2, "nothing is looked at, nor shown, after a refusal"
    assert looked_at[0].dtype == np.uint8
    assert looked_at[0].shape == (1, 3, 8, 14, 3)  # one clip: 3 latent frames of 112x64
    assert frames == 9


def test_each_draft_of_a_batch_is_screened_at_its_own_size(tiny_models_dir: Path) -> None:
    generator = VideoGenerator(TINY, models_dir=tiny_models_dir, device="cpu")
    request = resolve_request(TINY, ClipRequest("waves on rocks", seed=1, steps=4))
    looked_at: list[np.ndarray] = []

    def allow(clips: np.ndarray) -> bool:
        looked_at.append(clips)
        return True

    received: list[bytes] = []
    generator.generate_batch(
        request, (1, 2, 3, 4), on_preview=received.append, preview=EVERY_STEP, preview_screen=allow
    )

    assert received, "the screen let them through"
    assert {clips.shape for clips in looked_at} == {(4, 3, 8, 14, 3)}  # not one 2x2 tile


def test_close_does_not_wait_for_a_screen_that_hangs() -> None:
    entered, release = threading.Event(), threading.Event()

    def hangs(clips: np.ndarray) -> bool:
        entered.set()
        release.wait(30)
        return True

    received: list[bytes] = []
    previews = LivePreview(received.append, EVERY_STEP, total_steps=8, frame_ms=250, screen=hangs)
    previews.send(torch.zeros(1, 16, 3, 8, 14))
    assert entered.wait(10)
    preview_threads = [t for t in threading.enumerate() if t.name.startswith("preview")]

    started = time.monotonic()
    previews.close(wait_s=0.5)
    waited = time.monotonic() - started
    release.set()
    for thread in preview_threads:
        thread.join(10)  # the screen returns, and the preview is encoded, after close

    assert 0.45 <= waited < 5  # the 0.5 s bound, less a margin for clock rounding
    assert received == [], "a preview screened after close is never delivered"


def test_a_screen_that_fails_shows_nothing_and_the_clip_is_still_made(
    tiny_models_dir: Path,
) -> None:
    def broken(frames: np.ndarray) -> bool:
        raise RuntimeError("classifier crashed")

    received, frames = previews_of(tiny_models_dir, broken)
    assert (received, frames) == ([], 9)


# --- the worker's screen: the classifiers under the server's policy ---


@pytest.fixture(scope="module")
def loaded_judge() -> ClipJudge:
    judge = ClipJudge(SafetyConfig())
    asyncio.run(judge.load())
    assert judge.check is not None, judge.load_error
    return judge


@pytest.fixture(scope="module")
def preview_frames() -> np.ndarray:
    """A preview's clip as the tiny model makes it (the model's first estimate)."""
    latents = torch.randn(1, 16, 3, 8, 14, generator=torch.Generator().manual_seed(0))
    return project_to_rgb(latents).numpy()


ALL_FLAGGED = {"nudity": 0.0, "nsfw": 0.0}


@pytest.mark.parametrize(
    ("policy", "shown"),
    [
        (SafetyPolicy(), True),
        (SafetyPolicy(thresholds=ALL_FLAGGED), False),
        (SafetyPolicy(mode=SafetyMode.SPOILER, thresholds=ALL_FLAGGED), False),
    ],
    ids=["ordinary", "flagged", "flagged-spoiler-mode"],
)
def test_a_preview_is_judged_as_its_clip_would_be_and_a_refusal_takes_the_last_one_down(
    loaded_judge: ClipJudge,
    preview_frames: np.ndarray,
    tmp_path: Path,
    policy: SafetyPolicy,
    shown: bool,
) -> None:
    store_preview(tmp_path, 5, b"the preview shown before")
    screen = loaded_judge.preview_screen(5, policy, on_refused=lambda: forget(tmp_path, 5))
    assert screen is not None
    assert screen(preview_frames) is shown
    assert preview_path(tmp_path, 5).exists() is shown


def forget(clips_dir: Path, job_id: int) -> None:
    preview_path(clips_dir, job_id).unlink()


def test_with_the_check_off_previews_are_not_looked_at(loaded_judge: ClipJudge) -> None:
    off = SafetyPolicy(mode=SafetyMode.OFF, thresholds=ALL_FLAGGED)
    assert loaded_judge.preview_screen(5, off, on_refused=lambda: None) is None


@pytest.mark.parametrize(
    ("if_unchecked", "shown"), [(IfUnchecked.WITHHOLD, False), (IfUnchecked.POST, True)]
)
def test_without_a_classifier_the_servers_choice_for_unchecked_clips_holds_for_previews(
    preview_frames: np.ndarray,
    if_unchecked: IfUnchecked,
    shown: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    unloaded = ClipJudge(SafetyConfig())
    policy = SafetyPolicy(if_unchecked=if_unchecked)
    refused: list[bool] = []
    screen = unloaded.preview_screen(5, policy, on_refused=lambda: refused.append(True))
    assert screen is not None
    assert screen(preview_frames) is shown
    assert refused == ([] if shown else [True])
    if shown:
        assert screen(preview_frames)
        unchecked_lines = [r for r in caplog.records if "shown unchecked" in r.getMessage()]
        assert len(unchecked_lines) == 1, "said once per job, not once per preview"


class FlagsBrightFrames:
    """Flags a frame brighter than mid-grey, and keeps the size of every frame it saw."""

    name = "bright"

    def __init__(self) -> None:
        self.default_thresholds = {"bright": 0.5}
        self.sizes: list[tuple[int, ...]] = []

    def score(self, frames: Sequence[np.ndarray]) -> list[FrameScores]:
        self.sizes.extend(frame.shape for frame in frames)
        return [{"bright": float(frame.mean()) / 255} for frame in frames]


def test_one_bright_draft_of_four_is_seen_at_its_own_size_and_stops_the_previews() -> None:
    judge = ClipJudge(SafetyConfig(classifiers=(f"{__name__}:FlagsBrightFrames",)))
    asyncio.run(judge.load())
    assert judge.check is not None, judge.load_error
    classifier = judge.check.classifiers[0]
    assert isinstance(classifier, FlagsBrightFrames)
    # Four drafts of 6 latent frames of 104x60, as Wan's at 480p; the third is bright. Tiled
    # 2x2, its quarter would average under the threshold.
    drafts = np.full((4, 6, 60, 104, 3), 40, dtype=np.uint8)
    drafts[2] = 230
    refused: list[bool] = []
    screen = judge.preview_screen(5, SafetyPolicy(), on_refused=lambda: refused.append(True))
    assert screen is not None

    assert screen(drafts) is False
    assert refused == [True]
    assert classifier.sizes == [(60, 104, 3)] * 4 * PREVIEW_FRAMES


# --- through the real bot on the fake Discord ---


# A classifier that finds nothing until the test says so: the way to flag a render midway.
FLAGGING = threading.Event()


class FlagsWhenTold:
    name = "scripted"

    def __init__(self) -> None:
        self.default_thresholds = {"scripted": 0.5}

    def score(self, frames: Sequence[np.ndarray]) -> list[FrameScores]:
        return [{"scripted": 1.0 if FLAGGING.is_set() else 0.0} for _ in frames]


@pytest.fixture
def scripted_check(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Workers started with ``safety=True`` run :class:`FlagsWhenTold`."""
    scripted = SafetyConfig(classifiers=(f"{__name__}:FlagsWhenTold",))
    monkeypatch.setattr(bot_harness, "SafetyConfig", lambda: scripted)
    FLAGGING.clear()
    yield
    FLAGGING.clear()


async def set_policy(reel: Reel, *, mode: SafetyMode | None = None, flag: bool = False) -> None:
    held = HeldClips(reel.moderation, reel.settings.safety_policy())
    guild = reel.fake.guild.id
    if mode is not None:
        await held.set_mode(guild, mode, actor_id=MODERATOR)
    for category in ALL_FLAGGED if flag else ():
        await held.set_threshold(guild, category, 0.0, actor_id=MODERATOR)


def ever_stored(path: Path, stop: threading.Event) -> bool:
    """Whether a preview appears at ``path`` before ``stop`` (looking every 20 ms)."""
    while not stop.wait(0.02):
        if path.exists():
            return True
    return False


async def render_watched(reel: Reel, channel: Channel) -> tuple[Job, Message, bool]:
    """A long render in ``channel`` with a checking worker: the ended job, its status message
    and whether a preview was ever stored for the bot to show."""
    reel.settings = reel.settings.model_copy(update={"progress_edit_seconds": EDIT_EVERY_S})
    async with reel.bot_running(), reel.worker_running(safety=True, preview=PREVIEWS):
        job = await submit(reel, channel)
        stop = threading.Event()
        path = preview_path(reel.settings.clips_dir, job.id)
        watch = asyncio.create_task(asyncio.to_thread(ever_stored, path, stop))
        try:
            done = await reel.delivered(job.id)
        finally:
            stop.set()
            stored = await watch
    assert done.status_message_id is not None
    return done, reel.fake.message(done.status_message_id), stored


@pytest.mark.parametrize("reel_mode", BOTH_MODES, indirect=True)
async def test_a_flagged_render_shows_and_stores_no_preview(
    reel: Reel, caplog: pytest.LogCaptureFixture
) -> None:
    await set_policy(reel, flag=True)
    done, status, stored = await render_watched(reel, reel.fake.general)

    assert done.safety_state == HeldState.WITHHELD
    assert previews_shown(status) == []
    assert not stored
    assert "live previews stop" in caplog.text  # the check refused them, not a lack of steps


@pytest.mark.usefixtures("scripted_check")
async def test_an_age_restricted_channel_in_spoiler_mode_sees_no_flagged_preview_either(
    reel: Reel, fake_discord: FakeDiscord
) -> None:
    after_dark = fake_discord.world.add_channel(fake_discord.guild, "after-dark", nsfw=True)
    await set_policy(reel, mode=SafetyMode.SPOILER)
    FLAGGING.set()
    done, status, stored = await render_watched(reel, after_dark)

    assert done.safety_state == HeldState.SPOILERED
    assert previews_shown(status) == []
    assert not stored


@pytest.mark.usefixtures("scripted_check")
async def test_with_the_check_off_previews_are_shown_unchecked(reel: Reel) -> None:
    await set_policy(reel, mode=SafetyMode.OFF)
    FLAGGING.set()
    done, status, stored = await render_watched(reel, reel.fake.general)

    assert (done.status, done.safety_hold) == (JobStatus.DONE, False)
    assert len(previews_shown(status)) >= 2
    assert stored


def has_preview_now(message: Message) -> bool:
    return any(attachment.filename == "preview.webp" for attachment in message.attachments)


@pytest.mark.usefixtures("scripted_check")
@pytest.mark.parametrize("reel_mode", BOTH_MODES, indirect=True)
async def test_a_preview_shown_before_the_check_flags_one_is_taken_down(reel: Reel) -> None:
    fake = reel.fake
    reel.settings = reel.settings.model_copy(update={"progress_edit_seconds": EDIT_EVERY_S})
    async with reel.bot_running(), reel.worker_running(safety=True, preview=PREVIEWS):
        job = await submit(reel, fake.general)
        status = await fake.wait_for_message(fake.general, has_preview_now, timeout=CLIP_TIMEOUT_S)
        FLAGGING.set()
        await fake.wait_for(lambda: not has_preview_now(status), CLIP_TIMEOUT_S)
        still = await reel.queue.get(job.id)
        done = await reel.delivered(job.id)

    assert still is not None
    assert still.status is JobStatus.RUNNING, "the preview should go while the clip renders"
    assert status.id == done.status_message_id
    assert not preview_path(reel.settings.clips_dir, job.id).exists()
    assert done.safety_state == HeldState.WITHHELD
