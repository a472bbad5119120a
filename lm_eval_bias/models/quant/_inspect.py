"""What every method shares after quantizing: finding the modules that really hold quantized
weights, measuring the model's bytes, and the error on a fixed text (KL divergence of next-token
distributions against the unquantized model).

Library-neutral: a module counts as quantized when its weight is stored in a low-precision form,
whatever library put it there (bitsandbytes `Int8Params`/`Params4bit`, torchao and optimum-quanto
tensor subclasses, GPTQ `qweight`, compressed-tensors `weight_packed`). A layer a library skipped
without saying so (GPT-2's `Conv1D` under quanto or torchao) therefore shows up as unquantized.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from lm_eval_bias.errors import BiasEvalError

# Fixed texts for `kl_fixed_text`, keyed by the id recorded beside the number. Never edit a text
# in place: add a new id, so that recorded numbers stay comparable.
FIXED_TEXTS = {
    "fixed-text-v1": (
        "The library opens at nine in the morning and closes at six in the evening. On weekends "
        "it is busy with families, students and retired people who come to read newspapers, "
        "borrow books and use the computers. Last year the city council voted to extend the "
        "opening hours, and the staff organised a series of free talks about local history."
    ),
}
FIXED_TEXT_ID = "fixed-text-v1"

# Names under which libraries store packed integer weights instead of `weight`.
_PACKED_WEIGHT_NAMES = ("qweight", "weight_packed")


def _is_subclass_tensor(tensor: torch.Tensor) -> bool:
    return type(tensor) not in (torch.Tensor, nn.Parameter) and hasattr(tensor,
                                                                         "__tensor_flatten__")


def _inner_tensors(tensor: torch.Tensor) -> list[torch.Tensor]:
    names, _ = tensor.__tensor_flatten__()
    return [t for t in (getattr(tensor, n, None) for n in names) if isinstance(t, torch.Tensor)]


def is_low_precision(tensor: torch.Tensor) -> bool:
    """True for integer or 8-bit float storage, looking inside tensor subclasses (torchao,
    quanto) at the tensors that hold the data."""
    if _is_subclass_tensor(tensor):
        return any(is_low_precision(t) for t in _inner_tensors(tensor))
    return not tensor.is_floating_point() or tensor.element_size() == 1


def tensor_bytes(tensor: torch.Tensor) -> int:
    """Bytes a tensor really takes: a subclass counts its inner tensors (packed codes, scales,
    zero points); a bitsandbytes 4-bit weight adds its quant_state (absmax, nested statistics),
    an 8-bit one its row scales (SCB)."""
    if _is_subclass_tensor(tensor):
        total = sum(tensor_bytes(t) for t in _inner_tensors(tensor))
    else:
        total = tensor.numel() * tensor.element_size()
    state = getattr(tensor, "quant_state", None)
    if state is not None:
        for owner in (state, getattr(state, "state2", None)):
            for attr in ("absmax", "offset"):
                value = getattr(owner, attr, None) if owner is not None else None
                if isinstance(value, torch.Tensor):
                    total += value.numel() * value.element_size()
    scb = getattr(tensor, "SCB", None)
    if isinstance(scb, torch.Tensor):
        total += scb.numel() * scb.element_size()
    return total


def _module_weight(module: nn.Module) -> torch.Tensor | None:
    for name in _PACKED_WEIGHT_NAMES:
        value = getattr(module, name, None)
        if isinstance(value, torch.Tensor):
            return value
    try:
        value = getattr(module, "weight", None)
    except (AttributeError, RuntimeError, NotImplementedError):  # lazily computed `weight`
        value = None
    return value if isinstance(value, torch.Tensor) else None


def _is_linear_like(module: nn.Module) -> bool:
    from transformers.pytorch_utils import Conv1D

    if isinstance(module, (nn.Linear, Conv1D)):
        return True
    return any(isinstance(getattr(module, n, None), torch.Tensor) for n in _PACKED_WEIGHT_NAMES)


def is_quantized_module(module: nn.Module) -> bool:
    """True if the module's weight is stored quantized (see `is_low_precision`)."""
    weight = _module_weight(module)
    return weight is not None and is_low_precision(weight)


@dataclass
class ModuleCensus:
    """The linear layers of a model, split into those holding quantized weights and the rest."""

    quantized: list[str] = field(default_factory=list)
    unquantized: list[str] = field(default_factory=list)
    conv1d_unquantized: list[str] = field(default_factory=list)
    classes: dict[str, int] = field(default_factory=dict)  # class name of quantized modules


