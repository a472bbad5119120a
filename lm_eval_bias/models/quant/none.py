"""`quant=none`: the model as loaded, recorded so that every run says how it was quantized."""

from __future__ import annotations

from lm_eval_bias.models.quant.base import QuantizationReport, Quantizer, parameter_bytes
from lm_eval_bias.models.quant.registry import register_quantizer


@register_quantizer("none")
class NoQuantizer(Quantizer):
    """Leaves the model untouched. Takes no options, so `quant=none,bits=4` is an error."""

    def quantize(self, model) -> QuantizationReport:
        size = parameter_bytes(model)
        return QuantizationReport(method=self.name, model_bytes_before=size,
                                  model_bytes_after=size)
