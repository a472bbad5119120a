"""`quant=rtn_act`: simulated weight AND activation quantization (W8A8, W4A8, ...), optionally
with SmoothQuant smoothing, in plain torch, so that it can be studied on any hardware.

    --model_args pretrained=...,quant=rtn_act,bits=8,act_bits=8,group_size=-1,sym=true   # W8A8
    --model_args pretrained=...,quant=rtn_act,bits=4,act_bits=8,group_size=64            # W4A8
    --model_args pretrained=...,quant=rtn_act,bits=8,act_bits=8,smooth_alpha=0.5         # + SQ

Weights: exactly quant=rtn (bits, group_size, sym, skip; see `rtn.py`). Activations: the input of
every quantized nn.Linear is fake-quantized per token, dynamically and symmetrically, to
`act_bits` bits by a forward pre-hook (`fake_quantize_per_token`): for each token's vector x,
s = max|x| / (2^(a-1) - 1), x' = clamp(round(x / s), -(2^(a-1) - 1), 2^(a-1) - 1) * s.

SmoothQuant (Xiao et al. 2023, arXiv:2211.10438), with `smooth_alpha` = alpha in [0, 1]: before
the weights are quantized, each input channel j of a group of linears sharing one input is scaled
by s_j = max|X_j|^alpha / max|W_:,j|^(1-alpha): W_:,j *= s_j and the producer of X divides by s_j,
so the full-precision model is unchanged (checked on the calibration text) while activation
outliers move into the weights. Groups, in Llama-style decoder layers: q/k/v_proj after
input_layernorm, gate/up_proj after post_attention_layernorm, and down_proj after up_proj (its
input is act(gate) * up, linear in up's output rows). o_proj is not smoothed (as in the paper).
max|X_j| comes from one forward pass over a fixed built-in calibration text, `calibration_text`
in the record (`CALIBRATION_TEXTS`).
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from torch import nn

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.models.quant.base import QuantizationReport, parse_int
from lm_eval_bias.models.quant.registry import register_quantizer
from lm_eval_bias.models.quant.rtn import RTNQuantizer

MIN_ACT_BITS, MAX_ACT_BITS = 2, 16
# Never edit a text in place: add a new id, so that recorded runs stay reproducible.
CALIBRATION_TEXTS = {
    "calib-v1": (
        "The committee met on Tuesday to discuss the budget for the coming year. Several members "
        "argued that the money should go to schools and public transport, while others wanted to "
        "lower taxes. After a long debate, they agreed to publish a draft and ask residents for "
        "their opinion. In the meantime, the museum will stay open late on Fridays, and the park "
        "near the river will get new benches, lights and a small playground for children."
    ),
}
CALIBRATION_TEXT_ID = "calib-v1"
_HOOK_ATTR = "_lm_eval_bias_act_bits"


def fake_quantize_per_token(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric per-token (last dimension) round-to-nearest to `bits` bits and back, computed in
    float32, returned in x's dtype. An all-zero token stays zero."""
    qmax = 2 ** (bits - 1) - 1
    xf = x.float()
    scale = xf.abs().amax(dim=-1, keepdim=True) / qmax
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    return (torch.clamp(torch.round(xf / scale), -qmax, qmax) * scale).to(x.dtype)


def _pre_hook(module: nn.Module, args: tuple):
    bits = getattr(module, _HOOK_ATTR)
    return (fake_quantize_per_token(args[0], bits), *args[1:])


def add_activation_quantization(modules: list[nn.Module], bits: int) -> list:
    """Fake-quantize the input of each module to `bits` bits per token; returns the hook handles
    (`handle.remove()` undoes it). A module that already has such a hook is refused."""
    handles = []
    for module in modules:
        if hasattr(module, _HOOK_ATTR):
            raise BiasEvalError("quant=rtn_act: activation quantization is already installed on "
                                "this model; load it again")
        setattr(module, _HOOK_ATTR, bits)
        handles.append(module.register_forward_pre_hook(_pre_hook))
    return handles


def count_activation_quantized(model: nn.Module) -> int:
    return sum(1 for m in model.modules() if hasattr(m, _HOOK_ATTR))


# -- SmoothQuant ---------------------------------------------------------------------------------


