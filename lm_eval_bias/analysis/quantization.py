"""Which backend ran a run, and how it was quantized, in the record fields `hf-quant` writes.

`hf-quant` records what it did in ``results["config"]["quantization"]`` (method, library, bits,
group_size, sym, act_bits, checkpoint_format, simulated, stage, ...). lm-eval's own ``hf`` and
``vllm`` models record nothing of the kind: their quantization is in the model args and in the
checkpoint's ``config.json`` (``quantization_config``). `run_quantization` maps each source to
the same fields, so that runs of every backend land on the right bits:

=====================  ==========================================================================
source                 read as
=====================  ==========================================================================
hf-quant record        itself (what the run recorded wins over anything read later)
checkpoint config      ``method: prequantized``, ``stage: checkpoint``, ``simulated: false`` and
                       the format's bits, group size, symmetry, activation bits
                       (`from_checkpoint_config`: GPTQ (also AutoGPTQ's quantize_config.json), AWQ,
                       compressed-tensors, bitsandbytes, fp8, quanto)
vLLM ``quantization=``  fp8 / ptpc_fp8 on an unquantized checkpoint: dynamic FP8 W8A8;
                       bitsandbytes on an unquantized checkpoint: vLLM's in-flight 4-bit; every
                       other value names the checkpoint's own format, read from its config
hf ``load_in_4bit`` /   bitsandbytes while loading (``fp4`` / ``nf4`` / ``bnb8``, as hf-quant
``load_in_8bit``        names them)
=====================  ==========================================================================

A run that says it is quantized (vLLM ``quantization=``, hf ``autogptq`` / ``gptqmodel``) but
whose checkpoint config cannot be read is refused (`UnknownQuantization`): it is never read as
unquantized. For ``hf`` and ``vllm`` runs the checkpoint config must be readable in any case
(the local folder of ``pretrained=``, or its ``config.json`` in the Hugging Face cache): a
quantized checkpoint says so only there.

Everything here but `read_checkpoint_config` is pure (no I/O).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: lm-eval ``--model`` names -> the engine that computes the log-likelihoods. Runs of different
#: engines differ numerically (kernels, batching, attention, sampling), so their items are not
#: paired unless allowed. hf-quant is lm-eval's HFLM plus a quantization step: at quant=none it
#: runs transformers exactly as ``hf`` does.
ENGINES = {"hf": "transformers", "hf-auto": "transformers", "huggingface": "transformers",
           "hf-quant": "transformers", "vllm": "vllm"}

#: lm-eval's other names of its HFLM model.
_HF_ALIASES = ("hf-auto", "huggingface")

#: vLLM ``quantization=`` values that quantize an unquantized checkpoint while loading.
VLLM_ON_THE_FLY = {
    "fp8": {"method": "fp8", "library": "vllm", "bits": 8, "weight_dtype": "float8",
            "act_bits": 8, "simulated": False, "stage": "load"},
    "ptpc_fp8": {"method": "ptpc_fp8", "library": "vllm", "bits": 8, "weight_dtype": "float8",
                 "act_bits": 8, "simulated": False, "stage": "load"},
    "bitsandbytes": {"method": "bnb4", "library": "vllm", "bits": 4, "simulated": False,
                     "stage": "load"},
}

_NONE_TEXT = ("", "none", "null", "auto", "false")


class UnknownQuantization(ValueError):
    """The run is (or may be) quantized but its bits cannot be determined; the message says what
    is missing (the caller names the run and, unless `hint` says otherwise, how to make the
    checkpoint config readable)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class CheckpointConfig:
    """What was found of a run's checkpoint config: `where` it was read (None: not readable) and
    its ``quantization_config`` (None for an unquantized checkpoint)."""
    where: str | None
    quantization_config: dict | None = None


def backend(model: Any) -> str | None:
    """The backend of a run from lm-eval's ``config.model`` (lm-eval's HFLM aliases read as
    ``hf``)."""
    if not isinstance(model, str) or not model:
        return None
    return "hf" if model in _HF_ALIASES else model


def engine(model: Any) -> str | None:
    """The engine behind a backend (`ENGINES`); an unknown backend is its own engine."""
    name = backend(model)
    return ENGINES.get(name, name) if name is not None else None


