"""Time shared-prefix scoring (`hf-quant`, prefix_cache=true) against lm-eval's `hf` on shipped tasks.

    python benchmarks/bench_prefix_scoring.py [--tasks bias_bbq_age,...] [--items 150] \
        [--batch-sizes 8,16,32,auto]

Not a test. Both models are the embedded SmolLM2-135M-Instruct checkpoint
(`lm_eval_bias.models.smollm2.ensure_checkpoint()`; fp32 weights decoded from a Q4_1 GGUF file, so
already lossy), `hf-quant` with quant=none, loaded side by side in this process. The requests are
the loglikelihood Instances lm-eval itself builds for the first `--items` docs of each task (BBQ,
CrowS-Pairs and StereoSet by default; data from LM_EVAL_BIAS_DATA_DIR, default ../shared/data).
The weights are loaded once (start-up is not timed) and shared by one `hf` and one `hf-quant`
per batch size. Each model scores a few warm-up requests first; then both score the same requests
in `--rounds` slices, alternating which goes first (other processes on a shared machine then slow
both about equally). With batch_size=auto each `loglikelihood` call first detects a batch size
(lm-eval runs 5 forward passes of the largest batch; on a CPU nothing runs out of memory, so it
is always max_batch_size=64): that time is reported apart and left out of the speed-up, since a
real run detects once for all its requests. The table shows wall and process CPU time summed
over the slices, tokens through the model (padding excluded: lm-eval's one full row per request;
each distinct context once; what the shared-prefix path runs, stems and suffixes included) and
the padded tokens of the shared-prefix passes, the largest |difference| in log-likelihood, and
agreement of the argmax per doc and of is_greedy per request.
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


def prefix_path_tokens(lm, requests, batch_size: int) -> tuple[int, int]:
    """Tokens the shared-prefix path runs for these requests at this batch size: (real, padded).
    Requests it leaves to lm-eval's path (too little shared) count as lm-eval's full rows."""
    from lm_eval_bias.models.prefix_scoring import (
        build_families,
        chunk_tokens,
        effective_item,
        group_by_context,
        plan_chunks,
        split_by_saving,
    )

    token_requests = []
    for request in requests:
        context, continuation = request.args
        if context == "":
            pair = [lm.prefix_token_id], lm.tok_encode(continuation)
        else:
            pair = lm._encode_pair(context, continuation)
        token_requests.append((request.args, *pair))
    items = [effective_item(i, r, lm.max_length) for i, r in enumerate(token_requests)]
    shared, alone = split_by_saving(items)
    real = padded = sum(len(items[i].context) + len(items[i].continuation) - 1 for i in alone)
    shared_items = [effective_item(n, token_requests[i], lm.max_length)
                    for n, i in enumerate(shared)]
    if shared_items:
        families = build_families(group_by_context(shared_items), batch_size)
        for chunk in plan_chunks(families, batch_size):
            r, p = chunk_tokens(chunk, shared_items, batch_size)
            real, padded = real + r, padded + p
    return real, padded


class DetectionTimer:
    """Time spent in lm-eval's batch-size detection (`_detect_batch_size`) of one model."""

    def __init__(self, lm) -> None:
        self.seconds, self.calls, self.sizes = 0.0, 0, set()
        detect = lm._detect_batch_size

        def timed_detect(*args, **kwargs):
            start = time.perf_counter()
            size = detect(*args, **kwargs)
            self.seconds += time.perf_counter() - start
            self.calls += 1
            self.sizes.add(size)
            return size

        lm._detect_batch_size = timed_detect


