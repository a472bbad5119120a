"""`quant=rtn`: round-to-nearest fake quantization of nn.Linear weights, per group, in plain torch.

Every nn.Linear whose name no `skip` pattern matches has its weight replaced by the dequantized
value of its b-bit code (see `quantize_dequantize`). The model keeps its dtype and memory: the
quantization is simulated, which is all a study of how quantization error changes outputs needs.
Embeddings are nn.Embedding, never nn.Linear, so they stay as they are.

Two integer grids (`grid=`; see `quantize_dequantize`):

- ``minmax`` (default): the group's own range. Symmetric codes use [-(2^(b-1) - 1), 2^(b-1) - 1]
  (int4: scale max|w| / 7); asymmetric ones map [min, max] to [0, 2^b - 1], with an integer zero
  point that may fall outside the code range.
- ``gptq``: the grid of the real formats: GPTQ's reference quantizer, compressed-tensors (what
  llmcompressor writes and vLLM runs) and gptqmodel. Symmetric codes use the full
  [-2^(b-1), 2^(b-1) - 1] with scale max|w| / ((2^b - 1) / 2) (int4: max|w| / 7.5); asymmetric
  ranges are first widened to include 0 (min <= 0 <= max), so the zero point is a code and 0.0 is
  exactly representable. With the same bits, group size and symmetry, quant=rtn,grid=gptq gives
  the dequantized weights of `lm-eval-bias quantize --method rtn` (compressed-tensors), to float32
  rounding (benchmarks/bench_simulation_vs_format.py).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from fnmatch import fnmatchcase

import torch
from torch import nn

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

MIN_BITS, MAX_BITS = 2, 8
DEFAULT_GROUP_SIZE = 128
DEFAULT_SKIP = "lm_head"
GRIDS = ("minmax", "gptq")
DEFAULT_GRID = "minmax"
# Scale and zero-point are counted as fp16 each (GPTQ/AWQ-style storage): bits per group.
SCALE_BITS = 16
ZERO_BITS = 16
# Rows are quantized in slices of about this many elements, so the float32 working copy of a
# large layer stays small (64 MiB) next to a model that fills a GPU.
_CHUNK_ELEMENTS = 1 << 24


def check_bits(bits: int) -> None:
    if not MIN_BITS <= bits <= MAX_BITS:
        raise BiasEvalError(f"quant=rtn: bits must be from {MIN_BITS} to {MAX_BITS}, got {bits}; "
                            f"pass e.g. bits=4")


def check_group_size(group_size: int) -> None:
    if group_size != -1 and group_size <= 0:
        raise BiasEvalError(f"quant=rtn: group_size must be a positive number of input features "
                            f"or -1 (one group per output row), got {group_size}; "
                            f"pass e.g. group_size=128")


def quantize_dequantize(weight: torch.Tensor, bits: int, group_size: int = -1,
                        sym: bool = False, grid: str = DEFAULT_GRID) -> torch.Tensor:
    """Round `weight` (out_features x in_features) to `bits`-bit codes and back, per group.

    A group is `group_size` consecutive input features of one output row (-1: the whole row,
    i.e. per channel). For a group w with min m and max M:

    - asymmetric: s = (M - m) / (2^b - 1), z = round(-m / s),
      q = clamp(round(w / s) + z, 0, 2^b - 1), w' = (q - z) * s. z is an integer stored as
      fp16, so it may lie outside [0, 2^b - 1] (a group of positive weights has z < 0). A
      constant group (s = 0) is exactly representable and returned unchanged.
    - symmetric: s = max|w| / (2^(b-1) - 1), q = clamp(round(w / s), -2^(b-1), 2^(b-1) - 1),
      w' = q * s; an all-zero group (s = 0) stays zero.

    With grid="gptq" (the real formats' grid, see the module docstring):

    - asymmetric: m = min(m, 0), M = max(M, 0), then as above (z now lies in [0, 2^b - 1]).
    - symmetric: s = max|w| / ((2^b - 1) / 2), q = clamp(round(w / s), -2^(b-1), 2^(b-1) - 1).

    round() is torch.round: halves go to the even integer. The arithmetic is float32 on the
    weight's device; the result has the weight's dtype. Pure: `weight` is not modified.
    """
    check_bits(bits)
    if grid not in GRIDS:
        raise BiasEvalError(f"quant=rtn: grid must be one of {', '.join(GRIDS)}, got {grid!r}")
    check_group_size(group_size)
    if weight.dim() != 2:
        raise ValueError(f"expected a 2-D weight, got shape {tuple(weight.shape)}")
    rows, cols = weight.shape
    size = cols if group_size == -1 else group_size
    if cols % size:
        raise BiasEvalError(f"quant=rtn: group_size={group_size} does not divide in_features="
                            f"{cols}; use a divisor of {cols} or group_size=-1")
    w = weight.detach().to(torch.float32).reshape(rows, cols // size, size)

    if sym:
        qmax = 2 ** (bits - 1) - 1
        steps = (2 ** bits - 1) / 2 if grid == "gptq" else qmax
        scale = w.abs().amax(dim=-1, keepdim=True) / steps
        # All-zero group: any nonzero scale maps it to code 0 and back to exactly 0.
        scale = torch.where(scale == 0, torch.ones_like(scale), scale)
        codes = torch.clamp(torch.round(w / scale), -qmax - 1, qmax)
        out = codes * scale
    else:
        qmax = 2 ** bits - 1
        low = w.amin(dim=-1, keepdim=True)
        high = w.amax(dim=-1, keepdim=True)
        if grid == "gptq":
            low, high = low.clamp(max=0), high.clamp(min=0)
        scale = (high - low) / qmax
        constant = scale == 0
        safe = torch.where(constant, torch.ones_like(scale), scale)  # no 0/0 in constant groups
        zero = torch.round(-low / safe)
        codes = torch.clamp(torch.round(w / safe) + zero, 0, qmax)
        out = torch.where(constant, w, (codes - zero) * safe)
    return out.reshape(rows, cols).to(weight.dtype)


def matches(name: str, pattern: str) -> bool:
    """True if `pattern` matches whole dotted components of the module `name`, anywhere.

    "lm_head" matches "lm_head" and "model.lm_head"; "mlp" matches every module inside a
    "...mlp" block; "layers.0" matches layer 0 but not layer 10. Shell wildcards (*, ?) work.
    """
    return any(fnmatchcase(name, form)
               for form in (pattern, f"*.{pattern}", f"{pattern}.*", f"*.{pattern}.*"))


def suggest_group_size(in_features: list[int], requested: int) -> int | None:
    """Largest power of two, at most `requested` and at least 8, dividing every in_features."""
    common = math.gcd(*in_features)
    size = 1 << (requested.bit_length() - 1)
    while size >= 8:
        if common % size == 0:
            return size
        size //= 2
    return None


def _quantize_weight_(weight: torch.Tensor, bits: int, group_size: int, sym: bool,
                      grid: str = DEFAULT_GRID) -> float:
    """Replace `weight` in place, slice by slice of rows; return ||W' - W||_F / ||W||_F."""
    rows_per_slice = max(1, _CHUNK_ELEMENTS // weight.shape[1])
    diff2 = norm2 = 0.0
    for rows in weight.data.split(rows_per_slice):  # views: copy_ writes into the parameter
        new = quantize_dequantize(rows, bits, group_size, sym, grid)
        old = rows.to(torch.float32)
        diff2 += torch.sum((new.to(torch.float32) - old) ** 2, dtype=torch.float64).item()
        norm2 += torch.sum(old ** 2, dtype=torch.float64).item()
        rows.copy_(new)
    return math.sqrt(diff2 / norm2) if norm2 > 0 else 0.0


@register_quantizer("rtn")
class RTNQuantizer(Quantizer):
    """Round-to-nearest weight quantization (simulated), the baseline of weight-only methods.

    Options: bits (2..8, required), group_size (default 128; -1 = per output row), sym (default
    false), skip (module-name patterns kept in full precision, "|"-separated, default "lm_head";
    skip=none quantizes every nn.Linear; see `matches`), grid (minmax (default) or gptq, the
    grid of compressed-tensors / GPTQ; see the module docstring).
    """

    options = ("bits", "group_size", "sym", "skip", "grid")
    requires = ("torch",)
    install = "pip install torch"

    def __init__(self, bits=None, group_size=DEFAULT_GROUP_SIZE, sym=False, skip=DEFAULT_SKIP,
                 grid=DEFAULT_GRID):
        if bits is None:
            raise BiasEvalError(f"quant=rtn needs bits ({MIN_BITS}..{MAX_BITS}); pass e.g. bits=4")
        self.bits = parse_int("rtn", "bits", bits, "4")
        check_bits(self.bits)
        self.group_size = parse_int("rtn", "group_size", group_size, "128")
        check_group_size(self.group_size)
        self.sym = parse_bool("rtn", "sym", sym)
        self.skip = parse_patterns(skip)
        self.grid = str(grid).strip().lower()
        if self.grid not in GRIDS:
            raise BiasEvalError(f"quant=rtn: grid must be one of {', '.join(GRIDS)}, got "
                                f"{grid!r}; pass grid=gptq for the real formats' grid")

    def _overhead_bits(self) -> int:
        return SCALE_BITS if self.sym else SCALE_BITS + ZERO_BITS

    def quantize(self, model: nn.Module) -> QuantizationReport:
        """Quantize every selected nn.Linear of `model` in place; see the report for the record.

        mean_bits_per_weight = (sum_m n_m * b + sum_m g_m * o) / sum_m n_m over the quantized
        weights m, with n_m weights in g_m groups and o = 32 bits per group (fp16 scale and fp16
        zero) asymmetric, 16 (scale only) symmetric: b + o / group_size when every layer is
        grouped alike. model_bytes_after = unquantized parameters as they are + per quantized
        weight ceil(n_m * b / 8) bytes of packed codes + g_m * o / 8 bytes of scales and zeros.
        """
        start = time.perf_counter()
        self._check_conv1d(model)
        targets, skipped = self._select(model)
        self._check(model, targets)
        bytes_before = parameter_bytes(model)

        probe_name, probe = targets[0]
        probe_row = probe.weight[:1].detach().clone()
        n_weights = n_groups = replaced_bytes = code_bytes = 0
        errors = []
        with torch.no_grad():
            for _, module in targets:
                weight = module.weight
                size = weight.shape[1] if self.group_size == -1 else self.group_size
                n_weights += weight.numel()
                n_groups += weight.numel() // size
                replaced_bytes += weight.numel() * weight.element_size()
                code_bytes += math.ceil(weight.numel() * self.bits / 8)
                errors.append(_quantize_weight_(weight, self.bits, self.group_size, self.sym,
                                                self.grid))
        self._verify(model, probe_name, probe_row)

        overhead = self._overhead_bits()
        return QuantizationReport(
            method=self.name,
            library="torch",
            library_version=library_version("torch") or torch.__version__,
            bits=self.bits,
            settings={"group_size": self.group_size, "sym": self.sym, "skip": list(self.skip),
                      "grid": self.grid},
            n_modules_quantized=len(targets),
            n_modules_skipped=len(skipped),
            modules_skipped=skipped,
            mean_bits_per_weight=(n_weights * self.bits + n_groups * overhead) / n_weights,
            model_bytes_before=bytes_before,
            model_bytes_after=bytes_before - replaced_bytes + code_bytes
            + math.ceil(n_groups * overhead / 8),
            simulated=True,
            quantize_seconds=time.perf_counter() - start,
            mean_relative_error=sum(errors) / len(errors),
        )

    def _select(self, model: nn.Module) -> tuple[list[tuple[str, nn.Linear]], list[str]]:
        """(name, module) of the nn.Linear layers to quantize, and names of those skipped."""
        linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
        unmatched = [p for p in self.skip if not any(matches(name, p) for name, _ in linears)]
        if unmatched:
            # A typo here would quantize a layer the user believes is kept in full precision.
            raise BiasEvalError(
                f"quant=rtn: skip pattern(s) {', '.join(unmatched)} match no nn.Linear of "
                f"{type(model).__name__}; fix skip= (names like 'lm_head|mlp.down_proj'; "
                f"skip=none quantizes every nn.Linear)")
        targets, skipped = [], []
        for name, module in linears:
            if any(matches(name, p) for p in self.skip):
                skipped.append(name)
            else:
                targets.append((name, module))
        if not targets:
            raise BiasEvalError(
                f"quant=rtn: quantization touched no module of {type(model).__name__} "
                f"({len(linears)} nn.Linear, all matched by skip={'|'.join(self.skip) or 'none'}); "
                f"check skip=")
        return targets, skipped

    def _check_conv1d(self, model: nn.Module) -> None:
        """GPT-2's projections are transformers' Conv1D, not nn.Linear: other back-ends skip them
        silently, which would leave most of the model in full precision."""
        from transformers.pytorch_utils import Conv1D

        conv1d = [name for name, m in model.named_modules()
                  if isinstance(m, Conv1D) and not any(matches(name, p) for p in self.skip)]
        if conv1d:
            raise BiasEvalError(
                f"quant=rtn: {type(model).__name__} has {len(conv1d)} GPT-2-style Conv1D layers "
                f"(e.g. {conv1d[0]}) that rtn cannot quantize and would stay full precision; "
                f"use a model built from nn.Linear (e.g. Llama) or list them in skip=")

    def _check(self, model: nn.Module, targets: list[tuple[str, nn.Linear]]) -> None:
        """Refuse, before changing anything, every case where the result would not be a model
        whose selected layers all hold b-bit weights."""
        for name, module in targets:
            weight = module.weight
            if weight.device.type == "meta":
                raise BiasEvalError(
                    f"quant=rtn: the weight of {name} is offloaded (meta device); rtn needs every "
                    f"weight in memory: load without offloading (more GPU memory, or device=cpu)")
            if not weight.is_floating_point():
                raise BiasEvalError(
                    f"quant=rtn: {name} ({type(module).__name__}) already holds quantized "
                    f"{weight.dtype} weights; load an unquantized checkpoint or use quant=none")

        owners = defaultdict(list)
        for pname, param in model.named_parameters(remove_duplicate=False):
            owners[id(param)].append(pname)
        target_weights = {f"{name}.weight" for name, _ in targets}
        for name, module in targets:
            tied = [o for o in owners[id(module.weight)] if o not in target_weights]
            if tied:
                raise BiasEvalError(
                    f"quant=rtn: {name}.weight is tied to {tied[0]}, which is not a quantized "
                    f"nn.Linear (e.g. the input embedding); add {name} to skip=")

        if self.group_size != -1:
            for name, module in targets:
                if module.in_features % self.group_size:
                    suggestion = suggest_group_size([m.in_features for _, m in targets],
                                                     self.group_size)
                    hint = f"e.g. group_size={suggestion}, or " if suggestion else ""
                    raise BiasEvalError(
                        f"quant=rtn: group_size={self.group_size} does not divide in_features="
                        f"{module.in_features} of {name}; use a group size that divides every "
                        f"layer ({hint}group_size=-1 for one group per output row)")

    def _verify(self, model: nn.Module, name: str, row_before: torch.Tensor) -> None:
        """Cheap check on one module that the model now really holds b-bit weights.

        Re-reads the live weight through the model and requires (1) its first row to equal the
        quantized original row and (2) at most 2^b distinct values in each group of that row.
        """
        row_after = model.get_submodule(name).weight[:1].detach()
        expected = quantize_dequantize(row_before, self.bits, self.group_size, self.sym,
                                       self.grid)
        size = row_after.shape[1] if self.group_size == -1 else self.group_size
        most_distinct = max(len(torch.unique(group)) for group in row_after[0].split(size))
        if not torch.equal(row_after, expected) or most_distinct > 2 ** self.bits:
            raise BiasEvalError(
                f"quant=rtn: quantization did not take effect on {name} ({most_distinct} distinct "
                f"values in a group, {2 ** self.bits} allowed); the model keeps its weights "
                f"somewhere rtn cannot write (offloading, a wrapped module); report this")