def _truthy(v: Any) -> bool:
    return v is True or str(v).strip().lower() in ("true", "1", "yes")


def _int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip()):
        return int(v)
    return None


def _name(v: Any) -> str:
    """A ``quant_method`` as text (an enum's value when given the object)."""
    return str(getattr(v, "value", v) if v is not None else "").strip().lower()


def _prequantized(library: str, fmt: str, bits: Any, **fields: Any) -> dict:
    b = _int(bits)
    if b is None:
        raise UnknownQuantization(f"its {fmt} quantization_config has no bit width")
    record = {"method": "prequantized", "library": library, "bits": b}
    record.update({k: v for k, v in fields.items() if v is not None})
    record.update(simulated=False, checkpoint_format=fmt, stage="checkpoint")
    return record


def _uniform_scheme(groups: dict, part: str) -> dict | None:
    """The `part` scheme ("weights", "input_activations") shared by every compressed-tensors
    scheme group; None when no group quantizes it. Mixed bit widths cannot be one number."""
    schemes = [g.get(part) for g in groups.values() if isinstance(g, dict)]
    schemes = [s for s in schemes if isinstance(s, dict)]
    if not schemes:
        return None
    keys = ("num_bits", "group_size", "strategy", "type", "symmetric")
    if any(tuple(s.get(k) for k in keys) != tuple(schemes[0].get(k) for k in keys)
           for s in schemes):
        raise UnknownQuantization(f"its compressed-tensors config_groups mix {part} schemes "
                                  f"({len(schemes)} groups), which have no single bit width")
    return schemes[0]


def _compressed_tensors(qc: dict) -> dict:
    groups = qc.get("config_groups")
    weights = _uniform_scheme(groups, "weights") if isinstance(groups, dict) else None
    if weights is None:
        raise UnknownQuantization("its compressed-tensors quantization_config quantizes no "
                                  "weights (no config_groups with weights)")
    acts = _uniform_scheme(groups, "input_activations")
    group_fmt = next((g.get("format") for g in groups.values()
                      if isinstance(g, dict) and g.get("format")), None)
    fmt = qc.get("format") or group_fmt
    strategy = weights.get("strategy")
    group_size = {"group": _int(weights.get("group_size")), "channel": -1}.get(strategy)
    return _prequantized(
        "compressed-tensors", f"compressed-tensors {fmt}" if fmt else "compressed-tensors",
        weights.get("num_bits"), group_size=group_size,
        sym=weights.get("symmetric") if isinstance(weights.get("symmetric"), bool) else None,
        strategy=strategy if strategy not in (None, "group", "channel") else None,
        weight_dtype="float8" if weights.get("type") == "float" else None,
        act_bits=_int(acts.get("num_bits")) if acts else None)


def _gptq(qc: dict) -> dict:
    bits = qc.get("bits")
    return _prequantized("gptqmodel", f"gptq {bits}-bit", bits,
                         group_size=_int(qc.get("group_size")),
                         sym=qc["sym"] if isinstance(qc.get("sym"), bool) else None,
                         desc_act=qc["desc_act"] if isinstance(qc.get("desc_act"), bool) else None)


def _awq(qc: dict) -> dict:
    bits = qc.get("bits", qc.get("w_bit"))
    zero_point = qc.get("zero_point")
    return _prequantized("gptqmodel", f"awq {bits}-bit", bits,
                         group_size=_int(qc.get("group_size", qc.get("q_group_size"))),
                         sym=(not zero_point) if isinstance(zero_point, bool) else None)


def _bitsandbytes(qc: dict) -> dict:
    if _truthy(qc.get("load_in_4bit")) or _truthy(qc.get("_load_in_4bit")):
        kind = str(qc.get("bnb_4bit_quant_type") or "fp4")
        return _prequantized("bitsandbytes", f"bitsandbytes {kind}", 4)
    if _truthy(qc.get("load_in_8bit")) or _truthy(qc.get("_load_in_8bit")):
        return _prequantized("bitsandbytes", "bitsandbytes int8", 8)
    raise UnknownQuantization("its bitsandbytes quantization_config sets neither load_in_4bit "
                              "nor load_in_8bit")