def census(model: nn.Module) -> ModuleCensus:
    from transformers.pytorch_utils import Conv1D

    result = ModuleCensus()
    for name, module in model.named_modules():
        if not _is_linear_like(module):
            continue
        # a quantized container (e.g. quanto's QLinear) is the module; its children are not
        if any(name.startswith(q + ".") for q in result.quantized):
            continue
        if is_quantized_module(module):
            result.quantized.append(name)
            cls = type(module).__name__
            result.classes[cls] = result.classes.get(cls, 0) + 1
        else:
            result.unquantized.append(name)
            if isinstance(module, Conv1D):
                result.conv1d_unquantized.append(name)
    return result


def require_quantized(method: str, model: nn.Module, allowed_unquantized=None) -> ModuleCensus:
    """The census of `model`, after checking that quantization took effect.

    Raises BiasEvalError when no linear layer holds quantized weights (a silent no-op), and when
    a GPT-2-style Conv1D layer stayed in full precision without being asked to (several libraries
    skip them without a word). `allowed_unquantized(name) -> bool` says which unquantized layers
    the user asked for (skip patterns, lm_head).
    """
    found = census(model)
    if not found.quantized:
        raise BiasEvalError(
            f"quant={method}: quantization took no effect on {type(model).__name__}: none of its "
            f"{len(found.unquantized)} linear layers holds quantized weights (is it built from "
            f"nn.Linear? GPT-2-style Conv1D layers are skipped by several libraries); use a model "
            f"built from nn.Linear (e.g. Llama) or another method")
    allowed = allowed_unquantized or (lambda name: False)
    conv1d = [name for name in found.conv1d_unquantized if not allowed(name)]
    if conv1d:
        raise BiasEvalError(
            f"quant={method}: {len(conv1d)} GPT-2-style Conv1D layers (e.g. {conv1d[0]}) stayed "
            f"in full precision although only {len(found.quantized)} others were quantized; use a "
            f"model built from nn.Linear (e.g. Llama) or quant=rtn")
    return found


def model_bytes(model: nn.Module) -> int:
    """Bytes of all parameters (quantized ones by their real storage, see `tensor_bytes`) plus the
    buffers of quantized modules (GPTQ keeps its packed weights and scales as buffers)."""
    seen: set[int] = set()
    total = 0
    for param in model.parameters():
        if id(param) not in seen:
            seen.add(id(param))
            total += tensor_bytes(param)
    for module in model.modules():
        if is_quantized_module(module):
            for buffer in module.buffers(recurse=False):
                if id(buffer) not in seen:
                    seen.add(id(buffer))
                    total += tensor_bytes(buffer)
    return total


def dense_bytes(model: nn.Module, quantized: list[str], dtype: torch.dtype) -> int:
    """Bytes the model's parameters would take with every quantized weight dense in `dtype`:
    what a load-time method saved, without loading the model unquantized."""
    size = torch.empty((), dtype=dtype).element_size()
    total = 0
    seen: set[int] = set()
    quantized_set = set(quantized)
    for name, module in model.named_modules():
        if name in quantized_set:
            out_f = getattr(module, "out_features", None) or getattr(module, "outfeatures", None)
            in_f = getattr(module, "in_features", None) or getattr(module, "infeatures", None)
            if out_f is None or in_f is None:
                weight = _module_weight(module)
                n = weight.numel() if weight is not None else 0
            else:
                n = out_f * in_f
            total += n * size
            params = [p for pname, p in module.named_parameters(recurse=False)
                      if pname not in ("weight",) + _PACKED_WEIGHT_NAMES]
        else:
            if any(name.startswith(q + ".") for q in quantized_set):
                continue
            params = list(module.parameters(recurse=False))
        for param in params:
            if id(param) not in seen:
                seen.add(id(param))
                total += tensor_bytes(param)
    return total


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's floating-point, unquantized parameters (its compute dtype)."""
    for param in model.parameters():
        if param.is_floating_point() and param.element_size() > 1 and not _is_subclass_tensor(
                param):
            return param.dtype
    return torch.float32


def _model_device(model: nn.Module) -> torch.device:
    device = getattr(model, "device", None)
    if isinstance(device, torch.device):
        return device
    return next(model.parameters()).device


@torch.no_grad()
def fixed_text_logprobs(model: nn.Module, tokenizer: Any,
                        text_id: str = FIXED_TEXT_ID) -> torch.Tensor:
    """Next-token log-probabilities (float32, on the CPU, tokens x vocab) of `model` on the
    fixed text `text_id`."""
    encoded = tokenizer(FIXED_TEXTS[text_id], return_tensors="pt")
    ids = encoded["input_ids"].to(_model_device(model))
    logits = model(input_ids=ids).logits[0]
    return torch.log_softmax(logits.float(), dim=-1).cpu()


