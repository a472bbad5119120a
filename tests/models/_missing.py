"""What `hf-quant` says when a library is not installed, checked without uninstalling it."""

from __future__ import annotations

import importlib.util

import pytest

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.models.hf_quant import HFQuantLM


def error_without(monkeypatch, module: str, **hf_quant_args) -> str:
    """The BiasEvalError message of `HFQuantLM(device="cpu", **hf_quant_args)` while
    `importlib.util.find_spec(module)` answers None, as it does for a library not installed."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == module else real(name, *a))
    with pytest.raises(BiasEvalError) as err:
        HFQuantLM(device="cpu", **hf_quant_args)
    return str(err.value)
