"""The output safety check looks at a clip's frames as they were just before encoding.

``make_clip`` keeps the frames the check samples (spread over the clip, shrunk as the check
shrinks them), so the worker's check need not decode the clip it has just encoded. The
encoder only re-compresses (or shrinks, to fit a size limit) what those frames show, so a
classifier finds the same in both, frame by frame: a scripted one that scores each sampled
frame's regions by brightness tells the frames apart, where the packaged ones find next to
nothing in benign photographs. A clip without kept frames (a draft grid, a film) is read back
from its file as before.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jobqueue.jobs import JobQueue
from jobqueue.models import JobKind, JobRequest, JobStatus
from jobqueue.safety import ClipJudge, SafetyPolicy, Verdict
from jobqueue.worker import Worker, WorkerConfig
from pipeline.clip import ClipMaker, MadeClip, ModelChoice
from pipeline.encode import ClipMetadata, EncodedClip, encode_mp4
from pipeline.request import ClipRequest
from pipeline.safety import DEFAULT_FRAMES, FrameScores, SafetyCheck, SafetyConfig
from pipeline.safety.sampling import SAMPLE_SIDE, keep_samples, sample_clip, spread

PICTURES = sorted((Path(__file__).parent / "fixtures" / "safety").glob("*.jpg"))
WIDTH, HEIGHT = 832, 480


@pytest.fixture(scope="module")
def photographs() -> np.ndarray:
    """Eight frames of each benign photograph at Wan's 832x480: 32 frames."""
    fitted = [
        np.asarray(Image.open(path).convert("RGB").resize((WIDTH, HEIGHT))) for path in PICTURES
    ]
    return np.stack([picture for picture in fitted for _ in range(8)])


def encoded(frames: np.ndarray, path: Path, *, max_bytes: int = 10 * 2**20) -> EncodedClip:
    metadata = ClipMetadata(prompt="test", seed=1, model="test")
    return encode_mp4(frames, 16, path, metadata=metadata, max_bytes=max_bytes)


def test_kept_frames_are_spread_over_the_clip_and_shrunk_as_the_check_reads_them(
    photographs: np.ndarray, tmp_path: Path
) -> None:
    kept = keep_samples(photographs, DEFAULT_FRAMES)
    clip = encoded(photographs, tmp_path / "photos.mp4")
    read = sample_clip(clip.path, DEFAULT_FRAMES, total=clip.frames, size=(WIDTH, HEIGHT))

    assert kept.shape == (DEFAULT_FRAMES, 240, SAMPLE_SIDE, 3)
    assert kept.shape == np.stack(read).shape
    for index, frame in zip(spread(len(photographs), DEFAULT_FRAMES), kept, strict=True):
        source = photographs[index]
        assert np.abs(frame.mean((0, 1)) - source.mean((0, 1))).max() < 3  # the same picture
    assert keep_samples(photographs[:5], DEFAULT_FRAMES).shape[0] == 5  # every frame of a short one


class RegionBrightness:
    """Scores each frame's four quarters by their mean brightness, as categories named by the
    frame's place among those looked at: the check's scores are then every frame's content,
    in order."""

    name = "regions"

    def __init__(self) -> None:
        self.default_thresholds: dict[str, float] = {}

    def score(self, frames: Sequence[np.ndarray]) -> list[FrameScores]:
        return [self._quarters(number, frame) for number, frame in enumerate(frames)]

    @staticmethod
    def _quarters(number: int, frame: np.ndarray) -> FrameScores:
        half_height, half_width = frame.shape[0] // 2, frame.shape[1] // 2
        quarters = {
            "top left": frame[:half_height, :half_width],
            "top right": frame[:half_height, half_width:],
            "bottom left": frame[half_height:, :half_width],
            "bottom right": frame[half_height:, half_width:],
        }
        return {f"frame {number} {where}": float(q.mean()) / 255 for where, q in quarters.items()}


# The H.264 round trip and the decoder's scaling move a quarter's mean by about 2 levels of
# 255; the frame next to the right one, in the brightening clip below, is 3 or more away.
SAME_FRAME = 2.5 / 255


