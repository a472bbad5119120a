"""Parsing of hf-quant's own model_args that lm-eval passes through as text or values."""

from __future__ import annotations

from typing import Any

from lm_eval_bias.errors import BiasEvalError


def parse_bool(name: str, value: Any) -> bool:
    """A boolean model_arg: lm-eval casts "true"/"false" to bool; other spellings are accepted
    as text, anything else is one line naming the argument."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes", "on"}:
        return True
    if text in {"false", "0", "no", "off"}:
        return False
    raise BiasEvalError(f"{name}={value!r} is not a boolean; use {name}=true or {name}=false")
