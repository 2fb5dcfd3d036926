"""Model presets carry sane limits, any model id or folder resolves, tiny models build safely."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pipeline.presets import ASPECTS, DEFAULT_PRESET, PRESETS, ModelPreset, resolve_preset
from pipeline.tiny import MARKER_FILE, ensure_tiny_pipeline, tiny_model_dir


@pytest.mark.parametrize("preset", PRESETS.values(), ids=list(PRESETS))
def test_every_preset_has_a_valid_size_for_every_aspect(preset: ModelPreset) -> None:
    multiple = 32 if preset.pipeline_class.startswith("LTX") else 16
    for aspect in ASPECTS:
        for width, height in (preset.size_for(aspect), preset.size_for(aspect, hd=True)):
            assert width % multiple == 0
            assert height % multiple == 0
    landscape_w, landscape_h = preset.size_for("16:9")
    assert landscape_w > landscape_h
    portrait_w, portrait_h = preset.size_for("9:16")
    assert portrait_w < portrait_h
    square_w, square_h = preset.size_for("1:1")
    assert square_w == square_h


@pytest.mark.parametrize("preset", PRESETS.values(), ids=list(PRESETS))
def test_every_preset_default_is_within_its_limits(preset: ModelPreset) -> None:
    assert preset.default_frames in preset.valid_frame_counts()
    assert 1 <= preset.steps <= preset.max_steps
    assert 1 <= preset.hd_steps <= preset.max_steps


def test_wan_presets_follow_the_4k_plus_1_rule_and_ltx_the_8k_plus_1() -> None:
    assert all((n - 1) % 4 == 0 for n in PRESETS["wan2.1-t2v-1.3b"].valid_frame_counts())
    assert PRESETS["wan2.1-t2v-1.3b"].max_frames == 81
    assert all((n - 1) % 8 == 0 for n in PRESETS["ltx-video"].valid_frame_counts())


def test_the_default_is_wan_text_to_video() -> None:
    preset = resolve_preset(DEFAULT_PRESET)
    assert preset.source == "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    assert preset.pipeline_class == "WanPipeline"
    assert preset.size_for("16:9") == (832, 480)
    assert (preset.fps, preset.steps, preset.guidance, preset.flow_shift) == (16, 50, 5.0, 3.0)


def test_a_presets_hub_id_resolves_to_the_preset() -> None:
    assert resolve_preset("Lightricks/LTX-Video") is PRESETS["ltx-video"]


def test_a_local_folder_resolves_by_its_pipeline_class(tmp_path: Path) -> None:
    folder = tmp_path / "my-wan-i2v"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "WanImageToVideoPipeline"}))
    preset = resolve_preset(str(folder))
    assert (preset.task, preset.pipeline_class, preset.source) == (
        "i2v",
        "WanImageToVideoPipeline",
        str(folder),
    )


def test_an_unknown_hub_id_gets_wan_like_limits() -> None:
    preset = resolve_preset("someone/video-model")
    assert (preset.task, preset.pipeline_class, preset.frame_step) == ("t2v", "WanPipeline", 4)
    assert preset.name == "someone/video-model"


def test_an_ltx_hub_id_gets_ltx_limits() -> None:
    preset = resolve_preset("Lightricks/LTX-Video-0.9.7-dev")
    assert (preset.pipeline_class, preset.fps, preset.frame_step) == ("LTXPipeline", 24, 8)


def _tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_tiny_pipelines_are_saved_as_diffusers_folders(tiny_models_dir: Path) -> None:
    for kind, class_name in (("t2v", "WanPipeline"), ("i2v", "WanImageToVideoPipeline")):
        folder = tiny_model_dir(tiny_models_dir, kind)
        index = json.loads((folder / "model_index.json").read_text())
        assert index["_class_name"] == class_name
        assert index["tokenizer"][0] == "transformers"
        assert (folder / "tokenizer" / "tokenizer.json").exists()


def test_building_a_tiny_pipeline_is_deterministic(tmp_path: Path, tiny_models_dir: Path) -> None:
    rebuilt = ensure_tiny_pipeline(tmp_path / "models", "t2v")
    assert _tree_digest(rebuilt) == _tree_digest(tiny_model_dir(tiny_models_dir, "t2v"))


def test_two_builders_at_once_leave_one_complete_folder(tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    with ThreadPoolExecutor(max_workers=2) as pool:
        folders = list(pool.map(lambda _: ensure_tiny_pipeline(models_dir, "t2v"), range(2)))
    assert folders[0] == folders[1]
    assert sorted(path.name for path in models_dir.iterdir()) == ["tiny"]
    assert (folders[0] / MARKER_FILE).exists()


def test_a_stale_tiny_folder_is_rebuilt(tmp_path: Path) -> None:
    folder = ensure_tiny_pipeline(tmp_path / "models", "t2v")
    (folder / MARKER_FILE).write_text(json.dumps({"version": -1}))
    assert ensure_tiny_pipeline(tmp_path / "models", "t2v") == folder
    assert json.loads((folder / MARKER_FILE).read_text())["version"] != -1
    assert sorted(path.name for path in folder.parent.iterdir()) == ["tiny"]
