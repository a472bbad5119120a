"""End to end: `lm_eval run --model hf` vs `--model hf-quant` on bias_rtp_lite and
bias_suite_lite, side by side in one benchmark run; optionally where the time goes per task.

    python benchmarks/bench_suite_lite.py [--tasks bias_rtp_lite,bias_suite_lite] [--limit N]
        [--batch-size 16] [--trials 1] [--threads N] [--profile] [--no-cli]

Not a test. The model is the embedded SmolLM2-135M-Instruct checkpoint
(`lm_eval_bias.models.smollm2.ensure_checkpoint()`; fp32 weights decoded from a Q4_1 GGUF file, so
already lossy), as the README's suite timing uses it: `--model_args pretrained=CKPT,dtype=float32
--device cpu --batch_size 16 --log_samples`. Each (task, model) is one real `lm_eval run` command
(start-up, model load, data, scoring, writing files: everything a user waits for); per trial the
two models alternate which goes first, so load from other processes falls on both about equally.
Wall time and the command's CPU time (user + system, from the OS) are reported, with the
speed-up, the headline scores of both runs (sampled generations differ between the two paths in
their draws, not in distribution: see benchmarks/bench_repeats.py) and hf-quant's
`config.generation` record.

`--profile` then loads the model once in this process and times `lm_eval.simple_evaluate` per
member task of bias_suite_lite, for both models (no start-up or model load in these figures): the
share of each task in the suite's time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("LM_EVAL_BIAS_DATA_DIR",
                      str(Path(__file__).resolve().parent.parent.parent / "shared" / "data"))

MODELS = ("hf", "hf-quant")
SUITE_TASKS = ("bias_bbq_lite", "bias_crows_pairs", "bias_winogender", "bias_iat",
               "bias_dt_fairness", "bias_rtp_mini", "bias_ppl_bold_wiki_lite")
HEADLINE = ("expected_max_toxicity,none", "toxicity_probability,none", "acc,none",
            "pct_stereotype,none", "bias_amb,none", "word_perplexity,none")


def lm_eval_command(model: str, task: str, checkpoint: str, batch_size: str, limit: str | None,
                    out: Path) -> list[str]:
    exe = Path(sys.executable).parent / "lm_eval"
    cmd = [str(exe) if exe.exists() else "lm_eval", "run", "--model", model, "--model_args",
           f"pretrained={checkpoint},dtype=float32", "--device", "cpu", "--batch_size",
           batch_size, "--tasks", task, "--log_samples", "--output_path", str(out)]
    return cmd + (["--limit", limit] if limit else [])


def run_timed(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one command; it must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def read_results(out: Path) -> dict:
    files = sorted(out.rglob("results_*.json"))
    if not files:
        sys.exit(f"no results_*.json under {out}")
    return json.loads(files[-1].read_text())


def headline(results: dict, task: str) -> str:
    """The group's headline scores (3 decimals), e.g. EMT and TP for RTP."""
    row = results["results"].get(task, {})
    parts = [f"{key.split(',')[0]} {row[key]:.3f}" for key in HEADLINE
             if isinstance(row.get(key), (int, float))]
    return ", ".join(parts) or f"{len(results['results'])} result rows"


def side_by_side(tasks: list[str], checkpoint: str, args) -> None:
    print("| task | limit | hf wall s | hf-quant wall s | speed-up wall | speed-up cpu "
          "| hf scores | hf-quant scores | hf-quant generation paths |")
    print("|---|---|---:|---:|---:|---:|---|---|---|")
    for task in tasks:
        totals = {m: [0.0, 0.0] for m in MODELS}
        last: dict[str, dict] = {}
        for trial in range(args.trials):
            for model in (MODELS if trial % 2 == 0 else MODELS[::-1]):
                with tempfile.TemporaryDirectory(prefix="bench-suite-") as tmp:
                    cmd = lm_eval_command(model, task, checkpoint, args.batch_size, args.limit,
                                          Path(tmp))
                    wall, cpu = run_timed(cmd, args.child_env)
                    last[model] = read_results(Path(tmp))
                totals[model][0] += wall
                totals[model][1] += cpu
        hf, hfq = totals["hf"], totals["hf-quant"]
        n = args.trials
        generation = last["hf-quant"]["config"].get("generation", {}).get("requests")
        print(f"| {task} | {args.limit or 'none'} | {hf[0] / n:.1f} | {hfq[0] / n:.1f} "
              f"| {hf[0] / hfq[0]:.2f}x | {hf[1] / hfq[1]:.2f}x | {headline(last['hf'], task)} "
              f"| {headline(last['hf-quant'], task)} | {json.dumps(generation)} |", flush=True)


def profile(checkpoint: str, args) -> None:
    """Per member task of bias_suite_lite: in-process evaluation time for both models."""
    import lm_eval
    import torch
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM

    from lm_eval_bias.models.hf_quant import HFQuantLM

    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    batch_size = args.batch_size if args.batch_size == "auto" else int(args.batch_size)
    common = {"pretrained": model, "tokenizer": checkpoint, "batch_size": batch_size}
    lms = {"hf": HFLM(**common), "hf-quant": HFQuantLM(quant="none", **common)}
    limit = None if args.limit is None else float(args.limit)
    times = {m: {} for m in MODELS}
    for i, task in enumerate(SUITE_TASKS):
        for name in (MODELS if i % 2 == 0 else MODELS[::-1]):
            start = time.perf_counter()
            lm_eval.simple_evaluate(model=lms[name], tasks=[task], limit=limit,
                                    log_samples=False, verbosity="ERROR")
            times[name][task] = time.perf_counter() - start
    total = {m: sum(times[m].values()) for m in MODELS}
    print("\n| task (in-process, model loaded) | hf s | share | hf-quant s | share | speed-up |")
    print("|---|---:|---:|---:|---:|---:|")
    for task in SUITE_TASKS:
        a, b = times["hf"][task], times["hf-quant"][task]
        print(f"| {task} | {a:.1f} | {a / total['hf']:.0%} | {b:.1f} "
              f"| {b / total['hf-quant']:.0%} | {a / b:.2f}x |")
    print(f"| all | {total['hf']:.1f} | | {total['hf-quant']:.1f} | "
          f"| {total['hf'] / total['hf-quant']:.2f}x |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="bias_rtp_lite,bias_suite_lite")
    parser.add_argument("--limit", help="lm-eval --limit (docs per task); none by default")
    parser.add_argument("--batch-size", default="16")
    parser.add_argument("--trials", type=int, default=1, help="runs per (task, model)")
    parser.add_argument("--profile", action="store_true",
                        help="also time each task of bias_suite_lite in process")
    parser.add_argument("--no-cli", action="store_true", help="only the --profile table")
    parser.add_argument("--threads", type=int,
                        help="torch threads (OMP_NUM_THREADS of the commands; default torch's, "
                             "all cores; 1 is steadier on a loaded machine)")
    args = parser.parse_args(argv)
    args.child_env = None
    if args.threads:
        args.child_env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        import torch

        torch.set_num_threads(args.threads)

    from lm_eval_bias.models.smollm2 import ensure_checkpoint

    checkpoint = str(ensure_checkpoint())
    print(f"\nSmolLM2-135M-Instruct (fp32 decoded from Q4_1 GGUF), CPU ({os.cpu_count()} cores), "
          f"batch_size={args.batch_size}, limit={args.limit}, {args.trials} trial(s), "
          f"threads={args.threads or 'default'}\n")
    if not args.no_cli:
        side_by_side([t.strip() for t in args.tasks.split(",")], checkpoint, args)
    if args.profile:
        profile(checkpoint, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