def _smooth_groups(model: nn.Module, selected: set[str]):
    """(producer kind, producer module, [(name, linear)]) for every smoothable group whose
    linears are all selected for quantization."""
    groups = []
    for name, layer in model.named_modules():
        attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        norm1 = getattr(layer, "input_layernorm", None)
        norm2 = getattr(layer, "post_attention_layernorm", None)
        if attn is None or mlp is None or norm1 is None or norm2 is None:
            continue
        candidates = [
            ("norm", norm1, "self_attn", ("q_proj", "k_proj", "v_proj")),
            ("norm", norm2, "mlp", ("gate_proj", "up_proj")),
            ("up_proj", getattr(mlp, "up_proj", None), "mlp", ("down_proj",)),
        ]
        for kind, producer, block, linears in candidates:
            owner = attn if block == "self_attn" else mlp
            mods = [(f"{name}.{block}.{ln}", getattr(owner, ln, None)) for ln in linears]
            if producer is None or any(not isinstance(m, nn.Linear) for _, m in mods):
                continue
            if all(n in selected for n, _ in mods):
                groups.append((kind, producer, mods))
    return groups


@torch.no_grad()
def _input_absmax(model: nn.Module, modules: list[nn.Module], input_ids: torch.Tensor):
    """Per-input-channel max |x| of each module's input over the calibration tokens."""
    found: dict[int, torch.Tensor] = {}

    def hook(module, args):
        x = args[0].detach().float().abs().reshape(-1, args[0].shape[-1]).amax(dim=0)
        found[id(module)] = torch.maximum(found[id(module)], x) if id(module) in found else x

    handles = [m.register_forward_pre_hook(hook) for m in modules]
    try:
        logits = model(input_ids=input_ids).logits
    finally:
        for h in handles:
            h.remove()
    return [found[id(m)] for m in modules], logits


@torch.no_grad()
def smooth_(model: nn.Module, selected: set[str], input_ids: torch.Tensor, alpha: float) -> int:
    """SmoothQuant smoothing of `model` in place (see the module docstring); returns the number of
    linears smoothed. Raises BiasEvalError if the full-precision outputs changed (a layer type
    this function does not understand, e.g. a norm computing (1 + weight) * x)."""
    groups = _smooth_groups(model, selected)
    if not groups:
        raise BiasEvalError(
            f"quant=rtn_act: smooth_alpha needs Llama-style decoder layers (input_layernorm, "
            f"self_attn.q/k/v_proj, post_attention_layernorm, mlp.gate/up/down_proj) with those "
            f"linears quantized; {type(model).__name__} has none; drop smooth_alpha")
    firsts = [mods[0][1] for _, _, mods in groups]
    absmax, logits_before = _input_absmax(model, firsts, input_ids)
    for (kind, producer, mods), x_max in zip(groups, absmax):
        weights = torch.cat([m.weight.detach().float().abs() for _, m in mods], dim=0)
        w_max = weights.amax(dim=0).clamp(min=1e-5)
        scale = (x_max.clamp(min=1e-5).pow(alpha) / w_max.pow(1 - alpha)).clamp(min=1e-5)
        for _, module in mods:
            module.weight.mul_(scale.to(module.weight.dtype).unsqueeze(0))
        if kind == "norm":
            producer.weight.div_(scale.to(producer.weight.dtype))
        else:  # up_proj: its output rows feed down_proj's input channels
            producer.weight.div_(scale.to(producer.weight.dtype).unsqueeze(1))
            if producer.bias is not None:
                producer.bias.div_(scale.to(producer.bias.dtype))
    logits_after = model(input_ids=input_ids).logits
    change = ((logits_after.float() - logits_before.float()).norm()
              / logits_before.float().norm().clamp(min=1e-12)).item()
    tolerance = 1e-3 if logits_before.dtype == torch.float32 else 2e-2
    if not math.isfinite(change) or change > tolerance:
        raise BiasEvalError(
            f"quant=rtn_act: SmoothQuant smoothing changed the full-precision outputs of "
            f"{type(model).__name__} (relative change {change:.2g}); its layers are not the "
            f"Llama-style ones smoothing supports; drop smooth_alpha")
    return sum(len(mods) for _, _, mods in groups)


@contextmanager
def _as_rtn_act():
    """rtn's own errors say quant=rtn; here the user asked for quant=rtn_act."""
    try:
        yield
    except BiasEvalError as err:
        message = str(err)
        if message.startswith("quant=rtn"):
            raise BiasEvalError("quant=rtn_act" + message[len("quant=rtn"):]) from None
        raise


