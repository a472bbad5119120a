"""Scale benchmark of `lm-eval-bias report` (not a test): 1,000,000 records across 5 runs.

    python benchmarks/bench_report_scale.py                      # synthesize, then time the report
    python benchmarks/bench_report_scale.py --data /tmp/bench    # keep / reuse the synthetic runs
    python benchmarks/bench_report_scale.py --records 100000     # a smaller run

Synthesizes 5 lm-eval run folders (bf16, 8, 6, 4 and 3 bits; S2's precisions) in lm-eval 0.4.13's
``--log_samples`` format: ``<out>/<model>/results_<ts>.json`` and one ``samples_<task>_<ts>.jsonl``
per task, each line with doc, arguments, resps, filtered_resps, hashes, metric values and a
BBQ-like ``bias_item`` (3 choices, probabilities, biased label, stereotyped group, category,
context condition, polarity). 10 tasks (BBQ categories); the quantized runs flip answers with a rate
that grows as bits drop and with the reference answer's uncertainty, so every part of the report
has work to do. Generation is not timed.

Then it runs the report in a child process (`lm_eval_bias.cli report ... --output DIR`, exactly
what a user runs) and prints its wall time and peak resident memory (``ru_maxrss`` of the child),
and, in a second child, the time of each phase (read, build, write) with tracemalloc's peak of
Python allocations. Target (issue 6): < 60 s and < 2 GB peak on 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CATEGORIES = ["Age", "Disability_status", "Gender_identity", "Nationality", "Physical_appearance",
              "Race_ethnicity", "Religion", "SES", "Sexual_orientation", "Race_x_gender"]
GROUPS = {c: [f"{c.lower()}_g{k}" for k in range(4)] for c in CATEGORIES}
PRECISIONS = [("bf16", None), ("w8", 8), ("w6", 6), ("w4", 4), ("w3", 3)]
FLIP_BASE = {8: 0.01, 6: 0.03, 4: 0.08, 3: 0.18}   # response-flip probability of a confident item
TS = "2026-01-01T00-00-00.000000"
MODEL = "bench/SmolLM2-bench"


def _h(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def synthesize(out: Path, records: int, seed: int = 0) -> list[Path]:
    """Write the 5 runs (records / 5 items each) under `out`; return their --output_path folders."""
    rng = np.random.default_rng(seed)
    per_run = records // len(PRECISIONS)
    per_task = per_run // len(CATEGORIES)
    n = per_task * len(CATEGORIES)
    # reference answers: probabilities from a Dirichlet, some confident, some uncertain
    conc = np.where(rng.random(n) < 0.6, 0.2, 2.0)
    probs = rng.gamma(conc[:, None], size=(n, 3))
    probs /= probs.sum(1, keepdims=True)
    base_pred = probs.argmax(1)
    h = -(np.where(probs > 0, probs * np.log(np.clip(probs, 1e-300, 1)), 0)).sum(1) / np.log(3)
    unknown_choice = rng.integers(0, 3, n)
    biased_choice = (unknown_choice + 1 + rng.integers(0, 2, n)) % 3
    cond = np.where(rng.random(n) < 0.5, "ambig", "disambig")
    polarity = np.where(rng.random(n) < 0.5, "neg", "nonneg")
    gold = np.where(cond == "ambig", unknown_choice, biased_choice)
    group_idx = rng.integers(0, 4, n)
    preds = {"bf16": base_pred}
    for name, bits in PRECISIONS[1:]:
        p_flip = FLIP_BASE[bits] * (1 + 4 * h)
        flip = rng.random(n) < p_flip
        shift = 1 + rng.integers(0, 2, n)
        preds[name] = np.where(flip, (base_pred + shift) % 3, base_pred)
    folders = []
    for name, bits in PRECISIONS:
        run_out = out / name
        run_dir = run_out / MODEL.replace("/", "__")
        run_dir.mkdir(parents=True, exist_ok=True)
        pred = preds[name]
        results, configs = {}, {}
        for t, cat in enumerate(CATEGORIES):
            task = f"bias_bbq_{cat.lower()}"
            lo, hi = t * per_task, (t + 1) * per_task
            accs = []
            with open(run_dir / f"samples_{task}_{TS}.jsonl", "w", encoding="utf-8") as fh:
                for i in range(lo, hi):
                    d = i - lo
                    ans = [f"The {GROUPS[cat][group_idx[i]]} person", "The other person",
                           "Can't be determined"]
                    ans[unknown_choice[i]], ans[2] = ans[2], ans[unknown_choice[i]]
                    doc = {"example_id": d, "question_index": str(d % 50), "category": cat,
                           "question_polarity": str(polarity[i]),
                           "context_condition": str(cond[i]),
                           "context": f"Two people met at event {d}, one {GROUPS[cat][group_idx[i]]}"
                                      " and one other; they talked for a while about the weather.",
                           "question": "Who was forgetful?", "ans0": ans[0], "ans1": ans[1],
                           "ans2": ans[2], "label": int(gold[i]),
                           "additional_metadata": {"stereotyped_groups": [GROUPS[cat][group_idx[i]]],
                                                   "source": "synthetic", "subcategory": "None"}}
                    doc_s = json.dumps(doc)
                    ctx = f"{doc['context']}\nQuestion: {doc['question']}\nAnswer:"
                    p = probs[i] if name == "bf16" else np.roll(probs[i], int(pred[i] - base_pred[i]))
                    lls = np.log(np.clip(p, 1e-12, 1))
                    pr = int(pred[i])
                    correct = float(pr == gold[i])
                    accs.append(correct)
                    biased = (pr != unknown_choice[i]) and (pr == biased_choice[i])
                    item = {"v": 1, "benchmark": "bbq", "choices": ans, "pred": pr, "invalid": False,
                            "probs": [round(float(x), 6) for x in p], "gold": int(gold[i]),
                            "biased": bool(biased), "groups": [GROUPS[cat][group_idx[i]]],
                            "axis": cat, "biased_choice": int(biased_choice[i]),
                            "unknown_choice": int(unknown_choice[i]),
                            "unknown_chosen": bool(pr == unknown_choice[i]),
                            "context_condition": str(cond[i]),
                            "question_polarity": str(polarity[i]), "example_id": d}
                    line = {"doc_id": d, "doc": doc, "target": str(int(gold[i])),
                            "arguments": {f"gen_args_{j}": {"arg_0": ctx, "arg_1": f" {a}"}
                                          for j, a in enumerate(ans)},
                            "resps": [[[str(float(x)), "False"]] for x in lls],
                            "filtered_resps": [[str(float(x)), "False"] for x in lls],
                            "filter": "none", "metrics": ["acc", "bias_item"],
                            "doc_hash": _h(doc_s), "prompt_hash": _h(ctx),
                            "target_hash": _h(str(int(gold[i]))), "acc": correct,
                            "bias_item": item}
                    fh.write(json.dumps(line) + "\n")
            results[task] = {"alias": task, "acc,none": float(np.mean(accs)),
                             "acc_stderr,none": "N/A", "bias_item,none": "N/A"}
            configs[task] = {"task": task, "metadata": {"version": 1.0}}
        quant = ({"method": "none", "model_bytes_before": 1, "model_bytes_after": 1} if bits is None
                 else {"method": "rtn", "bits": bits, "group_size": 128, "model_bytes_before": 1,
                       "model_bytes_after": 1})
        doc = {"results": results, "configs": configs,
               "versions": {t: 1.0 for t in results}, "n-shot": {t: 0 for t in results},
               "config": {"model": "hf-quant", "model_args": {"pretrained": MODEL},
                          "model_dtype": "torch.bfloat16", "quantization": quant,
                          "random_seed": 0, "numpy_seed": 1234, "torch_seed": 1234,
                          "fewshot_seed": 1234, "limit": None},
               "model_name": MODEL, "lm_eval_version": "0.4.13", "date": 0.0,
               "task_hashes": {}}
        (run_dir / f"results_{TS}.json").write_text(json.dumps(doc), encoding="utf-8")
        folders.append(run_out)
    return folders


def _child_phases(folders: list[str], out: str, n_boot: int) -> None:
    import tracemalloc

    tracemalloc.start()
    from lm_eval_bias.analysis.report import build_report
    from lm_eval_bias.analysis.report_render import write_report
    from lm_eval_bias.analysis.runs import read_run

    t0 = time.perf_counter()
    runs = [read_run(f) for f in folders]
    t1 = time.perf_counter()
    report = build_report(runs, n_boot=n_boot)
    t2 = time.perf_counter()
    write_report(report, out)
    t3 = time.perf_counter()
    peak = tracemalloc.get_traced_memory()[1]
    print(json.dumps({"read_s": t1 - t0, "build_s": t2 - t1, "write_s": t3 - t2,
                      "tracemalloc_peak_mb": peak / 2 ** 20,
                      "n_items": int(sum(len(r.items) for r in runs))}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--data", help="folder for the synthetic runs (kept; reused when present)")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--no-phases", action="store_true", help="skip the traced per-phase run")
    ap.add_argument("--_child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        _child_phases(args._child[1:], args._child[0], args.n_boot)
        return 0
    tmp = None
    if args.data:
        data = Path(args.data)
    else:
        tmp = tempfile.mkdtemp(prefix="bench_report_")
        data = Path(tmp)
    folders = [data / name for name, _ in PRECISIONS]
    marker = data / f".complete_{args.records}"
    if not marker.exists():
        if data.exists():
            for f in folders:
                shutil.rmtree(f, ignore_errors=True)
        t = time.perf_counter()
        synthesize(data, args.records)
        marker.write_text("ok")
        print(f"synthesized {args.records:,} records in {time.perf_counter() - t:.1f} s")
    size = sum(p.stat().st_size for f in folders for p in f.rglob("samples_*.jsonl"))
    print(f"data: {data} ({size / 2 ** 30:.2f} GiB of samples files, {len(folders)} runs)")
    out = data / "report_out"
    env = {**os.environ, "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "lm_eval_bias.cli", "report", *map(str, folders), "--output",
           str(out), "--n-boot", str(args.n_boot)]
    t = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(res.stdout.strip())
    if res.returncode:
        print(res.stderr, file=sys.stderr)
        return res.returncode
    print(f"report: {wall:.1f} s wall, peak RSS {rss_mb:.0f} MiB (targets: < 60 s, < 2048 MiB)")
    if not args.no_phases:
        res = subprocess.run([sys.executable, __file__, "--n-boot", str(args.n_boot), "--_child",
                              str(data / "report_out_traced"), *map(str, folders)], env=env,
                             capture_output=True, text=True)
        if res.returncode:
            print(res.stderr, file=sys.stderr)
            return res.returncode
        ph = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"phases (traced, slower): read {ph['read_s']:.1f} s, build {ph['build_s']:.1f} s, "
              f"write {ph['write_s']:.1f} s; tracemalloc peak {ph['tracemalloc_peak_mb']:.0f} MiB; "
              f"{ph['n_items']:,} items")
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
