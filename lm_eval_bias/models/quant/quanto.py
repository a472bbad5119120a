"""`quant=quanto`: optimum-quanto weight quantization (int8, int4, int2, float8), after loading.

    --model_args pretrained=...,quant=quanto,weights=int4

quanto swaps each selected nn.Linear for its `QLinear` and `freeze` stores the weights quantized
(int8 / float8 e4m3 per output row; int4 / int2 packed, per group of up to 128 input features that
divides the layer, else per row, with an asymmetric shift: quanto chooses, and the record lists
the group sizes it chose). The selection follows quant=rtn (`skip`, default lm_head; GPT-2 Conv1D
layers, which quanto skips silently, are refused).

The first int4 / int2 forward pass on CPU compiles a C++ extension (about 90 s, once per machine).
"""

from __future__ import annotations

import time
from typing import Any

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.models.quant.base import (
    QuantizationReport,
    Quantizer,
    library_version,
    parameter_bytes,
    parse_patterns,
)
from lm_eval_bias.models.quant.registry import register_quantizer

# weights= value -> (quanto qtype name, bits)
WEIGHTS = {"int8": ("qint8", 8), "int4": ("qint4", 4), "int2": ("qint2", 2),
           "float8": ("qfloat8", 8)}


@register_quantizer("quanto")
class QuantoQuantizer(Quantizer):
    """optimum-quanto weight-only. Options: weights (int8, int4, int2 or float8; required),
    skip (default lm_head)."""

    options = ("weights", "skip")
    requires = ("optimum.quanto",)
    install = 'pip install "lm-eval-bias[quanto]"  (or: pip install "optimum-quanto>=0.2.7")'

    def __init__(self, weights=None, skip="lm_head") -> None:
        choices = ", ".join(WEIGHTS)
        if weights is None:
            raise BiasEvalError(f"quant=quanto needs weights ({choices}); pass e.g. weights=int8")
        self.weights = str(weights).strip().lower()
        if self.weights not in WEIGHTS:
            raise BiasEvalError(f"quant=quanto: weights must be one of {choices}, got "
                                f"{weights!r}")
        self.skip = parse_patterns(skip)

    def validate_environment(self) -> None:
        import importlib.util

        # find_spec("optimum.quanto") imports `optimum` first, which may itself be missing
        if importlib.util.find_spec("optimum") is None or \
                importlib.util.find_spec("optimum.quanto") is None:
            raise BiasEvalError(f"quant={self.name} needs optimum.quanto, which is not "
                                f"installed; run: {self.install}")

    def quantize(self, model) -> QuantizationReport:
        from optimum import quanto

        from lm_eval_bias.models.quant._inspect import (
            model_bytes,
            require_all_quantized,
            require_quantized,
            select_linears,
        )

        start = time.perf_counter()
        targets, skipped = select_linears(self.name, model, self.skip)
        names = [name for name, _ in targets]
        bytes_before = parameter_bytes(model)
        qtype_name, bits = WEIGHTS[self.weights]
        # include= takes shell patterns; exact names (no wildcard characters) select exactly
        quanto.quantize(model, weights=getattr(quanto, qtype_name), include=names)
        quanto.freeze(model)
        require_all_quantized(self.name, model, names)
        found = require_quantized(self.name, model)
        group_sizes = sorted({getattr(model.get_submodule(n), "weight_group_size", None) or -1
                              for n in names})
        settings: dict[str, Any] = {
            "weights": self.weights,
            "group_size": group_sizes[0] if len(group_sizes) == 1 else group_sizes,
            "skip": list(self.skip),
        }
        return QuantizationReport(
            method=self.name,
            library="optimum-quanto",
            library_version=library_version("optimum-quanto"),
            bits=bits,
            settings=settings,
            n_modules_quantized=len(found.quantized),
            n_modules_skipped=len(skipped),
            modules_skipped=skipped,
            model_bytes_before=bytes_before,
            model_bytes_after=model_bytes(model),
            simulated=False,
            quantize_seconds=time.perf_counter() - start,
        )