@register_quantizer("rtn_act")
class RTNActQuantizer(RTNQuantizer):
    """quant=rtn weights plus per-token activation fake quantization of every quantized linear's
    input. Options: bits, group_size, sym, skip (as rtn), act_bits (2..16, required),
    smooth_alpha (0..1; default none: no smoothing)."""

    options = ("bits", "group_size", "sym", "skip", "act_bits", "smooth_alpha")

    def __init__(self, bits=None, group_size=128, sym=False, skip="lm_head", act_bits=None,
                 smooth_alpha=None):
        if act_bits is None:
            raise BiasEvalError("quant=rtn_act needs act_bits (activation bits, e.g. 8); pass "
                                "e.g. bits=8,act_bits=8 for W8A8 (or use quant=rtn for weights "
                                "only)")
        if bits is None:
            raise BiasEvalError("quant=rtn_act needs bits (weight bits, 2..8); pass e.g. "
                                "bits=8,act_bits=8")
        with _as_rtn_act():
            super().__init__(bits=bits, group_size=group_size, sym=sym, skip=skip)
        self.act_bits = parse_int("rtn_act", "act_bits", act_bits, "8")
        if not MIN_ACT_BITS <= self.act_bits <= MAX_ACT_BITS:
            raise BiasEvalError(f"quant=rtn_act: act_bits must be from {MIN_ACT_BITS} to "
                                f"{MAX_ACT_BITS}, got {self.act_bits}; pass e.g. act_bits=8")
        self.smooth_alpha = None
        if smooth_alpha is not None and str(smooth_alpha).strip().lower() not in ("", "none"):
            try:
                self.smooth_alpha = float(smooth_alpha)
            except (TypeError, ValueError):
                self.smooth_alpha = -1.0
            if isinstance(smooth_alpha, bool) or not 0.0 <= self.smooth_alpha <= 1.0:
                raise BiasEvalError(f"quant=rtn_act: smooth_alpha must be a number from 0 to 1, "
                                    f"got {smooth_alpha!r}; pass e.g. smooth_alpha=0.5")
        self.tokenizer = None

    def bind_tokenizer(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    def quantize(self, model: nn.Module) -> QuantizationReport:
        import time

        start = time.perf_counter()
        with _as_rtn_act():
            self._check_conv1d(model)
            targets, _ = self._select(model)
            self._check(model, targets)  # before smoothing changes anything
        n_smoothed = 0
        if self.smooth_alpha is not None:
            if self.tokenizer is None:
                raise BiasEvalError("quant=rtn_act: smooth_alpha needs the tokenizer for its "
                                    "calibration text; load through hf-quant")
            ids = self.tokenizer(CALIBRATION_TEXTS[CALIBRATION_TEXT_ID],
                                 return_tensors="pt")["input_ids"]
            device = next(model.parameters()).device
            n_smoothed = smooth_(model, {name for name, _ in targets}, ids.to(device),
                                 self.smooth_alpha)
        with _as_rtn_act():
            report = super().quantize(model)  # weights, with rtn's checks and verification
        modules = [module for _, module in targets]
        add_activation_quantization(modules, self.act_bits)
        self._verify_activations(model, targets[0][0])
        report.act_bits = self.act_bits
        report.quantize_seconds = time.perf_counter() - start
        report.settings["smooth_alpha"] = self.smooth_alpha
        if self.smooth_alpha is not None:
            report.settings["n_modules_smoothed"] = n_smoothed
            report.settings["calibration_text"] = CALIBRATION_TEXT_ID
        return report

    def _verify_activations(self, model: nn.Module, name: str) -> None:
        """Every quantized linear has the hook, and one of them really computes on quantized
        inputs: its output equals the linear map of the fake-quantized input."""
        module = model.get_submodule(name)
        x = torch.randn(1, 3, module.in_features, generator=torch.Generator().manual_seed(0))
        x = x.to(module.weight.device, module.weight.dtype)
        with torch.no_grad():
            expected = nn.functional.linear(fake_quantize_per_token(x, self.act_bits),
                                            module.weight, module.bias)
            if not torch.equal(module(x), expected):
                raise BiasEvalError(f"quant=rtn_act: activation quantization did not take effect "
                                    f"on {name}; report this")
