"""The unquantized reference every quantization test compares against."""

from __future__ import annotations

import pytest
from lm_eval.models.huggingface import HFLM

from tests.models._scoring import loglikelihoods


@pytest.fixture(scope="module")
def reference(tiny_llama_dir) -> list[float]:
    """Plain lm-eval `hf` on the tiny model: the probes' log-likelihoods."""
    return loglikelihoods(HFLM(pretrained=str(tiny_llama_dir), device="cpu", batch_size=2))