@pytest.mark.parametrize("max_bytes", [10 * 2**20, 25_000], ids=["as-made", "shrunk-to-fit"])
def test_a_classifier_finds_the_same_in_the_kept_frames_as_in_the_file_frame_by_frame(
    photographs: np.ndarray, tmp_path: Path, max_bytes: int
) -> None:
    # Each frame a little brighter than the one before: neighbouring frames differ.
    brightening = 0.2 + 0.8 * np.arange(len(photographs)) / (len(photographs) - 1)
    frames = (photographs * brightening[:, None, None, None]).round().astype(np.uint8)
    clip = encoded(frames, tmp_path / "photos.mp4", max_bytes=max_bytes)
    assert (clip.width < WIDTH) is (max_bytes < 10 * 2**20)  # a smaller clip fits the limit
    check = SafetyCheck([RegionBrightness()])

    from_file = check.check_clip(clip.path, poster=clip.poster_path, total_frames=clip.frames)
    in_memory = check.check_frames(keep_samples(frames, DEFAULT_FRAMES), poster=clip.poster_path)

    assert in_memory.frames_checked == from_file.frames_checked == DEFAULT_FRAMES + 1
    assert in_memory.scores.keys() == from_file.scores.keys()
    for category, score in from_file.scores.items():
        assert in_memory.scores[category] == pytest.approx(score, abs=SAME_FRAME), category


async def made_clip(
    tiny_models_dir: Path, output: Path, *, keep: int, extend: Path | None = None
) -> MadeClip:
    maker = ClipMaker(
        ModelChoice(models_dir=tiny_models_dir, t2v_model="tiny", i2v_model="tiny-i2v"),
        preview=None,
        safety_frame_count=keep,
    )
    return await maker.make_clip(
        ClipRequest(prompt="a red balloon over a city", seed=3),
        model="tiny" if extend is None else "tiny-i2v",
        output=lambda _request: output,
        max_bytes=10 * 2**20,
        extend=extend,
    )


async def test_make_clip_keeps_the_frames_only_when_asked(
    tiny_models_dir: Path, tmp_path: Path
) -> None:
    kept = await made_clip(tiny_models_dir, tmp_path / "kept.mp4", keep=4)
    none = await made_clip(tiny_models_dir, tmp_path / "none.mp4", keep=0)

    assert kept.safety_frames is not None
    assert kept.safety_frames.shape == (4, kept.clip.height, kept.clip.width, 3)
    assert none.safety_frames is None


async def test_an_extension_keeps_frames_of_the_whole_clip_it_posts(
    tiny_models_dir: Path, tmp_path: Path
) -> None:
    first = await made_clip(tiny_models_dir, tmp_path / "first.mp4", keep=DEFAULT_FRAMES)
    longer = await made_clip(
        tiny_models_dir, tmp_path / "longer.mp4", keep=DEFAULT_FRAMES, extend=first.clip.path
    )
    assert first.safety_frames is not None
    assert longer.safety_frames is not None

    assert longer.clip.frames > first.clip.frames
    assert len(longer.safety_frames) == min(DEFAULT_FRAMES, longer.clip.frames)
    # It starts where the clip it continues starts (as decoded from that file).
    difference = np.abs(longer.safety_frames[0].astype(int) - first.safety_frames[0]).mean()
    assert difference < 8


async def test_the_judge_needs_no_file_when_the_frames_were_kept(
    tiny_models_dir: Path, tmp_path: Path
) -> None:
    made = await made_clip(tiny_models_dir, tmp_path / "clip.mp4", keep=DEFAULT_FRAMES)
    judge = ClipJudge(SafetyConfig())
    await judge.load()
    made.clip.path.unlink()  # only the poster is read

    kept = await judge.judge(1, made.clip, SafetyPolicy(), frames=made.safety_frames)
    read = await judge.judge(1, made.clip, SafetyPolicy())

    assert kept.verdict is Verdict.SAFE
    assert read.verdict is Verdict.UNCHECKED  # the file it would have decoded is gone


@pytest.mark.parametrize(
    ("kind", "looked_at"),
    [(JobKind.CREATE, "kept from before encoding"), (JobKind.DRAFTS, "read back from the file")],
)
async def test_the_worker_checks_kept_frames_and_reads_back_a_draft_grid(
    job_queue: JobQueue,
    worker_config: WorkerConfig,
    caplog: pytest.LogCaptureFixture,
    kind: JobKind,
    looked_at: str,
) -> None:
    caplog.set_level(logging.INFO, logger="jobqueue.safety")
    job = await job_queue.submit(
        kind,
        JobRequest(prompt="a red balloon over a city", seed=5),
        user_id=7,
        guild_id=1,
        channel_id=2,
    )
    config = replace(worker_config, safety=SafetyConfig())
    await Worker(job_queue.db.path, config=config, worker_id="w").run(burst=True)

    done = await job_queue.get(job.id)
    assert done is not None
    assert (done.status, done.safety_verdict) == (JobStatus.DONE, Verdict.SAFE)
    assert f"job {job.id}: safety safe" in caplog.text
    assert looked_at in caplog.text
