"""Tiny randomly initialised Wan pipelines, built offline for tests and for trying reelbot.

They use the same diffusers classes as Wan 2.1 (text-to-video, image-to-video,
first-last-frame image-to-video and VACE) with a few thousand parameters each, so the whole
path from prompt to MP4 runs on any CPU in a second. A pipeline is built once into
``models_dir/<name>/`` with ``save_pretrained`` and always used through ``from_pretrained``,
like any downloaded model. Building is deterministic (fixed seed) and safe when two processes
race: each builds into its own temporary folder and renames it into place; the loser throws
its copy away.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal, cast, get_args

from pipeline.presets import TINY_SOURCE_PREFIX

log = logging.getLogger(__name__)

TinyKind = Literal["t2v", "i2v", "flf2v", "vace"]

# Bump when the components below change, so cached copies are rebuilt.
TINY_VERSION = 2
MARKER_FILE = "reelbot_tiny.json"
SEED = 0

TEXT_DIM = 32
HEADS = 2
HEAD_DIM = 12
IMAGE_DIM = 8
IMAGE_SIZE = 32
IMAGE_PATCH = 8
# What the tiny CLIP encoder gives per picture: one token per patch and its class token.
IMAGE_TOKENS = (IMAGE_SIZE // IMAGE_PATCH) ** 2 + 1

# Words the tokenizer knows; others become <unk>. Typical prompt vocabulary, so that
# different prompts give different embeddings.
_TOKENIZER_CORPUS = (
    "a cat surfing a wave at sunset on the ocean",
    "a red balloon floating over a city with tall buildings and clouds",
    "a dog running through a green forest in the rain",
    "an astronaut riding a horse on the moon, cinematic, slow motion",
    "a cup of coffee on a wooden table, steam rising, morning light",
    "fireworks over a river at night, bright colors, crowd cheering",
    "a robot walking in a snowy street, neon signs, close up shot",
    "waves crashing on rocks, drone view, blue sky, birds flying",
    "a girl smiling and dancing in a field of yellow flowers",
    "low quality, blurry, static, distorted, ugly, watermark, text",
)


def tiny_model_dir(models_dir: Path, kind: TinyKind) -> Path:
    return models_dir / ("tiny" if kind == "t2v" else f"tiny-{kind}")


def tiny_kind(source: str) -> TinyKind:
    """The kind a tiny preset's source (``tiny:flf2v``) names."""
    kind = source.removeprefix(TINY_SOURCE_PREFIX)
    if kind not in get_args(TinyKind):
        raise ValueError(f"{source!r} names no tiny pipeline")
    return cast(TinyKind, kind)