def timed(lm, requests):
    """Results, wall seconds and this process's CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = lm.loglikelihood(requests, disable_tqdm=True)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def interleaved(hf, hfq, items: list[list], rounds: int):
    """Score the requests in `rounds` slices of whole docs, alternating which model goes first, so
    that load from other processes on a shared machine falls on both about equally. Wall and CPU
    seconds leave out batch-size detection (returned apart, wall seconds)."""
    bounds = [round(k * len(items) / rounds) for k in range(rounds + 1)]
    ref, got, t_hf, t_prefix = [], [], [0.0, 0.0], [0.0, 0.0]
    timers = {id(hf): DetectionTimer(hf), id(hfq): DetectionTimer(hfq)}
    for k in range(rounds):
        part = [r for doc in items[bounds[k]:bounds[k + 1]] for r in doc]
        order = [(hf, ref, t_hf), (hfq, got, t_prefix)]
        for lm, out, total in (order if k % 2 == 0 else order[::-1]):
            timer = timers[id(lm)]
            before = timer.seconds
            res, wall, cpu = timed(lm, part)
            out.extend(res)
            total[0] += wall - (timer.seconds - before)
            total[1] += cpu - (timer.seconds - before)  # detection is CPU-bound here
    return ref, got, t_hf, t_prefix, timers[id(hf)], timers[id(hfq)]


def bench_task(hf, hfq, task_name: str, n_items: int, rounds: int, batch_size) -> dict:
    items = task_requests(task_name, n_items)
    requests = [r for doc in items for r in doc]
    full_tokens, prefix_tokens = token_counts(hf, requests)
    ref, got, t_hf, t_prefix, det_hf, det_prefix = interleaved(hf, hfq, items, rounds)
    size = max(det_prefix.sizes) if batch_size == "auto" else batch_size
    ours, ours_padded = prefix_path_tokens(hfq, requests, size)
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
            "prefix_tokens": prefix_tokens, "ours": ours, "ours_padded": ours_padded,
            "detect": (det_hf.seconds, det_prefix.seconds, det_hf.calls, det_prefix.calls,
                       sorted(det_hf.sizes | det_prefix.sizes)),
            "max_diff": max(diffs),
            "mean_diff": sum(diffs) / len(diffs), "greedy_same": greedy_same,
            "argmax_same": argmax_same, "ties": ties}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=DEFAULT_TASKS,
                        help="comma-separated shipped multiple-choice tasks")
    parser.add_argument("--items", type=int, default=150, help="docs per task")
    parser.add_argument("--batch-sizes", default="8,16,32,auto",
                        help="comma-separated lm-eval batch_size values, the same for both models")
    parser.add_argument("--rounds", type=int, default=4,
                        help="slices timed alternately on the two models")
    args = parser.parse_args(argv)

    import torch
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lm_eval_bias.models.hf_quant import HFQuantLM
    from lm_eval_bias.models.smollm2 import ensure_checkpoint

    checkpoint = str(ensure_checkpoint())
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    warm = [r for doc in task_requests("bias_bbq_age", 2) for r in doc]
    print(f"\nSmolLM2-135M-Instruct (fp32 decoded from Q4_1 GGUF), CPU, {torch.get_num_threads()} "
          f"threads, {args.items} docs per task, {args.rounds} alternated slices\n")
    print("| task | batch | requests | hf wall s | hf-quant wall s | speed-up wall | cpu "
          "| tokens: hf / distinct contexts / hf-quant (padded) | token limit "
          "| auto detection s (hf / hf-quant) | max abs delta ll | argmax same | is_greedy same |")
    print("|---|---|---:|---:|---:|---:|---:|---|---:|---|---:|---:|---:|")
    # one `hf` and one `hf-quant` for every batch size: created with batch_size=auto (so that
    # lm-eval sets up its detection), then given each size in turn (HFLM reads
    # `batch_size_per_gpu` on every call); warmed up once, so first-call overheads (and the
    # shared-prefix path's one-time check) stay out of the timings
    common = {"pretrained": model, "tokenizer": tokenizer, "batch_size": "auto"}
    hf, hfq = HFLM(**common), HFQuantLM(quant="none", prefix_cache=True, **common)
    for lm in (hf, hfq):
        lm.batch_size_per_gpu = 16
        lm.loglikelihood(warm, disable_tqdm=True)
    for size in args.batch_sizes.split(","):
        batch_size = size.strip() if size.strip() == "auto" else int(size)
        hf.batch_size_per_gpu = hfq.batch_size_per_gpu = batch_size
        # every `loglikelihood` call with auto detects again: one slice keeps that to one call
        rounds = 1 if batch_size == "auto" else args.rounds
        for name in args.tasks.split(","):
            r = bench_task(hf, hfq, name.strip(), args.items, rounds, batch_size)
            d = r["detect"]
            detect = (f"{d[0]:.1f} / {d[1]:.1f} ({d[2]} / {d[3]} calls, size {d[4]})"
                      if batch_size == "auto" else "-")
            print(f"| {r['task']} | {batch_size} | {r['requests']} | {r['t_hf'][0]:.1f} "
                  f"| {r['t_prefix'][0]:.1f} | {r['t_hf'][0] / r['t_prefix'][0]:.2f}x "
                  f"| {r['t_hf'][1] / r['t_prefix'][1]:.2f}x "
                  f"| {r['full_tokens']} / {r['prefix_tokens']} / {r['ours']} ({r['ours_padded']}) "
                  f"| {r['full_tokens'] / r['ours']:.2f}x | {detect} | {r['max_diff']:.1e} "
                  f"| {r['argmax_same']}/{r['items']} (ties {r['ties']}) "
                  f"| {r['greedy_same']}/{r['requests']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
