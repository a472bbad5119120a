"""`quant=torchao_int8`, `quant=torchao_intx`, `quant=torchao_w8a8`: torchao's `quantize_`,
applied to the loaded model.

    --model_args pretrained=...,quant=torchao_intx,bits=4,group_size=64

torchao swaps each selected nn.Linear's weight for a quantized tensor subclass (real integer
storage, dequantized inside the matmul), after loading, so the unquantized model is at hand for
the fixed-text KL. The selection follows quant=rtn (`skip`, default lm_head; GPT-2 Conv1D layers,
which torchao skips silently, are refused).

- torchao_int8: `Int8WeightOnlyConfig`, int8 per output row.
- torchao_intx: `IntxWeightOnlyConfig`, 1 to 8 bits, per group of `group_size` input features
  (-1: per output row), symmetric unless sym=false. Codes are held unpacked, one int8 per weight
  (`model_bytes_after` is the real storage, not the packed size).
- torchao_w8a8: `Int8DynamicActivationInt8WeightConfig`, int8 weights per row and int8
  activations per token, quantized dynamically at every forward pass (real W8A8 arithmetic).

torchao's `Int4WeightOnlyConfig` needs a GPU packing format and fails on CPU, so it is not offered;
torchao_intx,bits=4 is the CPU equivalent.
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
    parse_bool,
    parse_int,
    parse_patterns,
)
from lm_eval_bias.models.quant.registry import register_quantizer

DEFAULT_SKIP = "lm_head"
DEFAULT_GROUP_SIZE = 128  # as quant=rtn, so that the two are comparable


class _TorchAo(Quantizer):
    """Shared by the torchao methods: subclasses build the torchao config."""

    requires = ("torchao",)
    install = 'pip install "lm-eval-bias[torchao]"  (or: pip install "torchao>=0.18")'
    bits: int = 8
    act_bits: int | None = None
    group_size: int | None = -1

    def __init__(self, skip=DEFAULT_SKIP) -> None:
        self.skip = parse_patterns(skip)

    def _config(self) -> Any:
        raise NotImplementedError

    def _settings(self) -> dict[str, Any]:
        return {"group_size": self.group_size, "skip": list(self.skip)}

    def quantize(self, model) -> QuantizationReport:
        from torchao.quantization import quantize_

        from lm_eval_bias.models.quant._inspect import (
            model_bytes,
            require_all_quantized,
            require_quantized,
            select_linears,
        )

        start = time.perf_counter()
        targets, skipped = select_linears(self.name, model, self.skip, self.group_size)
        names = {name for name, _ in targets}
        bytes_before = parameter_bytes(model)
        quantize_(model, self._config(), filter_fn=lambda module, fqn: fqn in names)
        require_all_quantized(self.name, model, sorted(names))
        found = require_quantized(self.name, model)
        return QuantizationReport(
            method=self.name,
            library="torchao",
            library_version=library_version("torchao"),
            bits=self.bits,
            settings=self._settings(),
            n_modules_quantized=len(found.quantized),
            n_modules_skipped=len(skipped),
            modules_skipped=skipped,
            model_bytes_before=bytes_before,
            model_bytes_after=model_bytes(model),
            simulated=False,
            quantize_seconds=time.perf_counter() - start,
            act_bits=self.act_bits,
        )


@register_quantizer("torchao_int8")
class TorchAoInt8Quantizer(_TorchAo):
    """int8 weight-only, per output row (torchao `Int8WeightOnlyConfig`). Options: skip."""

    options = ("skip",)

    def _config(self) -> Any:
        from torchao.quantization import Int8WeightOnlyConfig

        return Int8WeightOnlyConfig()


@register_quantizer("torchao_w8a8")
class TorchAoW8A8Quantizer(_TorchAo):
    """int8 weights per row, int8 dynamic per-token activations (torchao
    `Int8DynamicActivationInt8WeightConfig`). Options: skip."""

    options = ("skip",)
    act_bits = 8

    def _config(self) -> Any:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig

        return Int8DynamicActivationInt8WeightConfig()


@register_quantizer("torchao_intx")
class TorchAoIntxQuantizer(_TorchAo):
    """1- to 8-bit weight-only, grouped (torchao `IntxWeightOnlyConfig`). Options: bits (1..8,
    required), group_size (default 128; -1 = per output row), sym (default true), skip."""

    options = ("bits", "group_size", "sym", "skip")
    MIN_BITS, MAX_BITS = 1, 8

    def __init__(self, bits=None, group_size=DEFAULT_GROUP_SIZE, sym=True, skip=DEFAULT_SKIP):
        super().__init__(skip=skip)
        if bits is None:
            raise BiasEvalError("quant=torchao_intx needs bits (1..8); pass e.g. bits=4")
        self.bits = parse_int(self.name, "bits", bits, "4")
        if not self.MIN_BITS <= self.bits <= self.MAX_BITS:
            raise BiasEvalError(f"quant=torchao_intx: bits must be from 1 to 8, got {self.bits}; "
                                f"pass e.g. bits=4")
        self.group_size = parse_int(self.name, "group_size", group_size, "128")
        if self.group_size != -1 and self.group_size <= 0:
            raise BiasEvalError(f"quant=torchao_intx: group_size must be a positive number of "
                                f"input features or -1 (one group per output row), got "
                                f"{self.group_size}; pass e.g. group_size=128")
        self.sym = parse_bool(self.name, "sym", sym)

    def _settings(self) -> dict[str, Any]:
        return {**super()._settings(), "sym": self.sym}

    def _config(self) -> Any:
        import torch
        from torchao.quantization import IntxWeightOnlyConfig, MappingType
        from torchao.quantization.granularity import PerAxis, PerGroup

        return IntxWeightOnlyConfig(
            weight_dtype=getattr(torch, f"int{self.bits}"),
            granularity=PerAxis(0) if self.group_size == -1 else PerGroup(self.group_size),
            mapping_type=MappingType.SYMMETRIC if self.sym else MappingType.ASYMMETRIC,
        )
