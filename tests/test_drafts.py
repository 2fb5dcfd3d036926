"""Four quick drafts, Render N and Vary N through ``ClipMaker`` on the tiny pipelines.

Render starts from draft N's latents, upscaled and noised part of the way back up the
schedule: even with random weights the rendered clip looks more like its draft than like the
other three. The arithmetic test says what drafts cost the real model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pipeline.clip import ClipMaker, MadeDrafts, ModelChoice
from pipeline.drafts import (
    DRAFT_GONE,
    draft_beside,
    draft_cost,
    grid_frames,
    latents_beside,
    load_latents,
)
from pipeline.encode import read_frames, read_tags
from pipeline.errors import ClipFailed
from pipeline.presets import PRESETS
from pipeline.request import ClipRequest

MAX_BYTES = 10 * 2**20
PROMPT = "a cat surfing a wave at sunset"


@pytest.fixture
def maker(tiny_models_dir: Path) -> ClipMaker:
    return ClipMaker(
        ModelChoice(
            models_dir=tiny_models_dir, t2v_model="tiny", i2v_model="tiny-i2v", device="cpu"
        )
    )


async def drafts_of(
    maker: ClipMaker, folder: Path, asked: ClipRequest, **options: Any
) -> MadeDrafts:
    options.setdefault("model", "tiny")
    return await maker.make_drafts(
        asked, output=lambda _request: folder / "grid.mp4", max_bytes=MAX_BYTES, **options
    )


async def render(maker: ClipMaker, draft: Path, path: Path, asked: ClipRequest) -> np.ndarray:
    made = await maker.make_clip(
        asked, model="tiny", output=lambda _request: path, max_bytes=MAX_BYTES, from_draft=draft
    )
    return read_frames(made.clip.path)[0]


def frames_of(path: Path) -> np.ndarray:
    return read_frames(path)[0].astype(np.float64)


def shrunk(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.stack(
        [np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BOX)) for frame in frames]
    ).astype(np.float64)


def distances(clip: np.ndarray, drafts: list[np.ndarray]) -> list[float]:
    return [float(np.mean((clip - draft) ** 2)) for draft in drafts]


async def test_four_drafts_a_labelled_grid_and_their_files(
    maker: ClipMaker, tmp_path: Path
) -> None:
    made = await drafts_of(maker, tmp_path, ClipRequest(PROMPT, seed=11, frames=13))
    assert made.grid.path == tmp_path / "grid.mp4"
    assert [clip.path for clip in made.drafts] == [
        draft_beside(made.grid.path, number) for number in (1, 2, 3, 4)
    ]
    drafts = [read_frames(clip.path)[0] for clip in made.drafts]
    # Half the tiny preset's 112x64, the length asked for.
    assert all(frames.shape == (13, 32, 64, 3) for frames in drafts)
    assert made.seeds == (11, 12, 13, 14)
    for clip, seed in zip(made.drafts, made.seeds, strict=True):
        assert f"Seed: {seed}." in read_tags(clip.path)["comment"]
        assert latents_beside(clip.path).exists()
    assert all(not np.array_equal(drafts[0], other) for other in drafts[1:])
    # The full-size request is what Render makes.
    assert (made.request.width, made.request.height, made.request.frames) == (112, 64, 13)

    grid = read_frames(made.grid.path)[0]
    assert grid.shape == (13, 64, 128, 3)
    cells = [grid[:, :32, :64], grid[:, :32, 64:], grid[:, 32:, :64], grid[:, 32:, 64:]]
    for cell, draft in zip(cells, drafts, strict=True):
        # Below the label each cell is its draft (up to the MP4's compression).
        lower = np.abs(cell[:, 16:].astype(int) - draft[:, 16:].astype(int)).mean()
        others = [np.abs(cell[:, 16:].astype(int) - o[:, 16:].astype(int)).mean() for o in drafts]
        assert lower == min(others)


def test_each_cell_of_the_grid_is_labelled_with_its_number() -> None:
    gray = np.full((2, 60, 100, 3), 128, dtype=np.uint8)
    grid = grid_frames([gray] * 4)
    assert grid.shape == (2, 120, 200, 3)
    corners = [
        grid[0, :20, :30],
        grid[0, :20, 100:130],
        grid[0, 60:80, :30],
        grid[0, 60:80, 100:130],
    ]
    for corner in corners:
        assert corner.max() > 200  # the white digit
        assert corner.min() < 80  # on its dark badge
    assert np.all(grid[0, 40:60, 50:100] == 128)  # nothing drawn elsewhere
    digits = [corner.astype(int) for corner in corners]
    assert all(np.abs(digits[0] - other).sum() > 0 for other in digits[1:])


async def test_render_keeps_the_chosen_draft(maker: ClipMaker, tmp_path: Path) -> None:
    made = await drafts_of(maker, tmp_path / "drafts", ClipRequest(PROMPT, seed=1))
    drafts = [frames_of(clip.path) for clip in made.drafts]
    height, width = drafts[0].shape[1:3]
    for number, draft in enumerate(made.drafts, start=1):
        rendered = await render(
            maker, draft.path, tmp_path / f"render{number}.mp4", ClipRequest(PROMPT, steps=10)
        )
        assert rendered.shape == (9, 64, 112, 3)
        closest = int(np.argmin(distances(shrunk(rendered, (width, height)), drafts))) + 1
        assert closest == number


async def test_a_render_keeps_its_drafts_aspect_and_length(
    maker: ClipMaker, tmp_path: Path
) -> None:
    made = await drafts_of(maker, tmp_path, ClipRequest(PROMPT, seed=4, aspect="9:16", frames=5))
    rendered = await render(
        maker, made.drafts[2].path, tmp_path / "render.mp4", ClipRequest(PROMPT)
    )
    assert rendered.shape == (5, 112, 64, 3)


async def test_vary_makes_four_new_drafts_near_the_chosen_one(
    maker: ClipMaker, tmp_path: Path
) -> None:
    made = await drafts_of(maker, tmp_path / "drafts", ClipRequest(PROMPT, seed=1))
    drafts = [frames_of(clip.path) for clip in made.drafts]
    for number in (1, 4):
        varied = await drafts_of(
            maker,
            tmp_path / f"vary{number}",
            ClipRequest(PROMPT, seed=51),
            near=made.drafts[number - 1].path,
        )
        new = [frames_of(clip.path) for clip in varied.drafts]
        assert all(frames.shape == drafts[0].shape for frames in new)
        assert all(not np.array_equal(frames, drafts[number - 1]) for frames in new)
        assert len({frames.tobytes() for frames in new}) == 4
        summed = np.sum([distances(frames, drafts) for frames in new], axis=0)
        assert int(np.argmin(summed)) + 1 == number


async def test_a_draft_is_the_clip_its_seed_makes_alone(maker: ClipMaker, tmp_path: Path) -> None:
    made = await drafts_of(maker, tmp_path / "four", ClipRequest(PROMPT, seed=21))
    alone = await drafts_of(maker, tmp_path / "one", ClipRequest(PROMPT, seed=23), count=1)
    assert np.array_equal(frames_of(made.drafts[2].path), frames_of(alone.drafts[0].path))


async def test_a_draft_whose_latents_are_gone_cannot_be_rendered(
    maker: ClipMaker, tmp_path: Path
) -> None:
    made = await drafts_of(maker, tmp_path, ClipRequest(PROMPT, seed=3))
    latents_beside(made.drafts[0].path).unlink()
    with pytest.raises(ClipFailed) as failed:
        await render(maker, made.drafts[0].path, tmp_path / "render.mp4", ClipRequest(PROMPT))
    assert failed.value.sentence == DRAFT_GONE
    assert load_latents(made.drafts[1].path).seed == 4


async def test_image_to_video_drafts_render_from_the_same_picture(
    maker: ClipMaker, tmp_path: Path
) -> None:
    picture = tmp_path / "start.png"
    Image.fromarray(np.full((90, 160, 3), (200, 40, 40), dtype=np.uint8)).save(picture)
    made = await drafts_of(
        maker,
        tmp_path,
        ClipRequest("the ball rolls", seed=2),
        model="tiny-i2v",
        start_image=picture,
    )
    rendered = await maker.make_clip(
        ClipRequest("the ball rolls", seed=2),
        model="tiny-i2v",
        output=lambda _request: tmp_path / "render.mp4",
        max_bytes=MAX_BYTES,
        start_image=picture,
        from_draft=made.drafts[0].path,
    )
    assert (rendered.clip.width, rendered.clip.height) == (112, 64)


async def test_a_model_without_drafts_says_so(maker: ClipMaker, tmp_path: Path) -> None:
    with pytest.raises(ClipFailed) as failed:
        await drafts_of(maker, tmp_path, ClipRequest(PROMPT), model="ltx-video")
    assert (
        failed.value.sentence
        == "The model ltx-video renders clips straight away; it cannot make drafts."
    )


@pytest.mark.parametrize("name", ["wan2.1-t2v-1.3b", "wan2.1-t2v-1.3b-fast", "wan2.1-i2v-14b-480p"])
def test_four_drafts_cost_at_most_15_percent_of_a_render(name: str) -> None:
    for aspect in ("16:9", "9:16", "1:1"):
        assert draft_cost(PRESETS[name], aspect).compute_ratio <= 0.15


def test_wan_draft_arithmetic() -> None:
    cost = draft_cost(PRESETS["wan2.1-t2v-1.3b"])
    # 416x240 and 832x480 at 81 frames; 4 drafts x 6 steps x 2 (guidance) against 50 x 2.
    assert (cost.draft_tokens, cost.render_tokens) == (8_190, 32_760)
    assert (cost.draft_forwards, cost.render_forwards) == (48, 100)
    assert cost.token_ratio == pytest.approx(0.12)
    assert cost.compute_ratio == pytest.approx(0.0570, abs=1e-3)
