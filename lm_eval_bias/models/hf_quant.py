"""`hf-quant`: lm-eval's `hf` model, quantized right after it is loaded.

    lm_eval run --model hf-quant \\
        --model_args pretrained=HuggingFaceTB/SmolLM2-135M,quant=rtn,bits=4,group_size=64 ...

Every `hf` model_arg keeps working. Added: `quant` (a name in the quantizer registry; default
none) and the options of the chosen method (rtn: bits, group_size, sym, skip; lists use "|"
because lm-eval splits model_args on commas). What was done reaches the results JSON as
`config.quantization` (see `QuantizationReport`).

Methods: `lm_eval_bias/models/quant/`, one module each; `QUANTIZERS.names()` lists them, and the
"Quantization" table of README.md describes them (the only copy of that table; a test checks it
against the registry).

lm-eval's `autogptq=true` / `gptqmodel=true` are routed to quant=gptq (`route_legacy_gptq`).

A checkpoint that is already quantized is evaluated as saved when quant= is not given (or none)
and recorded as `prequantized` with its format; another method on it is a one-line error.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import os
import time
from pathlib import Path

from lm_eval.models.huggingface import HFLM

from lm_eval_bias.checkpoint_info import checkpoint_record
from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.models.prefix_scoring import PrefixScoringMixin, parse_prefix_cache
from lm_eval_bias.models.quant import QUANTIZERS
from lm_eval_bias.models.quant._inspect import FIXED_TEXT_ID, fixed_text_logprobs, mean_kl
from lm_eval_bias.models.repeat_sampling import RepeatSamplingMixin, parse_repeat_sampling

eval_logger = logging.getLogger(__name__)


def _looks_like_a_path(name: str) -> bool:
    # hub ids are "name" or "org/name"; anything else with a slash, or rooted, is a folder
    return (name.startswith(("/", "./", "../", "~", "\\")) or name.count("/") > 1
            or (os.sep != "/" and os.sep in name))


def check_checkpoint_location(name: str, *, revision: str = "main", subfolder: str = "",
                              gguf_file: str | None = None) -> None:
    """Refuse, before transformers gets to it (its errors are multi-line tracebacks about repo id
    syntax), a `pretrained=` that cannot load: a local path that does not exist, is a file, or has
    no config.json; or, offline (HF_HUB_OFFLINE), a hub id that is not in the local cache."""
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise BiasEvalError(f"pretrained={name} is a file; give the checkpoint folder (the one "
                                "save_pretrained wrote, with config.json)")
        folder = path / subfolder if subfolder else path
        if gguf_file is None and not (folder / "config.json").is_file():
            raise BiasEvalError(f"pretrained={name}: no config.json in {folder}; give the folder "
                                "save_pretrained wrote, or a Hugging Face repo id")
        return
    if _looks_like_a_path(name):
        raise BiasEvalError(f"checkpoint folder not found: pretrained={name}; give an existing "
                            "local folder (with config.json) or a Hugging Face repo id such as "
                            "HuggingFaceTB/SmolLM2-135M")
    try:
        from huggingface_hub import constants, try_to_load_from_cache

        if not constants.HF_HUB_OFFLINE or gguf_file is not None:
            return  # online: transformers downloads it (and names a missing repo itself)
        filename = f"{subfolder}/config.json" if subfolder else "config.json"
        cached = try_to_load_from_cache(name, filename, revision=revision)
    except Exception:  # noqa: BLE001 - an odd repo id: let transformers say what it makes of it
        return
    if not isinstance(cached, str):
        raise BiasEvalError(f"pretrained={name} is not a local folder and not in the Hugging Face "
                            f"cache, and HF_HUB_OFFLINE is set; download it once online "
                            f"(hf download {name}) or give a local checkpoint folder")


def check_model_arg_names(kwargs: dict) -> None:
    """Refuse a model_args key that is a near miss of one hf-quant or HFLM takes (`group_sise`):
    HFLM would hand it to `from_pretrained`, which fails, or ignores it, only after loading.
    Keys unlike any of ours still go to `from_pretrained`, as with `--model hf`."""
    from transformers import PreTrainedModel

    ours = (set(inspect.signature(HFLM.__init__).parameters) | QUANTIZERS.option_names()
            | {"quant", "prefix_cache", "repeat_sampling", "load_seconds"}) - {"self", "kwargs"}
    loader = set(inspect.signature(PreTrainedModel.from_pretrained).parameters)
    for key in kwargs:
        if key in ours or key in loader:
            continue
        close = difflib.get_close_matches(key, sorted(ours), n=1, cutoff=0.8)
        if close:
            raise BiasEvalError(f"hf-quant: unknown model_args key {key}={kwargs[key]}; did you "
                                f"mean {close[0]}?")


def build_quantizer(pretrained, quant, load_seconds, kwargs: dict):
    """The quantizer hf-quant's arguments ask for, its library checked, before anything loads;
    takes the quantization arguments out of `kwargs` (the rest go to HFLM). `HFQuantLM.__init__`
    and the pre-flight `check_model_args` both build it here."""
    if load_seconds is not None and isinstance(pretrained, str):
        raise BiasEvalError("hf-quant: load_seconds is only for a model object passed as "
                            "pretrained (in-process use); remove it from model_args")
    check_model_arg_names(kwargs)
    # HFLM has no quantization argument and hands unknown model_args to `from_pretrained`, so
    # every registered method's options are taken out here; a method refuses the ones it does
    # not take (quant=none,bits=4 is an error, not a silent full-precision run).
    options = {key: kwargs.pop(key) for key in QUANTIZERS.option_names() if key in kwargs}
    # lm-eval parses the text "none" into None.
    method = "none" if quant is None else str(quant).strip().lower()
    method = route_legacy_gptq(method, kwargs.pop("autogptq", False),
                               kwargs.pop("gptqmodel", False))
    quantizer = QUANTIZERS.build(method, options)
    quantizer.validate_environment()  # before spending minutes on loading
    return quantizer


def check_model_args(model_args: dict) -> None:
    """Every check `HFQuantLM.__init__` makes of its arguments before it loads anything, on a copy
    and loading nothing: the `lm_eval` command runs it before the tasks' data is read
    (`lm_eval_bias._preflight`), so that a typo costs no data loading either."""
    kwargs = dict(model_args)
    if "pretrained" not in kwargs:
        raise BiasEvalError("hf-quant needs pretrained=<checkpoint folder or Hugging Face repo id> "
                            "in --model_args")
    pretrained = kwargs.pop("pretrained")
    build_quantizer(pretrained, kwargs.pop("quant", "none"), kwargs.pop("load_seconds", None),
                    kwargs)
    if isinstance(pretrained, (str, os.PathLike)):
        check_checkpoint_location(str(pretrained), revision=kwargs.get("revision") or "main",
                                  subfolder=kwargs.get("subfolder") or "",
                                  gguf_file=kwargs.get("gguf_file"))
    parse_prefix_cache(kwargs.pop("prefix_cache", True))


def route_legacy_gptq(method: str, autogptq, gptqmodel) -> str:
    """The method that lm-eval's own `autogptq=` / `gptqmodel=` model_args ask for: quant=gptq.

    HFLM loads with auto-gptq (which no longer imports with transformers 5) or with gptqmodel's
    own model class, outside transformers; hf-quant loads GPTQ through transformers + gptqmodel
    instead (a GPTQ checkpoint as saved, a plain one calibrated by quant=gptq), so that the model
    is the same `PreTrainedModel` whatever the flag, checked and recorded alike.
    """
    given = [(name, value) for name, value in (("autogptq", autogptq), ("gptqmodel", gptqmodel))
             if value not in (False, None, "", "false", "False")]
    if not given:
        return method
    name, value = given[0]
    if value is not True and str(value).strip().lower() not in ("true", "1", "yes"):
        raise BiasEvalError(
            f"hf-quant: {name}={value} names a weights file, which transformers' GPTQ loader "
            f"does not take (it reads model.safetensors or its index); rename the file in the "
            f"checkpoint folder and pass {name}=true")
    if method not in ("none", "gptq"):
        raise BiasEvalError(f"hf-quant: {name}=true means quant=gptq, but quant={method} was "
                            f"given too; keep one of them")
    return "gptq"


class HFQuantLM(PrefixScoringMixin, RepeatSamplingMixin, HFLM):
    """`HFLM` plus one quantization step. Registered as `hf-quant` by `lm_eval_bias._plugin`.

    An already-built model passed as `pretrained` is quantized in place; `load_seconds` (only
    with such a model) is how long loading it took, recorded as a normal load's would be.
    """

    def __init__(self, pretrained, quant: str | None = "none", load_seconds: float | None = None,
                 **kwargs) -> None:
        self._quantizer = build_quantizer(pretrained, quant, load_seconds, kwargs)
        if isinstance(pretrained, (str, os.PathLike)):
            check_checkpoint_location(str(pretrained), revision=kwargs.get("revision") or "main",
                                      subfolder=kwargs.get("subfolder") or "",
                                      gguf_file=kwargs.get("gguf_file"))
        self._quant_report = None
        self._load_seconds = None
        # prefix_cache=true (default): score each distinct context once (models/prefix_scoring.py)
        self.prefix_cache = parse_prefix_cache(kwargs.pop("prefix_cache", True))
        # repeat_sampling=true (default): k repeats of a prompt from one prefill (repeat_sampling.py)
        self.repeat_sampling = parse_repeat_sampling(kwargs.pop("repeat_sampling", True))

        super().__init__(pretrained=pretrained, **kwargs)

        if self._quant_report is None:  # a model object as `pretrained` skips `_create_model`
            config = getattr(getattr(self._model, "config", None), "quantization_config", None)
            self._use_checkpoint_config(config)
            # `lm-eval-bias sweep` loads the weights once and passes copies: the record then
            # carries that load's time, as it would after `_create_model`
            self._load_seconds = load_seconds
            self._quantize()

    def _create_model(self, *args, **kwargs) -> None:
        # HFLM hands the checkpoint's own `quantization_config` (None for a plain checkpoint);
        # the method checks it and may replace it by its own (load-time methods, e.g. nf4).
        checkpoint_config = kwargs.get("quantization_config")
        self._use_checkpoint_config(checkpoint_config)
        kwargs.update(self._quantizer.load_kwargs(checkpoint_config))
        start = time.perf_counter()
        super()._create_model(*args, **kwargs)
        self._load_seconds = time.perf_counter() - start
        # Weights are now on their device (HFLM loads with device_map={"": device}) and PEFT or
        # delta weights are applied, so the weights we quantize are the ones evaluated.
        self._quantize()

    def _use_checkpoint_config(self, checkpoint_config) -> None:
        """An already-quantized checkpoint without quant= (or quant=none) is evaluated as saved
        (`prequantized`); any other method decides in `check_checkpoint` (most refuse)."""
        if checkpoint_config is not None and self._quantizer.name == "none":
            self._quantizer = QUANTIZERS.build("prequantized", {})
        self._quantizer.check_checkpoint(checkpoint_config)

    def _quantize(self) -> None:
        quantizer = self._quantizer
        measure = quantizer.name != "none"
        reference = None
        if measure and quantizer.stage == "post_load":
            # the unquantized model is at hand only now: one forward pass over a fixed text
            reference = fixed_text_logprobs(self._model, self.tokenizer)
        quantizer.bind_tokenizer(self.tokenizer)
        self._quant_report = report = quantizer.quantize(self._model)
        if measure:
            report.stage = quantizer.stage
            report.load_seconds = self._load_seconds
            if reference is not None:
                report.kl_fixed_text = mean_kl(
                    reference, fixed_text_logprobs(self._model, self.tokenizer))
                report.kl_text_id = FIXED_TEXT_ID
            else:
                report.kl_unavailable = (
                    "quantized while loading" if quantizer.stage == "load"
                    else "the checkpoint was quantized already"
                ) + "; the unquantized reference would need a second load"
        record = report.to_dict()
        eval_logger.info("hf-quant: %s", {k: v for k, v in record.items()
                                          if k != "modules_skipped"})

    def get_model_info(self) -> dict:
        """HFLM's record plus `quantization`: this run's `QuantizationReport.to_dict()`, and
        `checkpoint`: the config sizes and stored parameter count (`checkpoint_info`) that
        `export --weights` compares a weights folder with."""
        folder = self.pretrained if isinstance(self.pretrained, (str, os.PathLike)) else None
        return {**super().get_model_info(), "quantization": self._quant_report.to_dict(),
                "checkpoint": checkpoint_record(self._model.config, folder)}