def _fp8(qc: dict) -> dict:
    block = qc.get("weight_block_size")
    return _prequantized("fp8", "fp8", 8, weight_dtype="float8", act_bits=8,
                         weight_block_size=list(block) if isinstance(block, (list, tuple))
                         else None)


def _quanto(qc: dict) -> dict:
    weights = str(qc.get("weights") or "")
    m = re.search(r"(\d+)", weights)
    act = re.search(r"(\d+)", str(qc.get("activations") or ""))
    return _prequantized("optimum-quanto", f"quanto {weights}", m.group(1) if m else None,
                         act_bits=int(act.group(1)) if act else None)


_FORMATS = {"compressed-tensors": _compressed_tensors, "gptq": _gptq, "awq": _awq,
            "bitsandbytes": _bitsandbytes, "fp8": _fp8, "fbgemm-fp8": _fp8,
            "fbgemm_fp8": _fp8, "quanto": _quanto}


def from_checkpoint_config(qc: Any) -> dict | None:
    """The record of a checkpoint's ``quantization_config`` (None for an unquantized one).
    Raises `UnknownQuantization` for a format whose bits this module does not read."""
    if not qc:
        return None
    if not isinstance(qc, dict):
        raise UnknownQuantization("its quantization_config is not a JSON object")
    method = _name(qc.get("quant_method"))
    mapper = _FORMATS.get(method)
    if mapper is None:
        known = ", ".join(sorted(k for k in _FORMATS if "_" not in k))
        raise UnknownQuantization(f"its quantization_config has quant_method={method or '?'}, "
                                  f"whose bits lm-eval-bias does not read (it reads {known})")
    return mapper(qc)


def from_hf_args(args: dict) -> dict | None:
    """bitsandbytes while loading, from ``--model hf`` args (HFLM hands ``load_in_4bit`` /
    ``load_in_8bit`` and ``bnb_4bit_*`` to ``from_pretrained``); None without them."""
    common = {"library": "bitsandbytes", "simulated": False, "stage": "load"}
    if _truthy(args.get("load_in_4bit")):
        kind = str(args.get("bnb_4bit_quant_type") or "fp4").strip().lower()  # transformers'
        double = args.get("bnb_4bit_use_double_quant")
        return {"method": kind, **common, "bits": 4,
                **({"double_quant": _truthy(double)} if double is not None else {})}
    if _truthy(args.get("load_in_8bit")):
        return {"method": "bnb8", **common, "bits": 8}
    return None


def from_hf_quant_args(args: dict) -> dict | None:
    """A record from hf-quant's model args, for an hf-quant run without its record (older
    versions): the method and the options it was given."""
    quant = args.get("quant")
    if quant is None or str(quant).strip().lower() in _NONE_TEXT:
        return from_hf_args(args)  # hf-quant hands HFLM's own arguments on
    out: dict[str, Any] = {"method": str(quant).strip().lower()}
    for key in ("bits", "group_size", "act_bits"):
        if _int(args.get(key)) is not None:
            out[key] = _int(args[key])
    if "sym" in args:
        out["sym"] = _truthy(args["sym"])
    return out


def _vllm(args: dict, ckpt: CheckpointConfig) -> dict | None:
    q = args.get("quantization")
    q = None if q is None or str(q).strip().lower() in _NONE_TEXT else str(q).strip().lower()
    if ckpt.where is not None:
        record = from_checkpoint_config(ckpt.quantization_config)
        if record is not None or q is None:
            return record
    if q in VLLM_ON_THE_FLY and (ckpt.where is not None or q != "bitsandbytes"):
        # fp8 on a checkpoint that is not readable: FP8 W8A8 whether vLLM quantized it while
        # loading or the checkpoint was saved in FP8
        return dict(VLLM_ON_THE_FLY[q])
    if q is not None and ckpt.where is not None:
        raise UnknownQuantization(f"--model vllm quantization={q} names a checkpoint format, but "
                                  f"{ckpt.where} has no quantization_config")
    if q is not None:
        raise UnknownQuantization(f"--model vllm quantization={q} takes its bits from the "
                                  "checkpoint's config.json, which is not readable here")
    raise UnknownQuantization("whether its checkpoint is quantized is only in the checkpoint's "
                              "config.json, which is not readable here")


