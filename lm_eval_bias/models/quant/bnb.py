"""`quant=bnb8`, `quant=nf4`, `quant=fp4`: bitsandbytes, applied while loading.

    --model_args pretrained=...,quant=nf4,bnb_4bit_compute_dtype=bfloat16,double_quant=true

bitsandbytes quantizes inside `from_pretrained` (transformers `BitsAndBytesConfig`), so these
methods hand a `quantization_config` to the load (`load_kwargs`) and `quantize` only checks the
result and reports it. bnb8 is LLM.int8() (per-row absmax int8 weights; activation outlier columns
above `threshold` in 16-bit); nf4 / fp4 are 4-bit codes per block of 64 weights with an absmax
scale (double_quant also quantizes those scales). Runs on CPU with bitsandbytes >= 0.45
(HFLM loads with device_map={"": device}); lm_head stays in full precision (transformers' rule),
as do the layers named by `skip`.

A checkpoint already saved in the same bitsandbytes format loads as it is (the record then comes
from the checkpoint's config); any other quantized checkpoint is refused.
"""

from __future__ import annotations

import time
from typing import Any

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.models.quant.base import (
    QuantizationReport,
    Quantizer,
    describe_quantization_config,
    library_version,
    parse_bool,
    parse_patterns,
    quantization_config_dict,
)
from lm_eval_bias.models.quant.registry import register_quantizer

_COMPUTE_DTYPES = ("float32", "bfloat16", "float16")


