"""`hf-quant`: lm-eval's `hf` model, quantized right after it is loaded.

    lm_eval run --model hf-quant \\
        --model_args pretrained=HuggingFaceTB/SmolLM2-135M,quant=rtn,bits=4,group_size=64 ...

Every `hf` model_arg keeps working. Added: `quant` (a name in the quantizer registry; default
none) and the options of the chosen method (rtn: bits, group_size, sym, skip; lists use "|"
because lm-eval splits model_args on commas). What was done reaches the results JSON as
`config.quantization` (see `QuantizationReport`).
"""

from __future__ import annotations

import logging

from lm_eval.models.huggingface import HFLM

from lm_eval_bias.models.quant import QUANTIZERS

eval_logger = logging.getLogger(__name__)


class HFQuantLM(HFLM):
    """`HFLM` plus one quantization step. Registered as `hf-quant` by `lm_eval_bias._plugin`.

    An already-built model passed as `pretrained` is quantized in place.
    """

    def __init__(self, pretrained, quant: str | None = "none", **kwargs) -> None:
        # HFLM has no quantization argument and hands unknown model_args to `from_pretrained`,
        # so every registered method's options are taken out here; a method refuses the ones
        # it does not take (quant=none,bits=4 is an error, not a silent full-precision run).
        options = {key: kwargs.pop(key) for key in QUANTIZERS.option_names() if key in kwargs}
        # lm-eval parses the text "none" into None.
        method = "none" if quant is None else str(quant).strip().lower()
        self._quantizer = QUANTIZERS.build(method, options)
        self._quantizer.validate_environment()  # before spending minutes on loading
        self._quant_report = None

        super().__init__(pretrained=pretrained, **kwargs)

        if self._quant_report is None:  # a model object as `pretrained` skips `_create_model`
            self._quantize()

    def _create_model(self, *args, **kwargs) -> None:
        super()._create_model(*args, **kwargs)
        # Weights are now on their device (HFLM loads with device_map={"": device}) and PEFT or
        # delta weights are applied, so the weights we quantize are the ones evaluated.
        self._quantize()

    def _quantize(self) -> None:
        self._quant_report = self._quantizer.quantize(self._model)
        record = self._quant_report.to_dict()
        eval_logger.info("hf-quant: %s", {k: v for k, v in record.items()
                                          if k != "modules_skipped"})

    def get_model_info(self) -> dict:
        """HFLM's record plus `quantization`: this run's `QuantizationReport.to_dict()`."""
        return {**super().get_model_info(), "quantization": self._quant_report.to_dict()}