def mean_kl(reference: torch.Tensor, quantized: torch.Tensor) -> float:
    """Mean over positions of KL(p || q) = sum_v p_v (log p_v - log q_v), in nats, from
    log-probabilities (positions x vocab)."""
    if reference.shape != quantized.shape:
        raise ValueError(f"shapes differ: {tuple(reference.shape)} vs {tuple(quantized.shape)}")
    kl = torch.sum(reference.exp() * (reference - quantized), dim=-1, dtype=torch.float64)
    value = kl.mean().item()
    return max(0.0, value) if math.isfinite(value) else value


def select_linears(method: str, model: nn.Module, skip: tuple[str, ...],
                   group_size: int | None = None) -> tuple[list[tuple[str, nn.Linear]],
                                                            list[str]]:
    """(name, module) of the nn.Linear layers a post-load library method should quantize, and
    the names of those `skip` keeps; the same selection rules as quant=rtn (see `rtn.matches`).

    Refuses, before anything changes: a skip pattern matching no layer, a selection that is
    empty, GPT-2-style Conv1D layers (libraries skip them silently), offloaded or already
    quantized weights, a weight tied to a module that is not selected (the input embedding), and
    a `group_size` that does not divide some selected layer's in_features.
    """
    from transformers.pytorch_utils import Conv1D

    from lm_eval_bias.models.quant.rtn import matches, suggest_group_size

    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    unmatched = [p for p in skip if not any(matches(name, p) for name, _ in linears)]
    if unmatched:
        raise BiasEvalError(
            f"quant={method}: skip pattern(s) {', '.join(unmatched)} match no nn.Linear of "
            f"{type(model).__name__}; fix skip= (names like 'lm_head|mlp.down_proj'; "
            f"skip=none quantizes every nn.Linear)")
    conv1d = [name for name, m in model.named_modules()
              if isinstance(m, Conv1D) and not any(matches(name, p) for p in skip)]
    if conv1d:
        raise BiasEvalError(
            f"quant={method}: {type(model).__name__} has {len(conv1d)} GPT-2-style Conv1D layers "
            f"(e.g. {conv1d[0]}) that quant={method} would silently leave in full precision; "
            f"use a model built from nn.Linear (e.g. Llama), quant=bnb8/nf4/fp4, or list them "
            f"in skip=")
    targets, skipped = [], []
    for name, module in linears:
        if any(matches(name, p) for p in skip):
            skipped.append(name)
        else:
            targets.append((name, module))
    if not targets:
        raise BiasEvalError(
            f"quant={method}: quantization touched no module of {type(model).__name__} "
            f"({len(linears)} nn.Linear, all matched by skip={'|'.join(skip) or 'none'}); "
            f"check skip=")
    for name, module in targets:
        weight = module.weight
        if weight.device.type == "meta":
            raise BiasEvalError(
                f"quant={method}: the weight of {name} is offloaded (meta device); load without "
                f"offloading (more GPU memory, or device=cpu)")
        if is_low_precision(weight):
            raise BiasEvalError(
                f"quant={method}: {name} ({type(module).__name__}) already holds quantized "
                f"weights; load an unquantized checkpoint or drop quant=")
    owners: dict[int, list[str]] = {}
    for pname, param in model.named_parameters(remove_duplicate=False):
        owners.setdefault(id(param), []).append(pname)
    target_weights = {f"{name}.weight" for name, _ in targets}
    for name, module in targets:
        tied = [o for o in owners.get(id(module.weight), []) if o not in target_weights]
        if tied:
            raise BiasEvalError(
                f"quant={method}: {name}.weight is tied to {tied[0]}, which is not a quantized "
                f"nn.Linear (e.g. the input embedding); add {name} to skip=")
    if group_size not in (None, -1):
        for name, module in targets:
            if module.in_features % group_size:
                suggestion = suggest_group_size([m.in_features for _, m in targets], group_size)
                hint = f"e.g. group_size={suggestion}, or " if suggestion else ""
                raise BiasEvalError(
                    f"quant={method}: group_size={group_size} does not divide in_features="
                    f"{module.in_features} of {name}; use a group size that divides every layer "
                    f"({hint}group_size=-1 for one group per output row)")
    return targets, skipped


def require_all_quantized(method: str, model: nn.Module, names: list[str]) -> None:
    """Raise BiasEvalError if a selected module does not hold quantized weights afterwards."""
    missed = [name for name in names if not is_quantized_module(model.get_submodule(name))]
    if missed:
        raise BiasEvalError(
            f"quant={method}: {len(missed)} of {len(names)} selected layers (e.g. {missed[0]}) "
            f"still hold full-precision weights after quantizing; the library skipped them "
            f"silently; report this")
