"""Quantization methods for `hf-quant`, one module and one class per method, behind one registry.

To add a method: write `<method>.py` with a `Quantizer` subclass decorated by
`@register_quantizer("<method>")` (importing its library inside its methods), and import the
module below. Nothing else changes.
"""

from lm_eval_bias.models.quant.base import QuantizationReport, Quantizer
from lm_eval_bias.models.quant.registry import QUANTIZERS, QuantizerRegistry, register_quantizer

# Importing a method module registers it; the order here is the order error messages list them.
from lm_eval_bias.models.quant import none, rtn, act  # noqa: F401  isort: skip
from lm_eval_bias.models.quant import bnb, torchao, quanto, gptq  # noqa: F401  isort: skip
from lm_eval_bias.models.quant import prequantized  # noqa: F401  isort: skip

__all__ = ["QUANTIZERS", "QuantizationReport", "Quantizer", "QuantizerRegistry",
           "register_quantizer"]
