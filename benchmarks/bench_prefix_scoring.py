"""Time shared-prefix scoring (`hf-quant`, prefix_cache=true) against lm-eval's `hf` on BBQ.

    python benchmarks/bench_prefix_scoring.py [--items 150] [--batch-size 16] [--bbq DIR]

Not a test. Both models are the embedded SmolLM2-135M-Instruct checkpoint
(`lm_eval_bias.models.smollm2.ensure_checkpoint()`; fp32 weights decoded from a Q4_1 GGUF file, so
already lossy), `hf-quant` with quant=none, loaded side by side in this process. The requests are
lm-eval `loglikelihood` Instances built from real BBQ items: prompt
`{context}\\n\\nQ: {question}\\nA:`, one request per answer with continuation " " + answer, the
first items of each category file in turn (deterministic). Each model scores a few warm-up
requests first; then both score the same requests in `--rounds` slices, alternating which goes first
(other processes on a shared machine then slow both about equally). The table shows wall and
process CPU time summed over the slices, the tokens each path runs through
the model (padding excluded), the largest |difference| in log-likelihood, and agreement of the
argmax per item and of is_greedy per request.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CATEGORIES = ("Age", "Gender_identity", "Nationality", "Religion", "SES")
DEFAULT_BBQ = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "bbq"


def bbq_items(bbq_dir: Path, n_items: int) -> list[dict]:
    """`n_items` BBQ items, taken round-robin from the first lines of each category file."""
    per_file = []
    for category in CATEGORIES:
        with (bbq_dir / "data" / f"{category}.jsonl").open() as fh:
            per_file.append([json.loads(line) for _, line in zip(range(n_items), fh)])
    items = [rows[i] for i in range(n_items) for rows in per_file if i < len(rows)]
    return items[:n_items]


def build_requests(items: list[dict]):
    from lm_eval.api.instance import Instance

    requests = []
    for doc_id, item in enumerate(items):
        prompt = f"{item['context']}\n\nQ: {item['question']}\nA:"
        for k in range(3):
            requests.append(Instance(request_type="loglikelihood", doc=item, idx=k, doc_id=doc_id,
                                     arguments=(prompt, " " + item[f"ans{k}"])))
    return requests


def token_counts(lm, requests) -> tuple[int, int]:
    """Tokens through the model: one full row per request (lm-eval) vs each distinct context once
    plus continuation[:-1] per request (shared prefix). lm-eval's single-token de-duplication
    is ignored (BBQ answers are multi-token)."""
    full, contexts, conts = 0, set(), 0
    for request in requests:
        context_enc, cont_enc = lm._encode_pair(*request.args)
        full += len(context_enc) + len(cont_enc) - 1
        contexts.add(tuple(context_enc))
        conts += len(cont_enc) - 1
    return full, sum(len(c) for c in contexts) + conts


def timed(lm, requests):
    """Results, wall seconds and this process's CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = lm.loglikelihood(requests, disable_tqdm=True)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def interleaved(hf, hfq, requests, rounds: int):
    """Score `requests` in `rounds` slices of whole items, alternating which model goes first, so
    that load from other processes on a shared machine falls on both about equally."""
    n_items = len(requests) // 3
    bounds = [round(k * n_items / rounds) * 3 for k in range(rounds + 1)]
    ref, got, t_hf, t_prefix = [], [], [0.0, 0.0], [0.0, 0.0]
    for k in range(rounds):
        part = requests[bounds[k]:bounds[k + 1]]
        order = [(hf, ref, t_hf), (hfq, got, t_prefix)]
        for lm, out, total in (order if k % 2 == 0 else order[::-1]):
            res, wall, cpu = timed(lm, part)
            out.extend(res)
            total[0] += wall
            total[1] += cpu
    return ref, got, t_hf, t_prefix


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=150, help="BBQ items (3 requests each)")
    parser.add_argument("--batch-size", default="16", help="lm-eval batch_size for both models")
    parser.add_argument("--rounds", type=int, default=5,
                        help="slices timed alternately on the two models")
    parser.add_argument("--bbq", type=Path, default=DEFAULT_BBQ, help="BBQ folder (data/*.jsonl)")
    args = parser.parse_args(argv)

    import torch
    from lm_eval.models.huggingface import HFLM

    from lm_eval_bias.models.hf_quant import HFQuantLM
    from lm_eval_bias.models.smollm2 import ensure_checkpoint

    batch_size = args.batch_size if args.batch_size == "auto" else int(args.batch_size)
    checkpoint = str(ensure_checkpoint())
    common = {"pretrained": checkpoint, "device": "cpu", "dtype": "float32",
              "batch_size": batch_size}
    hf = HFLM(**common)
    hfq = HFQuantLM(quant="none", prefix_cache=True, **common)

    items = bbq_items(args.bbq, args.items)
    requests = build_requests(items)
    for lm in (hf, hfq):  # warm-up: first-call overheads stay out of the timings
        lm.loglikelihood(build_requests(bbq_items(args.bbq, 2))[:4], disable_tqdm=True)

    full_tokens, prefix_tokens = token_counts(hf, requests)
    ref, got, t_hf, t_prefix = interleaved(hf, hfq, requests, args.rounds)

    diffs = [abs(a[0] - b[0]) for a, b in zip(ref, got)]
    greedy_same = sum(a[1] == b[1] for a, b in zip(ref, got))
    argmax_same, ties = 0, 0
    for i in range(len(items)):
        a = [ll for ll, _ in ref[3 * i:3 * i + 3]]
        b = [ll for ll, _ in got[3 * i:3 * i + 3]]
        argmax_same += a.index(max(a)) == b.index(max(b))
        ties += len(set(a)) < 3

    print(f"\nSmolLM2-135M-Instruct (fp32 decoded from Q4_1 GGUF), CPU, {torch.get_num_threads()} "
          f"threads, batch_size={batch_size}; {len(items)} BBQ items from "
          f"{', '.join(CATEGORIES)}, {len(requests)} requests")
    print(f"{'path':<34}{'wall s':>8}{'cpu s':>8}{'tokens':>8}{'speed-up wall':>15}{'cpu':>7}")
    print(f"{'hf (lm-eval, one row per answer)':<34}{t_hf[0]:>8.1f}{t_hf[1]:>8.1f}"
          f"{full_tokens:>8}{1.0:>14.2f}x{1.0:>6.2f}x")
    print(f"{'hf-quant quant=none prefix_cache':<34}{t_prefix[0]:>8.1f}{t_prefix[1]:>8.1f}"
          f"{prefix_tokens:>8}{t_hf[0] / t_prefix[0]:>14.2f}x{t_hf[1] / t_prefix[1]:>6.2f}x")
    print(f"token-count limit: {full_tokens / prefix_tokens:.2f}x")
    print(f"max |delta loglikelihood|: {max(diffs):.2e}   mean: {sum(diffs) / len(diffs):.2e}")
    print(f"argmax agreement: {argmax_same}/{len(items)} items (exact ties in hf: {ties})   "
          f"is_greedy agreement: {greedy_same}/{len(requests)} requests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