class _BitsAndBytes(Quantizer):
    """Shared by the three bitsandbytes formats; subclasses set `_format` and `bits`."""

    requires = ("bitsandbytes", "accelerate")
    install = 'pip install "lm-eval-bias[bnb]"  (or: pip install "bitsandbytes>=0.45")'
    stage = "load"
    _format: str = ""
    bits: int = 0

    def __init__(self, skip=None) -> None:
        self.skip = parse_patterns(skip)
        self._loaded_from_checkpoint = False
        self._start = None

    # -- checkpoint and loading ----------------------------------------------------------------

    def check_checkpoint(self, checkpoint_config: Any) -> None:
        if checkpoint_config is None:
            return
        found = describe_quantization_config(checkpoint_config)
        if found != f"bitsandbytes {self._format}":
            super().check_checkpoint(checkpoint_config)
        self._loaded_from_checkpoint = True
        self.stage = "checkpoint"  # loaded as saved, not quantized here

    def _config_kwargs(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_kwargs(self, checkpoint_config: Any = None) -> dict[str, Any]:
        self._start = time.perf_counter()
        if self._loaded_from_checkpoint:
            return {}  # the checkpoint's own BitsAndBytesConfig, read by HFLM
        from transformers import BitsAndBytesConfig

        kwargs = self._config_kwargs()
        if self.skip:
            kwargs["llm_int8_skip_modules"] = [*self.skip, "lm_head"]
        return {"quantization_config": BitsAndBytesConfig(**kwargs)}

    # -- after loading -------------------------------------------------------------------------

    def quantize(self, model) -> QuantizationReport:
        """Check that loading produced bitsandbytes layers and report them."""
        from lm_eval_bias.models.quant._inspect import (
            dense_bytes,
            model_bytes,
            model_dtype,
            require_quantized,
        )
        from lm_eval_bias.models.quant.rtn import matches

        if self._start is None:  # a model object given as `pretrained`: nothing was loaded here
            raise BiasEvalError(
                f"quant={self.name} quantizes while loading, so it needs a checkpoint path as "
                f"pretrained=, not an already-built model")
        found = require_quantized(
            self.name, model,
            lambda name: name.split(".")[-1] == "lm_head" or any(matches(name, p)
                                                                  for p in self.skip))
        wrong = [cls for cls in found.classes if cls not in ("Linear8bitLt", "Linear4bit")]
        if wrong:
            raise BiasEvalError(f"quant={self.name}: expected bitsandbytes layers, found "
                                f"{', '.join(wrong)}; report this")
        qc = quantization_config_dict(getattr(model.config, "quantization_config", None))
        settings = self._settings(qc)
        settings["skip"] = list(self.skip)
        return QuantizationReport(
            method=self.name,
            library="bitsandbytes",
            library_version=library_version("bitsandbytes"),
            bits=self.bits,
            settings=settings,
            n_modules_quantized=len(found.quantized),
            n_modules_skipped=len(found.unquantized),
            modules_skipped=found.unquantized,
            model_bytes_before=dense_bytes(model, found.quantized, model_dtype(model)),
            model_bytes_after=model_bytes(model),
            simulated=False,
            quantize_seconds=time.perf_counter() - self._start,
            checkpoint_format=(describe_quantization_config(qc)
                               if self._loaded_from_checkpoint else None),
        )

    def _settings(self, qc: dict[str, Any]) -> dict[str, Any]:
        return {}


@register_quantizer("bnb8")
class BnB8Quantizer(_BitsAndBytes):
    """LLM.int8(): int8 weights per output row. Options: threshold (outlier threshold of the
    activations, default 6.0; 0 disables the 16-bit outlier path), skip (extra layers kept in
    full precision, "|"-separated; lm_head always is)."""

    options = ("threshold", "skip")
    _format = "int8"
    bits = 8

    def __init__(self, threshold=6.0, skip=None) -> None:
        super().__init__(skip=skip)
        try:
            self.threshold = float(threshold)
        except (TypeError, ValueError):
            raise BiasEvalError(f"quant=bnb8: threshold must be a number, got {threshold!r}; "
                                f"pass e.g. threshold=6.0") from None

    def _config_kwargs(self) -> dict[str, Any]:
        return {"load_in_8bit": True, "llm_int8_threshold": self.threshold}

    def _settings(self, qc: dict[str, Any]) -> dict[str, Any]:
        return {"group_size": -1, "threshold": qc.get("llm_int8_threshold", self.threshold)}


class _BitsAndBytes4(_BitsAndBytes):
    """4-bit bitsandbytes. Options: bnb_4bit_compute_dtype (float32, bfloat16 or float16; default
    float32, exact on CPU), double_quant (default false), skip."""

    options = ("bnb_4bit_compute_dtype", "double_quant", "skip")
    bits = 4
    BLOCK_SIZE = 64  # bitsandbytes' block size for 4-bit weights

    def __init__(self, bnb_4bit_compute_dtype="float32", double_quant=False, skip=None) -> None:
        super().__init__(skip=skip)
        dtype = str(bnb_4bit_compute_dtype).strip().lower().removeprefix("torch.")
        if dtype not in _COMPUTE_DTYPES:
            raise BiasEvalError(f"quant={self.name}: bnb_4bit_compute_dtype must be one of "
                                f"{', '.join(_COMPUTE_DTYPES)}, got {bnb_4bit_compute_dtype!r}")
        self.compute_dtype = dtype
        self.double_quant = parse_bool(self.name, "double_quant", double_quant)

    def _config_kwargs(self) -> dict[str, Any]:
        import torch

        return {"load_in_4bit": True, "bnb_4bit_quant_type": self._format,
                "bnb_4bit_compute_dtype": getattr(torch, self.compute_dtype),
                "bnb_4bit_use_double_quant": self.double_quant}

    def _settings(self, qc: dict[str, Any]) -> dict[str, Any]:
        dtype = qc.get("bnb_4bit_compute_dtype", self.compute_dtype)
        return {"group_size": self.BLOCK_SIZE,
                "bnb_4bit_compute_dtype": str(dtype).removeprefix("torch."),
                "double_quant": bool(qc.get("bnb_4bit_use_double_quant", self.double_quant))}


@register_quantizer("nf4")
class NF4Quantizer(_BitsAndBytes4):
    __doc__ = "NormalFloat-4 (QLoRA's format). " + _BitsAndBytes4.__doc__
    _format = "nf4"


@register_quantizer("fp4")
class FP4Quantizer(_BitsAndBytes4):
    __doc__ = "4-bit float (e2m1). " + _BitsAndBytes4.__doc__
    _format = "fp4"