def _hf(args: dict, ckpt: CheckpointConfig) -> dict | None:
    if args.get("gguf_file"):
        raise UnknownQuantization(
            f"gguf_file={args['gguf_file']} loads weights stored in GGUF's quantized types, which "
            "transformers decodes at load and lm-eval-bias does not read",
            hint="evaluate a transformers checkpoint instead (the model saved with "
                 "save_pretrained; its dense weights then count as unquantized)")
    gptq = [k for k in ("autogptq", "gptqmodel") if _truthy(args.get(k))]
    if ckpt.where is not None:
        record = from_checkpoint_config(ckpt.quantization_config)
        if record is not None:
            return record  # HFLM loads a quantized checkpoint with its own config
        if gptq:
            raise UnknownQuantization(f"--model hf {gptq[0]}=true loads a GPTQ checkpoint, but "
                                      f"{ckpt.where} has no quantization_config (and no "
                                      "quantize_config.json beside it)")
        return from_hf_args(args)
    if gptq:
        raise UnknownQuantization(f"--model hf {gptq[0]}=true takes its bits from the "
                                  "checkpoint's config.json, which is not readable here")
    if from_hf_args(args) is not None:
        return from_hf_args(args)  # bitsandbytes settings are all in the args
    raise UnknownQuantization("whether its checkpoint is quantized is only in the checkpoint's "
                              "config.json, which is not readable here")


def run_quantization(model: Any, args: dict, recorded: Any,
                     ckpt: CheckpointConfig | None) -> Any:
    """The quantization record of a run (None: not quantized), from lm-eval's ``config.model``,
    the parsed model args, the recorded ``config.quantization`` and the checkpoint config.
    Raises `UnknownQuantization` when the run is (or may be) quantized and its bits are not known.
    Backends other than hf, hf-quant and vllm: the recorded record, or None."""
    if recorded is not None:
        return recorded
    name = backend(model)
    if name == "hf-quant":
        return from_hf_quant_args(args)
    ckpt = ckpt or CheckpointConfig(where=None)
    if name == "vllm":
        return _vllm(args, ckpt)
    if name == "hf":
        return _hf(args, ckpt)
    return None


# ----------------------------------------------------------------------------- reading (I/O)


def looks_like_a_folder(name: str) -> bool:
    """`pretrained=` names a local folder (it exists, or is written as a path), not a hub id."""
    return (Path(name).expanduser().exists() or name.startswith(("/", ".", "~", "\\"))
            or name.count("/") > 1)


def read_checkpoint_config(args: dict) -> CheckpointConfig:
    """The checkpoint config of model args ``pretrained=`` (``revision``, ``subfolder``): the
    local folder's config.json, or the hub id's config.json in the Hugging Face cache (never the
    network); without a ``quantization_config`` there, AutoGPTQ's ``quantize_config.json`` beside
    it. ``where`` is None when it is not readable here."""
    pretrained = args.get("pretrained")
    if not isinstance(pretrained, str) or not pretrained.strip():
        return CheckpointConfig(where=None)
    sub = str(args.get("subfolder") or "")
    folder = Path(pretrained).expanduser()
    path: Path | None = None
    if folder.is_dir():
        path = (folder / sub if sub else folder) / "config.json"
    else:
        try:
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(pretrained, f"{sub}/config.json" if sub
                                           else "config.json",
                                           revision=str(args.get("revision") or "main"))
            path = Path(found) if isinstance(found, str) else None
        except Exception:  # noqa: BLE001 - not a valid repo id: not readable
            path = None
    if path is None or not path.is_file():
        return CheckpointConfig(where=None)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return CheckpointConfig(where=None)
    qc = config.get("quantization_config") if isinstance(config, dict) else None
    legacy = path.parent / "quantize_config.json"  # AutoGPTQ's own file, older GPTQ checkpoints
    if qc is None and legacy.is_file():
        try:
            gptq = json.loads(legacy.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return CheckpointConfig(where=None)
        if isinstance(gptq, dict):
            qc = {"quant_method": "gptq", **gptq}
            return CheckpointConfig(where=str(legacy), quantization_config=qc)
    return CheckpointConfig(where=str(path), quantization_config=qc)
