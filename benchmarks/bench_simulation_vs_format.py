"""Simulated round-to-nearest (hf-quant `quant=rtn`) against the real compressed-tensors format
(`lm-eval-bias quantize --method rtn`, written by llmcompressor), same bits, group size, symmetry.

    python benchmarks/bench_simulation_vs_format.py --python PATH_TO_LLMCOMPRESSOR_PYTHON \\
        [--schemes W4A16,W8A16] [--group-size 64] [--asym] [--limit 4] [--model DIR]

Not a test. Model: the embedded SmolLM2-135M-Instruct checkpoint
(`lm_eval_bias.models.smollm2.ensure_checkpoint()`; fp32 weights decoded from a Q4_1 GGUF file, so
already lossy), float32 on the CPU. For each scheme it writes the real checkpoint once (into the
cache folder), then reports, against the real checkpoint's dequantized weights and its
`lm_eval --model hf-quant` run (prequantized), both grids of `quant=rtn` (`grid=minmax`, the
default, and `grid=gptq`):

- weights: max |W_real - W_sim| per nn.Linear (the largest over layers, and how many of the layers
  are equal to 1e-6), with the real weights decompressed at load (`dequantize=True`);
- log-likelihoods: max and mean |LL_real - LL_sim| over every answer option of `bias_bbq_lite`
  (first --limit documents of each category);
- answers: share of BBQ items where both choose the same option.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("LM_EVAL_BIAS_DATA_DIR",
                      str(Path(__file__).resolve().parent.parent.parent / "shared" / "data"))

TASK = "bias_bbq_lite"
BITS = {"W4A16": 4, "W8A16": 8}


def real_checkpoint(base: Path, scheme: str, group: int, sym: bool, python: str) -> Path:
    from lm_eval_bias._cache import cache_dir
    from lm_eval_bias.models.quantize_checkpoint import (
        RECORD_FILE,
        QuantizeSpec,
        quantize_checkpoint,
    )

    name = f"{base.name}-{scheme}-g{group}-{'sym' if sym else 'asym'}"
    out = cache_dir() / "bench-simulation" / name
    if not (out / RECORD_FILE).is_file():
        quantize_checkpoint(QuantizeSpec(model=str(base), output=out, method="rtn", scheme=scheme,
                                         group_size=group, symmetric=sym, python=python))
    return out


def weight_diffs(base: Path, real: Path, bits: int, group: int, sym: bool) -> dict:
    """grid -> (max abs diff over layers, layers equal to 1e-6, number of layers)."""
    import torch
    from transformers import AutoModelForCausalLM, CompressedTensorsConfig

    from lm_eval_bias.models.quant.rtn import quantize_dequantize

    original = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    dense = AutoModelForCausalLM.from_pretrained(
        real, dtype=torch.float32, quantization_config=CompressedTensorsConfig(dequantize=True))
    out = {}
    for grid in ("minmax", "gptq"):
        diffs = []
        for name, module in original.named_modules():
            if not isinstance(module, torch.nn.Linear) or name.endswith("lm_head"):
                continue
            sim = quantize_dequantize(module.weight.data, bits, group, sym, grid)
            got = dense.get_submodule(name).weight.data
            diffs.append((got - sim).abs().max().item())
        out[grid] = (max(diffs), sum(d <= 1e-6 for d in diffs), len(diffs))
    return out


def evaluate(model_args: dict, limit: int) -> tuple[list[float], dict]:
    """Per-option log-likelihoods (in a fixed order) and the chosen option per item."""
    from lm_eval import simple_evaluate

    res = simple_evaluate(model="hf-quant", model_args=model_args, tasks=[TASK], limit=limit,
                          device="cpu", batch_size=8, log_samples=True)
    lls, preds = [], {}
    for task in sorted(res["samples"]):
        for sample in sorted(res["samples"][task], key=lambda s: s["doc_id"]):
            lls += [float(r[0][0]) for r in sample["resps"]]
            preds[(task, sample["doc_id"])] = sample["bias_item"]["pred"]
    return lls, preds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True, help="interpreter with llmcompressor")
    parser.add_argument("--schemes", default="W4A16,W8A16")
    parser.add_argument("--group-size", type=int, default=64)
    parser.add_argument("--asym", action="store_true")
    parser.add_argument("--limit", type=int, default=4, help="documents per BBQ category")
    parser.add_argument("--model", help="checkpoint folder (default: SmolLM2-135M-Instruct)")
    args = parser.parse_args(argv)
    from lm_eval_bias.models.smollm2 import ensure_checkpoint

    base = Path(args.model) if args.model else ensure_checkpoint()
    sym = not args.asym
    print(f"model {base}, group size {args.group_size}, {'symmetric' if sym else 'asymmetric'}, "
          f"{TASK} --limit {args.limit}", file=sys.stderr)
    rows = []
    for scheme in args.schemes.split(","):
        bits = BITS[scheme]
        real = real_checkpoint(base, scheme, args.group_size, sym, args.python)
        weights = weight_diffs(base, real, bits, args.group_size, sym)
        real_lls, real_preds = evaluate({"pretrained": str(real), "dtype": "float32"}, args.limit)
        for grid in ("minmax", "gptq"):
            sim_lls, sim_preds = evaluate(
                {"pretrained": str(base), "dtype": "float32", "quant": "rtn", "bits": bits,
                 "group_size": args.group_size, "sym": sym, "grid": grid}, args.limit)
            diffs = [abs(a - b) for a, b in zip(real_lls, sim_lls)]
            same = sum(real_preds[k] == sim_preds[k] for k in real_preds)
            worst, equal, n_layers = weights[grid]
            rows.append(f"| {scheme} | rtn grid={grid} | {worst:.3g} | {equal}/{n_layers} | "
                        f"{max(diffs):.3g} | {sum(diffs) / len(diffs):.3g} | "
                        f"{same}/{len(real_preds)} |")
    print("| scheme | simulation | max weight diff | layers equal | max LL diff | mean LL diff "
          "| same BBQ answer |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
