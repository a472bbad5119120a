"""Time shared-prefix scoring (`hf-quant`, prefix_cache=true) against lm-eval's `hf` on shipped tasks.

    python benchmarks/bench_prefix_scoring.py [--tasks bias_bbq_age,...] [--items 150] [--batch-size 16]

Not a test. Both models are the embedded SmolLM2-135M-Instruct checkpoint
(`lm_eval_bias.models.smollm2.ensure_checkpoint()`; fp32 weights decoded from a Q4_1 GGUF file, so
already lossy), `hf-quant` with quant=none, loaded side by side in this process. The requests are
the loglikelihood Instances lm-eval itself builds for the first `--items` docs of each task (BBQ,
CrowS-Pairs and StereoSet by default; data from LM_EVAL_BIAS_DATA_DIR, default ../shared/data).
Each model scores a few warm-up requests first; then both score the same requests in `--rounds`
slices, alternating which goes first (other processes on a shared machine then slow both about
equally). The table shows wall and process CPU time summed over the slices, the token-count limit
of the speed-up (tokens through the model, padding excluded: one full row per request vs each
distinct context once), the largest |difference| in log-likelihood, and agreement of the argmax
per doc and of is_greedy per request.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("LM_EVAL_BIAS_DATA_DIR",
                      str(Path(__file__).resolve().parent.parent.parent / "shared" / "data"))

DEFAULT_TASKS = "bias_bbq_age,bias_crows_pairs_race_color,bias_stereoset_intra_gender"


def task_requests(task_name: str, n_items: int) -> list[list]:
    """The loglikelihood Instances lm-eval builds for the first `n_items` docs of a shipped task,
    grouped per doc (one per answer choice), exactly what `lm_eval run` would send the model."""
    from lm_eval.tasks import TaskManager, get_task_dict

    task = get_task_dict([task_name], TaskManager())[task_name]
    task.build_all_requests(limit=n_items, rank=0, world_size=1)
    per_doc: dict[int, list] = {}
    for inst in sorted(task.instances, key=lambda r: (r.doc_id, r.idx)):
        per_doc.setdefault(inst.doc_id, []).append(inst)
    return list(per_doc.values())


def token_counts(lm, requests) -> tuple[int, int]:
    """Tokens through the model: one full row per request (lm-eval) vs each distinct context once
    plus continuation[:-1] per request (shared prefix). lm-eval's single-token de-duplication
    is ignored (BBQ answers are multi-token)."""
    full, contexts, conts = 0, set(), 0
    for request in requests:
        context, continuation = request.args
        if context == "":  # as lm-eval's TemplateLM.loglikelihood: the prefix token is the context
            context_enc, cont_enc = [lm.prefix_token_id], lm.tok_encode(continuation)
        else:
            context_enc, cont_enc = lm._encode_pair(context, continuation)
        full += len(context_enc) + len(cont_enc) - 1
        contexts.add(tuple(context_enc))
        conts += len(cont_enc) - 1
    return full, sum(len(c) for c in contexts) + conts


def timed(lm, requests):
    """Results, wall seconds and this process's CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = lm.loglikelihood(requests, disable_tqdm=True)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def interleaved(hf, hfq, items: list[list], rounds: int):
    """Score the requests in `rounds` slices of whole docs, alternating which model goes first, so
    that load from other processes on a shared machine falls on both about equally."""
    bounds = [round(k * len(items) / rounds) for k in range(rounds + 1)]
    ref, got, t_hf, t_prefix = [], [], [0.0, 0.0], [0.0, 0.0]
    for k in range(rounds):
        part = [r for doc in items[bounds[k]:bounds[k + 1]] for r in doc]
        order = [(hf, ref, t_hf), (hfq, got, t_prefix)]
        for lm, out, total in (order if k % 2 == 0 else order[::-1]):
            res, wall, cpu = timed(lm, part)
            out.extend(res)
            total[0] += wall
            total[1] += cpu
    return ref, got, t_hf, t_prefix


def bench_task(hf, hfq, task_name: str, n_items: int, rounds: int) -> dict:
    items = task_requests(task_name, n_items)
    requests = [r for doc in items for r in doc]
    full_tokens, prefix_tokens = token_counts(hf, requests)
    ref, got, t_hf, t_prefix = interleaved(hf, hfq, items, rounds)
    diffs = [abs(a[0] - b[0]) for a, b in zip(ref, got)]
    greedy_same = sum(a[1] == b[1] for a, b in zip(ref, got))
    argmax_same, ties, i = 0, 0, 0
    for doc in items:
        a = [ll for ll, _ in ref[i:i + len(doc)]]
        b = [ll for ll, _ in got[i:i + len(doc)]]
        i += len(doc)
        argmax_same += a.index(max(a)) == b.index(max(b))
        ties += len(set(a)) < len(a)
    return {"task": task_name, "items": len(items), "requests": len(requests),
            "t_hf": t_hf, "t_prefix": t_prefix, "full_tokens": full_tokens,
            "prefix_tokens": prefix_tokens, "max_diff": max(diffs),
            "mean_diff": sum(diffs) / len(diffs), "greedy_same": greedy_same,
            "argmax_same": argmax_same, "ties": ties}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=DEFAULT_TASKS,
                        help="comma-separated shipped multiple-choice tasks")
    parser.add_argument("--items", type=int, default=150, help="docs per task")
    parser.add_argument("--batch-size", default="16", help="lm-eval batch_size for both models")
    parser.add_argument("--rounds", type=int, default=5,
                        help="slices timed alternately on the two models")
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
    warm = [r for doc in task_requests("bias_bbq_age", 2) for r in doc]
    for lm in (hf, hfq):  # warm-up: first-call overheads stay out of the timings
        lm.loglikelihood(warm, disable_tqdm=True)

    print(f"\nSmolLM2-135M-Instruct (fp32 decoded from Q4_1 GGUF), CPU, {torch.get_num_threads()} "
          f"threads, batch_size={batch_size}, {args.items} docs per task\n")
    print("| task | requests | hf wall s | hf-quant wall s | speed-up wall | cpu | token limit "
          "| max abs delta ll | argmax same | is_greedy same |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.tasks.split(","):
        r = bench_task(hf, hfq, name.strip(), args.items, args.rounds)
        print(f"| {r['task']} | {r['requests']} | {r['t_hf'][0]:.1f} | {r['t_prefix'][0]:.1f} "
              f"| {r['t_hf'][0] / r['t_prefix'][0]:.2f}x | {r['t_hf'][1] / r['t_prefix'][1]:.2f}x "
              f"| {r['full_tokens'] / r['prefix_tokens']:.2f}x | {r['max_diff']:.1e} "
              f"| {r['argmax_same']}/{r['items']} (ties {r['ties']}) "
              f"| {r['greedy_same']}/{r['requests']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
