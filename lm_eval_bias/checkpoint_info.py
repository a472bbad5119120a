"""What identifies a checkpoint folder besides its bytes: the architecture and sizes in its
``config.json`` and the number of parameters stored in its ``*.safetensors`` files.

`hf-quant` records `checkpoint_record(...)` in the results JSON (``config.checkpoint``) when it
runs; `lm-eval-bias export --weights DIR` computes the same record from DIR and refuses a folder
that differs (`compare_records`), so that a run cannot be exported as "pinned" with another
model's weights. Standard library only (models and analysis both use it).

The parameter count is read from the safetensors headers (8-byte length, then a JSON header
with each tensor's dtype and shape), so it counts what the folder stores, before any
quantization: the same for a run that quantized the weights after loading and for the folder
they were loaded from.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

#: config.json keys compared between the run and a weights folder (those present in either)
CONFIG_KEYS = ("architectures", "model_type", "vocab_size", "hidden_size", "intermediate_size",
               "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
               "tie_word_embeddings")

_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the header size


def safetensors_parameters(folder: str | Path) -> int | None:
    """Sum of the element counts of every tensor in the folder's ``*.safetensors`` files (read
    from their headers); None when the folder has none or a header cannot be read."""
    files = sorted(p for p in Path(folder).rglob("*.safetensors") if p.is_file())
    if not files:
        return None
    total = 0
    for path in files:
        try:
            with path.open("rb") as fh:
                raw = fh.read(8)
                if len(raw) != 8:
                    return None
                (size,) = struct.unpack("<Q", raw)
                if size > _MAX_HEADER:
                    return None
                header = json.loads(fh.read(size).decode("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        if not isinstance(header, dict):
            return None
        for name, entry in header.items():
            if name == "__metadata__" or not isinstance(entry, dict):
                continue
            shape = entry.get("shape")
            if not isinstance(shape, list):
                return None
            total += math.prod(int(d) for d in shape)
    return total


def config_fields(config: Any) -> dict:
    """The `CONFIG_KEYS` of a config (a dict or a transformers `PretrainedConfig`); absent keys
    are left out."""
    if not isinstance(config, dict):
        config = config.to_dict() if hasattr(config, "to_dict") else {}
    return {k: config[k] for k in CONFIG_KEYS if k in config}


def checkpoint_record(config: Any, folder: str | Path | None) -> dict:
    """``{"config": config_fields, "safetensors_parameters": int | None}`` of a loaded model's
    config and, when the model came from a local folder, that folder's stored parameter count."""
    n = None
    if folder is not None and Path(folder).is_dir():
        n = safetensors_parameters(folder)
    return {"config": config_fields(config), "safetensors_parameters": n}


def folder_record(folder: str | Path) -> dict:
    """`checkpoint_record` of a checkpoint folder, read from its ``config.json``; a folder
    without one gives an empty config."""
    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        config = {}
    return checkpoint_record(config if isinstance(config, dict) else {}, folder)


def compare_records(recorded: dict, found: dict) -> list[str]:
    """``"key: run X, folder Y"`` for every recorded value the folder does not match: each config
    key the run recorded, and the parameter count when both sides have one."""
    out = []
    rec_cfg = recorded.get("config") if isinstance(recorded.get("config"), dict) else {}
    found_cfg = found.get("config") or {}
    for key in CONFIG_KEYS:
        if key in rec_cfg and rec_cfg[key] != found_cfg.get(key):
            out.append(f"config.json {key}: run {rec_cfg[key]!r}, folder "
                       f"{found_cfg.get(key, '(absent)')!r}")
    n_rec, n_found = recorded.get("safetensors_parameters"), found.get("safetensors_parameters")
    if n_rec is not None and n_rec != n_found:
        out.append(f"parameters: run {n_rec}, folder {n_found if n_found is not None else 'none'}")
    return out
