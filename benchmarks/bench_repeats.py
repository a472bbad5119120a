"""k samples per RealToxicityPrompts prompt: lm-eval's `hf` (k prefills) vs `hf-quant`'s one
prefill (repeat_sampling=true), timed side by side, with a check that the samples have the same
distribution.

    python benchmarks/bench_repeats.py [--k 5,25] [--prompts 40] [--batch-size 16] [--rounds 4]
        [--threads N] [--json FILE]

Not a test. Both models wrap one SmolLM2-135M-Instruct model object (the embedded checkpoint,
`lm_eval_bias.models.smollm2.ensure_checkpoint()`; fp32 weights decoded from a Q4_1 GGUF file, so
already lossy), `hf-quant` with quant=none. The requests are the generate_until Instances lm-eval
builds for the first `--prompts` docs of each local RTP subset (challenging, non-toxic), with the
task's own generation kwargs (nucleus sampling p = 0.9, 20 tokens, stop at a blank line), cloned
k times as lm-eval's evaluator clones them: k = 5 from bias_rtp_lite_*, k = 25 from bias_rtp_*.
The prompts are generated in `--rounds` slices, alternating which model goes first (other
processes on a shared machine then slow both about equally); wall and process CPU time are summed.

Distribution check, per k (lm-eval's samples vs one-prefill samples of the same prompts):
- continuation length in tokens: chi-square test of homogeneity on the 2 x length histogram
  (adjacent lengths pooled until every column holds at least 10 samples), and the mean length of
  each prompt's k samples, paired Wilcoxon signed-rank;
- toxicity score of every scored continuation (scorer `--scorer`, default the offline
  `profanity`, the RTP tasks' default): two-sample Kolmogorov-Smirnov;
- per prompt: maximum toxicity (the quantity Expected Maximum Toxicity averages), two-sample KS,
  and the mean toxicity of the prompt's k samples, paired Wilcoxon signed-rank (same prompt, two
  paths);
- Expected Maximum Toxicity and Toxicity Probability of both, as the RTP task computes them.
Under the null hypothesis (same distribution) each p-value is uniform on [0, 1]: a single small
one among the several printed is expected now and then; a systematic difference shows as all of
them small, growing with `--prompts`.
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
os.environ.setdefault("LM_EVAL_BIAS_DATA_DIR",
                      str(Path(__file__).resolve().parent.parent.parent / "shared" / "data"))

TASKS = {5: ("bias_rtp_lite_challenging", "bias_rtp_lite_nontoxic"),
         25: ("bias_rtp_challenging", "bias_rtp_nontoxic")}


def rtp_requests(k: int, n_prompts: int) -> list:
    """One Instance per prompt (lm-eval's own, from the shipped task), `n_prompts` per subset."""
    from lm_eval.tasks import TaskManager, get_task_dict

    manager = TaskManager()
    out = []
    for name in TASKS[k]:
        task = get_task_dict([name], manager)[name]
        task.build_all_requests(limit=n_prompts, rank=0, world_size=1)
        instances = sorted(task.instances, key=lambda r: r.doc_id)
        assert all(r.repeats == k for r in instances), (name, instances[0].repeats)
        out += instances
    return out


def timed(lm, prompts, seed: int):
    """Outputs (k per prompt, in order), wall and process CPU seconds."""
    import torch

    cloned = [r for r in prompts for _ in range(r.repeats)]  # as lm-eval's evaluator clones
    torch.manual_seed(seed)
    wall, cpu = time.perf_counter(), time.process_time()
    out = lm.generate_until(cloned, disable_tqdm=True)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def interleaved(hf, hfq, prompts: list, rounds: int, seed: int):
    bounds = [round(i * len(prompts) / rounds) for i in range(rounds + 1)]
    ref, got, t_hf, t_one = [], [], [0.0, 0.0], [0.0, 0.0]
    for i in range(rounds):
        part = prompts[bounds[i]:bounds[i + 1]]
        order = [(hf, ref, t_hf), (hfq, got, t_one)]
        for lm, out, total in (order if i % 2 == 0 else order[::-1]):
            res, wall, cpu = timed(lm, part, seed + i)
            out.extend(res)
            total[0] += wall
            total[1] += cpu
    return ref, got, t_hf, t_one


def pooled_histogram(a: list[int], b: list[int], min_count: int = 10):
    """2 x bins table of two length samples, adjacent lengths pooled until each bin holds at
    least `min_count` of both samples together (the last bin joins its left neighbour if short)."""
    top = max(a + b)
    bins, current = [], [0, 0]
    for length in range(top + 1):
        current[0] += a.count(length)
        current[1] += b.count(length)
        if sum(current) >= min_count:
            bins.append(current)
            current = [0, 0]
    if sum(current):
        if bins:
            bins[-1] = [bins[-1][0] + current[0], bins[-1][1] + current[1]]
        else:
            bins.append(current)
    return [[c[0] for c in bins], [c[1] for c in bins]]


def per_prompt(values: list, k: int) -> list[list]:
    return [values[i:i + k] for i in range(0, len(values), k)]


def compare(tok, scorer, prompts, ref: list[str], got: list[str], k: int) -> dict:
    """Two-sample tests of length and toxicity: lm-eval's samples vs one-prefill samples."""
    from scipy import stats

    from lm_eval_bias.metrics.toxicity import (
        blank_to_missing,
        expected_maximum_toxicity,
        max_toxicity,
        toxicity_probability,
    )

    out: dict = {"samples": len(ref)}
    lengths = [[len(tok.encode(t, add_special_tokens=False)) for t in texts] for texts in (ref, got)]
    table = pooled_histogram(*lengths)
    out["length_mean"] = [sum(x) / len(x) for x in lengths]
    out["length_bins"] = len(table[0])
    out["length_chi2_p"] = (float(stats.chi2_contingency(table).pvalue)
                            if len(table[0]) > 1 else 1.0)
    prompt_lengths = [[sum(p) / len(p) for p in per_prompt(arm, k)] for arm in lengths]
    out["length_wilcoxon_p"] = (float(stats.wilcoxon(*prompt_lengths).pvalue)
                                if prompt_lengths[0] != prompt_lengths[1] else 1.0)
    scores = [blank_to_missing(texts, scorer.score(texts)) for texts in (ref, got)]
    flat = [[s for s in arm if s is not None] for arm in scores]
    out["tox_ks_p"] = float(stats.ks_2samp(*flat).pvalue)
    groups = [per_prompt(arm, k) for arm in scores]
    maxima = [[m for m in map(max_toxicity, arm) if m is not None] for arm in groups]
    out["max_tox_ks_p"] = float(stats.ks_2samp(*maxima).pvalue)
    means = [[sum(s for s in p if s is not None) / max(1, sum(s is not None for s in p))
              for p in arm] for arm in groups]
    diffs = [a - b for a, b in zip(*means, strict=True)]
    out["mean_tox_wilcoxon_p"] = (float(stats.wilcoxon(*means).pvalue)
                                  if any(d != 0 for d in diffs) else 1.0)
    out["emt"] = [expected_maximum_toxicity(arm) for arm in groups]
    out["tp"] = [toxicity_probability(arm) for arm in groups]
    out["empty"] = [sum(not t.strip() for t in texts) for texts in (ref, got)]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", default="5,25", help="comma-separated: 5 and/or 25")
    parser.add_argument("--prompts", type=int, default=40, help="prompts per RTP subset")
    parser.add_argument("--batch-size", default="16", help="lm-eval batch_size for both models")
    parser.add_argument("--rounds", type=int, default=4,
                        help="slices timed alternately on the two models")
    parser.add_argument("--scorer", default="profanity", help="toxicity scorer (see scorers/)")
    parser.add_argument("--seed", type=int, default=1234, help="torch seed of the first slice")
    parser.add_argument("--threads", type=int,
                        help="torch threads (default torch's; 1 is steadier on a loaded machine)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lm_eval_bias.models.hf_quant import HFQuantLM
    from lm_eval_bias.models.smollm2 import ensure_checkpoint
    from lm_eval_bias.scorers import get_scorer

    batch_size = args.batch_size if args.batch_size == "auto" else int(args.batch_size)
    checkpoint = str(ensure_checkpoint())
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    common = {"pretrained": model, "tokenizer": checkpoint, "batch_size": batch_size}
    hf, hfq = HFLM(**common), HFQuantLM(quant="none", **common)
    tok, scorer = AutoTokenizer.from_pretrained(checkpoint), get_scorer(args.scorer, "toxicity")
    warm = rtp_requests(5, 1)
    for lm in (hf, hfq):  # first-call overheads stay out of the timings
        timed(lm, warm, 0)

    print(f"\nSmolLM2-135M-Instruct (fp32 decoded from Q4_1 GGUF), CPU, {torch.get_num_threads()} "
          f"threads, batch_size={batch_size}, {args.prompts} prompts per RTP subset, "
          f"scorer {args.scorer}\n")
    print("| k | generations | hf wall s | hf-quant wall s | speed-up wall | cpu | length chi2 p "
          "| length Wilcoxon p "
          "| toxicity KS p | max-toxicity KS p | mean-toxicity Wilcoxon p | EMT hf / hf-quant "
          "| TP hf / hf-quant | mean length hf / hf-quant |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|")
    figures = []
    for k in (int(x) for x in args.k.split(",")):
        prompts = rtp_requests(k, args.prompts)
        ref, got, t_hf, t_one = interleaved(hf, hfq, prompts, args.rounds, args.seed)
        r = compare(tok, scorer, prompts, ref, got, k)
        r.update(k=k, t_hf=t_hf, t_one_prefill=t_one)
        figures.append(r)
        print(f"| {k} | {r['samples']} | {t_hf[0]:.1f} | {t_one[0]:.1f} "
              f"| {t_hf[0] / t_one[0]:.2f}x | {t_hf[1] / t_one[1]:.2f}x "
              f"| {r['length_chi2_p']:.3f} ({r['length_bins']} bins) "
              f"| {r['length_wilcoxon_p']:.3f} | {r['tox_ks_p']:.3f} "
              f"| {r['max_tox_ks_p']:.3f} | {r['mean_tox_wilcoxon_p']:.3f} "
              f"| {r['emt'][0]:.3f} / {r['emt'][1]:.3f} | {r['tp'][0]:.3f} / {r['tp'][1]:.3f} "
              f"| {r['length_mean'][0]:.2f} / {r['length_mean'][1]:.2f} |", flush=True)
    print(f"\nhf-quant generation record: {json.dumps(hfq.get_model_info()['generation'])}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
