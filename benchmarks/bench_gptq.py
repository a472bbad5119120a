"""GPTQ (`quant=gptq`) on a real model: time to calibrate and quantize, and error against RTN.

    python benchmarks/bench_gptq.py [--bits 4,3] [--group-size 64] [--n-calib 128] [--calib-len 512]

Not a test. Model: the embedded SmolLM2-135M-Instruct checkpoint
(`lm_eval_bias.models.smollm2.ensure_checkpoint()`; fp32 weights decoded from a Q4_1 GGUF file, so
already lossy), dtype=float32, on the CPU, loaded through `hf-quant` as `lm_eval` would. Text: BOLD's
Wikipedia sentences (LM_EVAL_BIAS_DATA_DIR, default ../shared/data), one document per entity;
the even-numbered documents, joined, are the calibration file (`calib=PATH.txt`), the first 40
odd-numbered ones the held-out text. For each bit width: RTN (symmetric, same group size: the
baseline GPTQ improves on) and GPTQ; the table gives the seconds `quantize` took, the recorded
`kl_fixed_text` (mean per-token KL from the unquantized model on a fixed text, nats) and the mean
negative log-likelihood per token on the held-out text (the unquantized model's is the first row).
Prints a Markdown table and the peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("LM_EVAL_BIAS_DATA_DIR",
                      str(Path(__file__).resolve().parent.parent.parent / "shared" / "data"))

HELD_OUT_DOCS = 40


def held_out_nll(lm, texts: list[str]) -> float:
    """Mean negative log-likelihood per predicted token over `texts` (each scored alone)."""
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for text in texts:
            ids = lm.tokenizer(text, return_tensors="pt").input_ids[:, :512]
            logits = lm.model(ids).logits[0, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum")
            total += nll.item()
            count += ids.shape[1] - 1
    return total / count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", default="4,3")
    parser.add_argument("--group-size", type=int, default=64)
    parser.add_argument("--n-calib", type=int, default=128)
    parser.add_argument("--calib-len", type=int, default=512)
    args = parser.parse_args(argv)

    from lm_eval_bias.models.hf_quant import HFQuantLM
    from lm_eval_bias.models.smollm2 import ensure_checkpoint
    from lm_eval_bias.tasks.perplexity import load_bold_wiki_docs

    checkpoint = str(ensure_checkpoint())
    docs = [d["text"] for d in load_bold_wiki_docs()]
    held_out = docs[1::2][:HELD_OUT_DOCS]
    with tempfile.TemporaryDirectory() as tmp:
        calib = Path(tmp) / "bold_wiki_even.txt"
        calib.write_text("\n".join(docs[0::2]), encoding="utf-8")

        def run(quant: str, **options):
            start = time.perf_counter()
            lm = HFQuantLM(pretrained=checkpoint, device="cpu", dtype="float32", batch_size=1,
                           quant=quant, **options)
            seconds = time.perf_counter() - start
            record = lm.get_model_info()["quantization"]
            return record, seconds, held_out_nll(lm, held_out)

        rows = []
        _, seconds, nll = run("none")
        rows.append(("none", "", f"{seconds:.1f} (load)", "", f"{nll:.4f}"))
        for bits in [int(b) for b in args.bits.split(",")]:
            record, _, nll = run("rtn", bits=bits, group_size=args.group_size, sym=True)
            rows.append((f"rtn w{bits} g{args.group_size} sym", "",
                         f"{record['quantize_seconds']:.1f}", f"{record['kl_fixed_text']:.4f}",
                         f"{nll:.4f}"))
            record, _, nll = run("gptq", bits=bits, group_size=args.group_size, calib=str(calib),
                                 n_calib=args.n_calib, calib_len=args.calib_len)
            rows.append((f"gptq w{bits} g{args.group_size}",
                         f"{args.n_calib} x {args.calib_len} tokens",
                         f"{record['quantize_seconds']:.1f}", f"{record['kl_fixed_text']:.4f}",
                         f"{nll:.4f}"))

    print("| setting | calibration | quantize s | KL fixed text | held-out NLL/token |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS {peak:,.0f} MiB; {os.cpu_count()} CPU cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
