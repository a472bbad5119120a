"""The quantizer interface, modelled on transformers' `quantizers/`: one class per method.

A method is a `Quantizer` subclass in its own module of this package, registered under the value
users pass as `quant=` (see `registry.py`). `HFQuantLM` calls its hooks in this order:

1. `__init__(**options)`: parse and check the model_args the method owns (named in `options`).
   Values arrive as lm-eval parsed them ("4" -> 4, "true" -> True, "-1" -> -1, other text as str)
   or as plain Python values in-process; the `parse_*` helpers below accept both.
2. `validate_environment()`: check that the method's libraries (`requires`) import, before any
   model is loaded. The error names the `install` line.
3. `check_checkpoint(checkpoint_config)`: the checkpoint's own `quantization_config` (or None),
   read before the weights are loaded. A method refuses a checkpoint it cannot start from
   (quant=nf4 on a GPTQ checkpoint); `none` there becomes `prequantized` (see `HFQuantLM`).
4. `load_kwargs(checkpoint_config)`: extra `from_pretrained` kwargs, for methods that quantize
   while loading (`stage = "load"`: bitsandbytes). Post-load methods return {}.
5. `bind_tokenizer(tokenizer)`: the model's tokenizer, for methods that calibrate on text.
6. `quantize(model)`: change the loaded model in place (post-load methods) or check what loading
   did (load-time methods), and return a `QuantizationReport`, which reaches lm-eval's results
   JSON as `config.quantization`. Either way it must verify that the method took effect (see
   `_inspect.count_quantized`) and raise BiasEvalError when no module was quantized.

This module imports neither torch nor any quantization library: a method imports its own.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from lm_eval_bias._versions import package_version
from lm_eval_bias.errors import BiasEvalError

if TYPE_CHECKING:
    from torch import nn


@dataclass(kw_only=True)
class QuantizationReport:
    """What a quantizer did, as recorded in the results JSON (`config.quantization`).

    `model_bytes_before` is the bytes of the model's parameters in memory before quantizing
    (load-time methods: what the quantized layers would take unquantized, in the model's dtype);
    `model_bytes_after` the bytes of its quantized representation (for a simulated method, an
    estimate: memory itself does not shrink; for a real one, the storage of every parameter and
    buffer, quantized tensors counted by their packed data and scales). `settings` holds the
    method's own options (e.g. group_size, sym, skip) and is written flat beside the common keys.
    Keys left as None are omitted from `to_dict()`.

    Set by `HFQuantLM`, the same for every method: `stage` ("load": quantized inside
    `from_pretrained`; "post_load"; "checkpoint": the checkpoint was quantized already),
    `load_seconds` (the whole `from_pretrained`), and `kl_fixed_text`: the mean over the tokens of
    a fixed text (`kl_text_id`, see `_inspect.FIXED_TEXTS`) of KL(p_unquantized || p_quantized)
    between next-token distributions, in nats. Where no unquantized reference is at hand
    (load-time and checkpoint stages, which would need a second load) `kl_unavailable` says why.
    """

    method: str
    library: str | None = None
    library_version: str | None = None
    bits: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    n_modules_quantized: int | None = None
    n_modules_skipped: int | None = None
    modules_skipped: list[str] | None = None
    mean_bits_per_weight: float | None = None
    model_bytes_before: int
    model_bytes_after: int
    simulated: bool | None = None
    quantize_seconds: float | None = None
    mean_relative_error: float | None = None
    act_bits: int | None = None
    checkpoint_format: str | None = None
    stage: str | None = None
    load_seconds: float | None = None
    kl_fixed_text: float | None = None
    kl_text_id: str | None = None
    kl_unavailable: str | None = None

    def to_dict(self) -> dict[str, Any]:
        common = asdict(self)
        settings = common.pop("settings")
        clash = set(settings) & set(common)
        if clash:  # a method's option must not overwrite a common key
            raise ValueError(f"settings keys {sorted(clash)} clash with QuantizationReport fields")
        record = {}
        for key, value in common.items():  # settings right after bits, for a readable JSON
            record[key] = value
            if key == "bits":
                record.update(settings)
        return {key: value for key, value in record.items() if value is not None}


class Quantizer:
    """Base class of a quantization method. Subclasses set the class attributes and `quantize`.

    Attributes:
        name: the `quant=` value; set by the registry decorator.
        options: names of the model_args this method takes (besides `quant`); `HFQuantLM` pops
            every registered method's options from the model_args, so an option given to a
            method that does not take it is an error, never a silent pass to `from_pretrained`.
            Names must therefore differ from HFLM's own arguments (dtype, device, ...).
        requires: import names the method needs (checked by `validate_environment`).
        install: the pip line that provides `requires`, quoted in the error.
        stage: "post_load" (the default: `quantize` changes the loaded model) or "load" (the
            method quantizes inside `from_pretrained` through `load_kwargs`; `quantize` only
            checks and reports) or "checkpoint" (the checkpoint is quantized already).
    """

    name: ClassVar[str] = ""
    options: ClassVar[tuple[str, ...]] = ()
    requires: ClassVar[tuple[str, ...]] = ()
    install: ClassVar[str] = ""
    stage: ClassVar[str] = "post_load"

    def __init__(self, **options: Any) -> None:
        if options:
            raise TypeError(f"{type(self).__name__} takes no options, got {sorted(options)}")

    def validate_environment(self) -> None:
        """Raise BiasEvalError if a library in `requires` cannot be imported."""
        missing = [module for module in self.requires if importlib.util.find_spec(module) is None]
        if missing:
            raise BiasEvalError(
                f"quant={self.name} needs {', '.join(missing)}, which is not installed; "
                f"run: {self.install or 'pip install ' + ' '.join(missing)}"
            )

    def check_checkpoint(self, checkpoint_config: Any) -> None:
        """Refuse a checkpoint whose config carries a `quantization_config` (a dict or a
        transformers `QuantizationConfigMixin`; None for an unquantized checkpoint).

        The default suits a method that starts from full-precision weights: quantizing an
        already-quantized model again would mix two formats (and transformers would silently
        prefer the checkpoint's own config). A method that can load its own format overrides
        this and accepts that one.
        """
        if checkpoint_config is None:
            return
        raise BiasEvalError(
            f"quant={self.name}: the checkpoint is already quantized "
            f"({describe_quantization_config(checkpoint_config)}); drop quant= to evaluate it as "
            f"it is (recorded as quant=prequantized), or start from an unquantized checkpoint")

    def load_kwargs(self, checkpoint_config: Any = None) -> dict[str, Any]:
        """Extra keyword arguments for `from_pretrained` (e.g. `quantization_config`), for a
        method that quantizes while loading. Called after `check_checkpoint`, just before the
        weights are loaded; a post-load method (the default) returns {}. The returned
        `quantization_config` replaces the checkpoint's own (None for a plain checkpoint)."""
        return {}

    def bind_tokenizer(self, tokenizer: Any) -> None:
        """Called by `HFQuantLM` just before `quantize` with the model's tokenizer. A method that
        calibrates on text (rtn_act's SmoothQuant) keeps it; the default ignores it."""

    def quantize(self, model: nn.Module) -> QuantizationReport:
        """Quantize `model` in place (on whatever device it lives) and report what was done."""
        raise NotImplementedError


def quantization_config_dict(config: Any) -> dict[str, Any]:
    """A checkpoint's `quantization_config` as a plain dict (it may be a transformers
    `QuantizationConfigMixin` object, a dict, or None)."""
    if config is None:
        return {}
    if isinstance(config, dict):
        return dict(config)
    if hasattr(config, "to_dict"):
        return config.to_dict()
    return dict(vars(config))


def describe_quantization_config(config: Any) -> str:
    """A short name of a checkpoint's quantization format, e.g. "bitsandbytes nf4",
    "torchao Int8WeightOnlyConfig", "gptq 4-bit", "compressed-tensors pack-quantized"."""
    qc = quantization_config_dict(config)
    method = str(getattr(qc.get("quant_method"), "value", qc.get("quant_method", "unknown")))
    if method == "bitsandbytes":
        if qc.get("load_in_4bit") or qc.get("_load_in_4bit"):
            return f"bitsandbytes {qc.get('bnb_4bit_quant_type', 'fp4')}"
        return "bitsandbytes int8"
    if method == "torchao":
        quant_type = qc.get("quant_type")
        if isinstance(quant_type, dict):
            inner = quant_type.get("default", quant_type)
            quant_type = inner.get("_type", inner) if isinstance(inner, dict) else inner
        name = quant_type if isinstance(quant_type, str) else type(quant_type).__name__
        return f"torchao {name}"
    if method in ("gptq", "awq") and qc.get("bits"):
        return f"{method} {qc['bits']}-bit"
    if method == "compressed-tensors" and qc.get("format"):
        return f"compressed-tensors {qc['format']}"
    if method == "quanto" and qc.get("weights"):
        return f"quanto {qc['weights']}"
    return method


def parameter_bytes(model: nn.Module) -> int:
    """Bytes of the model's parameters in memory (tied parameters counted once)."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


library_version = package_version  # the installed version of a distribution, None when absent


# Option parsing. lm-eval splits model_args on "," and casts each value, so a value may arrive as
# a str, an int or a bool; in-process callers pass Python values. Each helper accepts both and
# raises one line naming the method, the option, the bad value and an example.


def parse_int(method: str, option: str, value: Any, example: str) -> int:
    """An int from 4, "4", 4.0 or "-1"; never from a bool (True is an int in Python)."""
    if isinstance(value, bool):
        pass
    elif isinstance(value, int):
        return value
    elif isinstance(value, float) and value.is_integer():
        return int(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.lstrip("+-").isdigit():
            return int(text)
    raise BiasEvalError(f"quant={method}: {option} must be an integer, got {value!r}; "
                        f"pass e.g. {option}={example}")


_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0"}


def parse_bool(method: str, option: str, value: Any) -> bool:
    """A bool from True/False, 1/0 or the strings true/false/yes/no/1/0 (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise BiasEvalError(f"quant={method}: {option} must be true or false, got {value!r}")


def parse_patterns(value: Any) -> tuple[str, ...]:
    """Patterns from "a|b" (lm-eval splits model_args on commas, so lists use "|"), a list of
    str, or None / "" / "none" for no pattern at all."""
    if value is None:
        return ()
    if isinstance(value, str):
        parts = value.split("|")
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        parts = list(value)
    else:
        raise BiasEvalError(f"module patterns must be text like 'lm_head|mlp.down_proj', "
                            f"got {value!r}")
    patterns = tuple(p.strip() for p in parts if p.strip())
    if [p.lower() for p in patterns] == ["none"]:
        return ()
    return patterns
