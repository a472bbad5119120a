"""`quant=gptq`: GPTQ (Frantar et al. 2023, arXiv:2210.17323) at load time, calibrated on text.

    --model_args pretrained=...,quant=gptq,bits=4,group_size=128,calib=wikitext2,n_calib=128

After the unquantized model is loaded, every nn.Linear of its decoder blocks is quantized layer by
layer with GPTQ's second-order weight updates, using the activations of `n_calib` windows of
`calib_len` tokens drawn from `calib` (see `calibration.py`). The work is done exactly as
transformers does for `from_pretrained(..., quantization_config=GPTQConfig(...))`: optimum's
`GPTQQuantizer` driving gptqmodel (the maintained successor of auto-gptq, which no longer imports
with transformers 5). Doing it after loading rather than inside `from_pretrained` keeps the
unquantized model at hand for `kl_fixed_text`, and lets `lm-eval-bias sweep` start from weights
it loaded once. lm_head stays in full precision (as in GPTQ and transformers).

Options: bits (2, 3, 4 or 8; required), group_size (default 128; -1 = one group per output row),
sym (default true), desc_act (quantize columns in order of decreasing activation; default false),
damp_percent (Hessian dampening, default 0.1), calib (wikitext2 (default), c4, or a .txt/.jsonl
path), n_calib (default 128), calib_len (default 2048, or the model's context if shorter),
calib_seed (default 0).

On a checkpoint that is already GPTQ-quantized, quant=gptq loads it as saved, recorded as
quant=prequantized (calibration options are then refused). lm-eval's own `autogptq=` and
`gptqmodel=` model_args are routed here by `HFQuantLM`.
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
    parameter_bytes,
    parse_bool,
    parse_int,
    quantization_config_dict,
)
from lm_eval_bias.models.quant.registry import register_quantizer

BITS = (2, 3, 4, 8)  # what GPTQConfig and gptqmodel's kernels take
# Defaults of the options the user leaves out. bits has none (required to calibrate); calib_len is
# DEFAULT_CALIB_LEN or the model's context if shorter. 128 windows of 2048 tokens are the GPTQ
# paper's calibration; damp_percent 0.1 is GPTQ's and transformers' default.
DEFAULTS = {"group_size": 128, "sym": True, "desc_act": False, "damp_percent": 0.1,
            "calib": "wikitext2", "n_calib": 128, "calib_seed": 0}
DEFAULT_CALIB_LEN = 2048
CALIBRATION_OPTIONS = ("calib", "n_calib", "calib_len", "calib_seed", "desc_act", "damp_percent",
                       "sym")


@register_quantizer("gptq")
class GPTQQuantizer(Quantizer):
    """GPTQ with calibration, through optimum and gptqmodel (see the module docstring)."""

    options = ("bits", "group_size", "sym", "desc_act", "damp_percent", "calib", "n_calib",
               "calib_len", "calib_seed")
    requires = ("gptqmodel", "optimum")
    install = ('pip install "lm-eval-bias[gptq]"  (with a CPU torch: pip install --no-deps '
               '-r requirements-gptq-cpu.txt, see the README)')

    def __init__(self, bits=None, group_size=None, sym=None, desc_act=None, damp_percent=None,
                 calib=None, n_calib=None, calib_len=None, calib_seed=None) -> None:
        given = {"bits": bits, "group_size": group_size, "sym": sym, "desc_act": desc_act,
                 "damp_percent": damp_percent, "calib": calib, "n_calib": n_calib,
                 "calib_len": calib_len, "calib_seed": calib_seed}
        # which options the user gave: on a GPTQ checkpoint, calibration options are refused
        self._given = {name for name, value in given.items() if value is not None}
        group_size, sym, desc_act, damp_percent, calib, n_calib, calib_seed = (
            DEFAULTS[name] if given[name] is None else given[name]
            for name in ("group_size", "sym", "desc_act", "damp_percent", "calib", "n_calib",
                         "calib_seed"))
        self.bits = None if bits is None else parse_int("gptq", "bits", bits, "4")
        if self.bits is not None and self.bits not in BITS:
            raise BiasEvalError(f"quant=gptq: bits must be one of {', '.join(map(str, BITS))}, "
                                f"got {self.bits}; pass e.g. bits=4")
        self.group_size = parse_int("gptq", "group_size", group_size, "128")
        if self.group_size != -1 and self.group_size <= 0:
            raise BiasEvalError(f"quant=gptq: group_size must be a positive number of input "
                                f"features or -1 (one group per output row), got "
                                f"{self.group_size}; pass e.g. group_size=128")
        self.sym = parse_bool("gptq", "sym", sym)
        self.desc_act = parse_bool("gptq", "desc_act", desc_act)
        try:
            self.damp_percent = float(damp_percent)
        except (TypeError, ValueError):
            self.damp_percent = -1.0
        if isinstance(damp_percent, bool) or not 0.0 < self.damp_percent < 1.0:
            raise BiasEvalError(f"quant=gptq: damp_percent must be a number between 0 and 1, "
                                f"got {damp_percent!r}; pass e.g. damp_percent=0.1")
        self.calib = str(calib).strip()
        if not self.calib:
            raise BiasEvalError("quant=gptq: calib is empty; pass calib=wikitext2, calib=c4 or "
                                "the path of a .txt or .jsonl file")
        self.n_calib = parse_int("gptq", "n_calib", n_calib, "128")
        if self.n_calib < 1:
            raise BiasEvalError(f"quant=gptq: n_calib must be at least 1, got {self.n_calib}")
        self.calib_len = None if calib_len is None else parse_int("gptq", "calib_len",
                                                                   calib_len, "2048")
        if self.calib_len is not None and self.calib_len < 1:
            raise BiasEvalError(f"quant=gptq: calib_len must be at least 1 token, got "
                                f"{self.calib_len}")
        self.calib_seed = parse_int("gptq", "calib_seed", calib_seed, "0")
        self._tokenizer = None
        self._as_saved = None  # a PrequantizedQuantizer, on a GPTQ checkpoint

    # -- checkpoint ----------------------------------------------------------------------------

    def check_checkpoint(self, checkpoint_config: Any) -> None:
        """A plain checkpoint is calibrated (bits needed); a GPTQ one is evaluated as saved and
        recorded as quant=prequantized, as it would be without quant= (so runs of the same
        checkpoint pool together); any other quantized checkpoint is refused."""
        if checkpoint_config is None:
            if self.bits is None:
                raise BiasEvalError(f"quant=gptq needs bits ({', '.join(map(str, BITS))}); pass "
                                    f"e.g. bits=4")
            return
        found = describe_quantization_config(checkpoint_config)
        if not found.startswith("gptq"):
            super().check_checkpoint(checkpoint_config)
        calibration = sorted(self._given & set(CALIBRATION_OPTIONS))
        if calibration:
            raise BiasEvalError(
                f"quant=gptq: the checkpoint is GPTQ-quantized already ({found}), so "
                f"{', '.join(calibration)} cannot apply; drop them to evaluate it as saved")
        qc = quantization_config_dict(checkpoint_config)
        for option in ("bits", "group_size"):
            if option in self._given and qc.get(option) != getattr(self, option):
                raise BiasEvalError(
                    f"quant=gptq: {option}={getattr(self, option)} but the checkpoint is GPTQ "
                    f"with {option}={qc.get(option)}; drop {option}= to evaluate it as saved")
        from lm_eval_bias.models.quant.registry import QUANTIZERS

        self._as_saved = QUANTIZERS.build("prequantized", {})
        self._as_saved.check_checkpoint(checkpoint_config)
        self.stage = "checkpoint"

    def bind_tokenizer(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    # -- quantizing ----------------------------------------------------------------------------

    def quantize(self, model) -> QuantizationReport:
        if self._as_saved is not None:
            return self._as_saved.quantize(model)
        from lm_eval_bias.models.quant._inspect import (
            model_bytes,
            require_all_quantized,
            require_quantized,
            select_linears,
        )

        # HFQuantLM ran check_checkpoint (bits given) and bind_tokenizer before this
        start = time.perf_counter()
        targets, _ = select_linears("gptq", model, ("lm_head",), self.group_size)
        calib_len = self._calib_len(model)
        windows, calib_record = self._windows(calib_len)
        bytes_before = parameter_bytes(model)

        from optimum.gptq import GPTQQuantizer as OptimumGPTQ
        from transformers import GPTQConfig

        config = GPTQConfig(bits=self.bits, group_size=self.group_size, sym=self.sym,
                            desc_act=self.desc_act, damp_percent=self.damp_percent,
                            dataset=windows, model_seqlen=calib_len)
        quantizer = OptimumGPTQ.from_dict(config.to_dict_optimum())
        quantizer.quantize_model(model, self._tokenizer)
        saved = quantizer.to_dict()
        saved["dataset"] = None  # the token windows; what they were is in the record
        model.config.quantization_config = GPTQConfig.from_dict(saved)

        found = require_quantized("gptq", model, lambda name: name.split(".")[-1] == "lm_head")
        require_all_quantized("gptq", model, [name for name, _ in targets])
        settings = {"group_size": self.group_size, "sym": self.sym, "desc_act": self.desc_act,
                    "damp_percent": self.damp_percent, **calib_record, "n_calib": self.n_calib,
                    "calib_len": calib_len, "calib_seed": self.calib_seed,
                    "kernel": sorted(found.classes),
                    "optimum_version": library_version("optimum")}
        return QuantizationReport(
            method=self.name,
            library="gptqmodel",
            library_version=library_version("gptqmodel"),
            bits=self.bits,
            settings=settings,
            n_modules_quantized=len(found.quantized),
            n_modules_skipped=len(found.unquantized),
            modules_skipped=found.unquantized,
            model_bytes_before=bytes_before,
            model_bytes_after=model_bytes(model),
            simulated=False,
            quantize_seconds=time.perf_counter() - start,
        )

    def _calib_len(self, model) -> int:
        context = getattr(model.config, "max_position_embeddings", None)
        if self.calib_len is None:
            return min(DEFAULT_CALIB_LEN, context) if isinstance(context, int) else \
                DEFAULT_CALIB_LEN
        if isinstance(context, int) and self.calib_len > context:
            raise BiasEvalError(f"quant=gptq: calib_len={self.calib_len} is longer than the "
                                f"model's context ({context} tokens); pass calib_len={context} "
                                f"or less")
        return self.calib_len

    def _windows(self, calib_len: int) -> tuple[list[dict[str, list[list[int]]]], dict[str, Any]]:
        from functools import lru_cache

        from lm_eval_bias.models.quant.calibration import draw_windows, load_calibration_text

        text = load_calibration_text(self.calib, "gptq")
        tokenizer = self._tokenizer

        @lru_cache(maxsize=4)  # wikitext2 is one long document, drawn n_calib times
        def tokens_of(index: int) -> tuple[int, ...]:
            return tuple(tokenizer(text.documents[index], add_special_tokens=False)["input_ids"])

        try:
            windows = draw_windows(len(text.documents), tokens_of, self.n_calib, calib_len,
                                   self.calib_seed)
        except BiasEvalError as error:
            raise BiasEvalError(f"quant=gptq: calib={self.calib}: {error}") from None
        # optimum's "already tokenized" form: one (1 x calib_len) example per window
        return ([{"input_ids": [w], "attention_mask": [[1] * len(w)]} for w in windows],
                text.record)
