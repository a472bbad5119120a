"""`quant=prequantized`: a checkpoint saved already quantized, loaded by the library owning its
format (transformers picks it from the checkpoint's `quantization_config`).

This is what `hf-quant` uses when `quant=` is not given (or is none) and the checkpoint's config
carries a `quantization_config`: bitsandbytes, torchao, compressed-tensors, GPTQ, AWQ, quanto...
The record names the format found (`checkpoint_format`) and the library that loaded it, and the
loaded model is checked to really hold quantized layers.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.models.quant.base import (
    QuantizationReport,
    Quantizer,
    describe_quantization_config,
    library_version,
    quantization_config_dict,
)
from lm_eval_bias.models.quant.registry import register_quantizer

# quant_method -> (import names, distribution, pip line) of the library that loads the format.
LIBRARIES = {
    "bitsandbytes": (("bitsandbytes",), "bitsandbytes", 'pip install "lm-eval-bias[bnb]"'),
    "torchao": (("torchao",), "torchao", 'pip install "lm-eval-bias[torchao]"'),
    "quanto": (("optimum", "optimum.quanto"), "optimum-quanto",
               'pip install "lm-eval-bias[quanto]"'),
    "compressed-tensors": (("compressed_tensors",), "compressed-tensors",
                           'pip install "lm-eval-bias[compressed-tensors]"'),
    # transformers 5 loads GPTQ (through optimum) and AWQ checkpoints with gptqmodel
    "gptq": (("gptqmodel", "optimum"), "gptqmodel", 'pip install "lm-eval-bias[gptq]"'),
    "awq": (("gptqmodel",), "gptqmodel", 'pip install "lm-eval-bias[gptq]"'),
    "hqq": (("hqq",), "hqq", "pip install hqq"),
}


def _quant_method(config: Any) -> str:
    method = quantization_config_dict(config).get("quant_method", "unknown")
    return str(getattr(method, "value", method))



def compressed_tensors_scheme(qc: dict, part: str = "weights") -> dict | None:
    """One part ("weights" or "input_activations") of a compressed-tensors config's schemes when
    all its scheme groups agree on bits and group size (what a uniform W4A16 / W8A16 / W8A8
    checkpoint has); None otherwise, when no group quantizes that part, or for other formats."""
    groups = qc.get("config_groups")
    if not isinstance(groups, dict) or not groups:
        return None
    schemes = [g.get(part) for g in groups.values() if isinstance(g, dict)]
    if not schemes or any(not isinstance(w, dict) for w in schemes):
        return None
    keys = ("num_bits", "group_size")
    if any(tuple(w.get(k) for k in keys) != tuple(schemes[0].get(k) for k in keys) for w in schemes):
        return None
    return schemes[0]


@register_quantizer("prequantized")
class PrequantizedQuantizer(Quantizer):
    """Evaluates a quantized checkpoint as saved. Takes no options; refuses a plain checkpoint."""

    stage = "checkpoint"

    def __init__(self) -> None:
        self._format = None
        self._method = None

    def check_checkpoint(self, checkpoint_config: Any) -> None:
        if checkpoint_config is None:
            raise BiasEvalError(
                "quant=prequantized: the checkpoint's config has no quantization_config, so it is "
                "not quantized; pick a method (e.g. quant=rtn,bits=4) or drop quant=")
        self._method = _quant_method(checkpoint_config)
        self._format = describe_quantization_config(checkpoint_config)
        modules, _, install = LIBRARIES.get(self._method, ((), None, None))
        # parents first: find_spec("optimum.quanto") imports optimum, which may be missing
        missing = next((m for m in modules if importlib.util.find_spec(m) is None), None)
        if missing is not None:
            raise BiasEvalError(
                f"quant=prequantized: the checkpoint is quantized as {self._format}, which needs "
                f"{missing}, which is not installed; run: {install}")

    def quantize(self, model) -> QuantizationReport:
        from lm_eval_bias.models.quant._inspect import (
            dense_bytes,
            model_bytes,
            model_dtype,
            require_quantized,
        )

        config = getattr(getattr(model, "config", None), "quantization_config", None)
        if self._format is None:  # a model object given as `pretrained`
            self.check_checkpoint(config)
        found = require_quantized(f"prequantized ({self._format})", model,
                                  lambda name: name.split(".")[-1] == "lm_head")
        qc = quantization_config_dict(config)
        _, distribution, _ = LIBRARIES.get(self._method, (None, None, None))
        bits = qc.get("bits")
        if self._method == "bitsandbytes":
            bits = 4 if (qc.get("load_in_4bit") or qc.get("_load_in_4bit")) else 8
        settings = {"group_size": qc["group_size"]} if "group_size" in qc else {}
        weights = compressed_tensors_scheme(qc, "weights")
        if weights is not None:  # compressed-tensors keeps them per scheme group
            bits = weights.get("num_bits")
            if weights.get("group_size") is not None:
                settings = {"group_size": weights["group_size"]}
            elif weights.get("strategy") == "channel":
                settings = {"group_size": -1}  # one scale per output row
        activations = compressed_tensors_scheme(qc, "input_activations")
        act_bits = activations.get("num_bits") if activations is not None else None
        return QuantizationReport(
            method=self.name,
            library=distribution or self._method,
            library_version=library_version(distribution) if distribution else None,
            bits=bits if isinstance(bits, int) else None,
            settings=settings,
            n_modules_quantized=len(found.quantized),
            n_modules_skipped=len(found.unquantized),
            modules_skipped=found.unquantized,
            model_bytes_before=dense_bytes(model, found.quantized, model_dtype(model)),
            model_bytes_after=model_bytes(model),
            simulated=False,
            checkpoint_format=self._format,
            act_bits=act_bits if isinstance(act_bits, int) else None,
        )