def ensure_tiny_pipeline(models_dir: Path, kind: TinyKind) -> Path:
    """The folder holding the tiny pipeline of ``kind``, built first if it is missing or stale."""
    target = tiny_model_dir(models_dir, kind)
    if _is_current(target):
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=models_dir))
    try:
        log.info("building the tiny %s pipeline in %s", kind, target)
        build_tiny_pipeline(kind).save_pretrained(staging)
        (staging / MARKER_FILE).write_text(json.dumps({"version": TINY_VERSION, "kind": kind}))
        _move_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _is_current(folder: Path) -> bool:
    try:
        marker = json.loads((folder / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return False
    return bool(marker.get("version") == TINY_VERSION)


def _move_into_place(staging: Path, target: Path) -> None:
    if target.exists() and not _is_current(target):
        stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.stale-", dir=target.parent))
        with contextlib.suppress(FileNotFoundError):
            target.rename(stale / target.name)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        staging.rename(target)
    except OSError:
        # Another process finished first (the target is a non-empty folder now): use theirs.
        if not _is_current(target):
            raise
        log.info("another process built %s first; using it", target)


def build_tiny_pipeline(kind: TinyKind) -> Any:
    """A freshly initialised tiny ``WanPipeline``, ``WanImageToVideoPipeline`` or
    ``WanVACEPipeline`` (not saved); ``flf2v`` is the image-to-video pipeline that also takes
    the clip's last frame."""
    import torch
    from diffusers import WanImageToVideoPipeline, WanPipeline, WanVACEPipeline

    components: dict[str, Any] = {
        "tokenizer": build_tiny_tokenizer(),
        "text_encoder": _seeded(torch, _text_encoder),
        "vae": _seeded(torch, _vae),
        "scheduler": _scheduler(),
    }
    if kind == "t2v":
        components["transformer"] = _seeded(torch, lambda: _transformer(image_to_video=False))
        return WanPipeline(**components)
    if kind == "vace":
        components["transformer"] = _seeded(torch, _vace_transformer)
        return WanVACEPipeline(**components)
    components["transformer"] = _seeded(
        torch, lambda: _transformer(image_to_video=True, end_frame=kind == "flf2v")
    )
    components["image_encoder"] = _seeded(torch, _image_encoder)
    components["image_processor"] = _image_processor()
    return WanImageToVideoPipeline(**components)


# Wan-AI/Wan2.1-T2V-1.3B-Diffusers transformer/config.json (1.42 B parameters).
WAN_1_3B_TRANSFORMER: dict[str, Any] = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 12,
    "attention_head_dim": 128,
    "in_channels": 16,
    "out_channels": 16,
    "text_dim": 4096,
    "freq_dim": 256,
    "ffn_dim": 8960,
    "num_layers": 30,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-6,
    "rope_max_seq_len": 1024,
}


def build_random_wan(transformer: dict[str, Any], *, wan_vae: bool) -> Any:
    """A ``WanPipeline`` with random weights around a transformer of any Wan configuration
    (``WAN_1_3B_TRANSFORMER``, or a narrower one) for benchmarks: Wan 2.1's own VAE
    (``wan_vae``) or the tiny one, and the tiny text side (it runs once per clip; its width
    replaces the transformer's ``text_dim``)."""
    import torch
    from diffusers import AutoencoderKLWan, WanPipeline, WanTransformer3DModel

    torch.manual_seed(SEED)
    return WanPipeline(
        tokenizer=build_tiny_tokenizer(),
        text_encoder=_seeded(torch, _text_encoder),
        vae=AutoencoderKLWan() if wan_vae else _seeded(torch, _vae),
        scheduler=_scheduler(),
        transformer=WanTransformer3DModel(**{**transformer, "text_dim": TEXT_DIM}),
    )


def _seeded(torch: Any, make: Any) -> Any:
    torch.manual_seed(SEED)
    return make()


def build_tiny_tokenizer() -> Any:
    """A word-level tokenizer trained on a few prompts: no download, saves and reloads."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel
    from tokenizers.trainers import WordLevelTrainer
    from transformers import PreTrainedTokenizerFast

    special = ["<pad>", "</s>", "<unk>"]
    tokenizer = Tokenizer(WordLevel(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(
        _TOKENIZER_CORPUS, trainer=WordLevelTrainer(special_tokens=special, show_progress=False)
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=512,
    )


def _text_encoder() -> Any:
    from transformers import UMT5Config, UMT5EncoderModel

    config = UMT5Config(
        vocab_size=128,
        d_model=TEXT_DIM,
        d_kv=16,
        d_ff=64,
        num_layers=2,
        num_heads=2,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
    )
    return UMT5EncoderModel(config).eval()


def _vae() -> Any:
    """Random weights with zero biases and zero-initialised residual branches (as ResNets and
    DiTs start training): the decoder is then a smooth function of the latents, so drafts
    differ visibly and a clip rendered from a draft looks like it. With every weight random,
    decoded pixels hardly depend on the latents at all."""
    import torch
    from diffusers import AutoencoderKLWan
    from diffusers.models.autoencoders.autoencoder_kl_wan import (
        WanAttentionBlock,
        WanResidualBlock,
    )

    vae: Any = AutoencoderKLWan(
        base_dim=3,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )
    with torch.no_grad():
        for module in vae.modules():
            if isinstance(module, WanResidualBlock):
                module.conv2.weight.zero_()
            elif isinstance(module, WanAttentionBlock):
                module.proj.weight.zero_()
        for name, parameter in vae.named_parameters():
            if name.endswith("bias"):
                parameter.zero_()
    return vae


# What every tiny transformer shares: Wan 2.1's blocks, two of them, narrow.
_TINY_BLOCKS: dict[str, Any] = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": HEADS,
    "attention_head_dim": HEAD_DIM,
    "out_channels": 16,
    "text_dim": TEXT_DIM,
    "freq_dim": 256,
    "ffn_dim": 32,
    "num_layers": 2,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    # Wan's own value: enough rotary positions for 720p and beyond.
    "rope_max_seq_len": 1024,
}


def _transformer(*, image_to_video: bool, end_frame: bool = False) -> Any:
    from diffusers import WanTransformer3DModel

    inner_dim = HEADS * HEAD_DIM
    return WanTransformer3DModel(
        **_TINY_BLOCKS,
        # Image-to-video adds the encoded start image and its mask to the noisy latents.
        in_channels=36 if image_to_video else 16,
        image_dim=IMAGE_DIM if image_to_video else None,
        added_kv_proj_dim=inner_dim if image_to_video else None,
        # First-last-frame: the two pictures' CLIP tokens side by side, each position learned.
        pos_embed_seq_len=2 * IMAGE_TOKENS if end_frame else None,
    )


def _vace_transformer() -> Any:
    """Wan's text-to-video transformer with VACE's control blocks beside its two layers."""
    from diffusers import WanVACETransformer3DModel

    return WanVACETransformer3DModel(
        **_TINY_BLOCKS,
        in_channels=16,
        vace_layers=[0, 1],
        # The control video's latents (the kept and the generated parts, 16 channels each)
        # and its mask folded from the VAE's 8x8 pixels into 64 channels.
        vace_in_channels=96,
    )


def _scheduler() -> Any:
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0
    )


def _image_encoder() -> Any:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    config = CLIPVisionConfig(
        hidden_size=IMAGE_DIM,
        intermediate_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=IMAGE_PATCH,
    )
    return CLIPVisionModel(config).eval()


def _image_processor() -> Any:
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(crop_size=IMAGE_SIZE, size=IMAGE_SIZE)
