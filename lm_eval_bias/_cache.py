"""The one cache folder of this package (downloads, converted checkpoints)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_DIR_ENV = "LM_EVAL_BIAS_CACHE_DIR"


def cache_dir() -> Path:
    """`$LM_EVAL_BIAS_CACHE_DIR`, else `$XDG_CACHE_HOME/lm_eval_bias`, else `~/.cache/lm_eval_bias`."""
    value = os.environ.get(CACHE_DIR_ENV, "").strip()
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "lm_eval_bias"
