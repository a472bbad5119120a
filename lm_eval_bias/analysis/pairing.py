"""Pairing two runs item by item, and the checks that they may be paired: shared by `compare`,
`report` and `submission` (export; `verify` recomputes through it).

Two runs are comparable when they have a task in common and, for every common task, the same task
version, n-shot, filters, documents (``doc_hash``) and doc set, and the same prompts
(``prompt_hash``), and were run by the same engine (transformers for hf and hf-quant, or
vllm); generation tasks must also have been scored by the same scorers. Other engines or
scorers are refused unless allowed explicitly. Items pair on (task, filter, doc_id).

Social groups are ranked by one rule everywhere (`rank_groups`): largest |net change| first,
groups whose net change is undefined last, then by task and group name.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from lm_eval_bias.analysis.quantization import engine
from lm_eval_bias.analysis.runs import Run
from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.record_schema import DERIVED_COLUMNS, read_fields

#: Per-item columns taken from each run into the paired table (as base_<col> / other_<col>): the
#: record fields whose pairing role is "value" (`lm_eval_bias.record_schema`), the columns derived
#: from `probs`, and the prompt hash.
PAIRED_VALUE_COLUMNS = (tuple(f.name for f in read_fields() if f.pairing == "value")
                        + DERIVED_COLUMNS + ("prompt_hash",))
#: Columns that describe the document, taken from the base run.
PAIRED_DOC_COLUMNS = (("task", "filter", "doc_id", "doc_hash")
                      + tuple(f.name for f in read_fields() if f.pairing == "doc"))


def _label(run: Run, side: str) -> str:
    return f"{side} ({run.results_file})"


def backend_difference(base: Run, other: Run) -> dict | None:
    """The two runs' backends when they use different engines (`analysis.quantization.ENGINES`:
    hf and hf-quant both run transformers, vllm its own kernels); None when the same or unknown."""
    b, o = engine(base.model), engine(other.model)
    if b is None or o is None or b == o:
        return None
    return {"base": base.backend, "other": other.backend, "base_engine": b, "other_engine": o}


def check_backends(base: Run, other: Run, allow: bool) -> dict | None:
    """Refuse runs from different engines unless `allow`; return the difference (None if none)."""
    d = backend_difference(base, other)
    if d is not None and not allow:
        raise BiasEvalError(
            f"BASE {base.path} ran on {d['base_engine']} (--model {d['base']}) but OTHER "
            f"{other.path} on {d['other_engine']} (--model {d['other']}); the numerical "
            "differences between backends would be counted as flips caused by quantization: run "
            "both on the same backend, or allow it explicitly (--allow-different-backends)"
        )
    return d


def check_comparable(base: Run, other: Run, *, allow_different_backends: bool = False) -> list[str]:
    """Common tasks, after refusing runs that cannot be paired item by item (runs of different
    backends too, unless `allow_different_backends`)."""
    check_backends(base, other, allow_different_backends)
    common = sorted(set(base.tasks) & set(other.tasks))
    if not common:
        raise BiasEvalError(
            f"no tasks in common: BASE {base.path} has {', '.join(base.tasks)}; OTHER {other.path} "
            f"has {', '.join(other.tasks)}; run both with the same --tasks"
        )
    for task in common:
        bv, ov = base.versions.get(task), other.versions.get(task)
        if bv != ov:
            raise BiasEvalError(
                f"task {task} is version {bv} in {_label(base, 'BASE')} but {ov} in "
                f"{_label(other, 'OTHER')}; rerun both with the same lm-eval-bias version"
            )
        bn, on = base.n_shot.get(task), other.n_shot.get(task)
        if bn != on:
            raise BiasEvalError(
                f"task {task} is {bn}-shot in {_label(base, 'BASE')} but {on}-shot in "
                f"{_label(other, 'OTHER')}; rerun both with the same --num_fewshot"
            )
    b = base.items[base.items["task"].isin(common)]
    o = other.items[other.items["task"].isin(common)]
    for task in common:
        bf = sorted(b.loc[b["task"] == task, "filter"].unique().tolist())
        of = sorted(o.loc[o["task"] == task, "filter"].unique().tolist())
        if bf != of:
            raise BiasEvalError(
                f"task {task} has filters {bf} in {_label(base, 'BASE')} but {of} in "
                f"{_label(other, 'OTHER')}; rerun both with the same task configuration"
            )
    keys = ["task", "filter", "doc_id"]
    both = b[keys + ["doc_hash", "prompt_hash"]].merge(
        o[keys + ["doc_hash", "prompt_hash"]], on=keys, suffixes=("_b", "_o"))
    diff = both[both["doc_hash_b"].fillna("") != both["doc_hash_o"].fillna("")]
    if len(diff):
        r = diff.iloc[0]
        n_task = int((both["task"] == r["task"]).sum())
        n_diff = int((diff["task"] == r["task"]).sum())
        raise BiasEvalError(
            f"different documents: task {r['task']} doc_id {r['doc_id']} has doc_hash "
            f"{str(r['doc_hash_b'])[:12]} in BASE but {str(r['doc_hash_o'])[:12]} in OTHER "
            f"({n_diff} of {n_task} docs differ); rerun both with the same data"
        )
    for task in common:
        bd = set(b.loc[b["task"] == task, "doc_id"].tolist())
        od = set(o.loc[o["task"] == task, "doc_id"].tolist())
        if bd != od:
            hint = (f" (--limit: BASE {base.limit}, OTHER {other.limit})"
                    if base.limit != other.limit else "")
            raise BiasEvalError(
                f"different doc sets for task {task}: BASE has {len(bd)} docs, OTHER has "
                f"{len(od)}, {len(bd & od)} in common{hint}; rerun both with the same --limit "
                "and data"
            )
    diff = both[both["prompt_hash_b"].fillna("") != both["prompt_hash_o"].fillna("")]
    if len(diff):
        r = diff.iloc[0]
        raise BiasEvalError(
            f"different prompts: task {r['task']} doc_id {r['doc_id']} has prompt_hash "
            f"{str(r['prompt_hash_b'])[:12]} in BASE but {str(r['prompt_hash_o'])[:12]} in OTHER "
            "(chat template, system instruction or few-shot examples differ); rerun both with "
            "the same prompt settings"
        )
    return common


def scorer_differences(base: Run, other: Run, tasks: list[str]) -> list[dict]:
    """Tasks whose recorded scorers differ: the string metrics named ``*_scorer`` (e.g.
    ``toxicity_scorer,none`` = "profanity (alt-profanity-check 1.9.1)") that the generation tasks
    write into ``results[task]``. One dict per (task, metric) that differs."""
    out = []
    base_res = base.results.get("results") or {}
    other_res = other.results.get("results") or {}
    for task in tasks:
        bv, ov = metric_values(base_res.get(task)), metric_values(other_res.get(task))
        for key in sorted(set(bv) | set(ov)):
            if not key[0].endswith("_scorer"):
                continue
            b, o = bv.get(key), ov.get(key)
            if b != o:
                out.append({"task": task, "metric": key[0], "filter": key[1], "base": b,
                            "other": o})
    return out


def check_scorers(base: Run, other: Run, tasks: list[str], allow: bool) -> list[dict]:
    diffs = scorer_differences(base, other, tasks)
    if diffs and not allow:
        d = diffs[0]
        raise BiasEvalError(
            f"task {d['task']} was scored by {d['base']} in BASE but {d['other']} in OTHER "
            f"({d['metric']}); scores from different scorers are not comparable: rerun both "
            f"with the same --metadata {d['metric']}, or allow it explicitly "
            "(--allow-different-scorers)"
        )
    return diffs


def pair_items(base_items: pd.DataFrame, other_items: pd.DataFrame) -> pd.DataFrame:
    """Join two item tables on (task, filter, doc_id) into the paired table `metrics.flips` reads:
    the document columns (`PAIRED_DOC_COLUMNS`, from BASE) and ``base_<c>`` / ``other_<c>`` for
    each of `PAIRED_VALUE_COLUMNS`. Only items present in both tables are kept."""
    keys = ["task", "filter", "doc_id"]
    left = base_items[list(PAIRED_DOC_COLUMNS) + list(PAIRED_VALUE_COLUMNS)].rename(
        columns={c: f"base_{c}" for c in PAIRED_VALUE_COLUMNS})
    right = other_items[keys + list(PAIRED_VALUE_COLUMNS)].rename(
        columns={c: f"other_{c}" for c in PAIRED_VALUE_COLUMNS})
    paired = left.merge(right, on=keys, how="inner", validate="one_to_one")
    return paired.sort_values(keys, kind="stable").reset_index(drop=True)


def metric_values(entry: Any) -> dict[tuple[str, str], Any]:
    out = {}
    if not isinstance(entry, dict):
        return out
    for key, value in entry.items():
        metric, _, filt = str(key).partition(",")
        out[(metric, filt)] = value
    return out


def rank_groups(rows: list[dict]) -> list[dict]:
    """`rows` (dicts with ``group``, ``net_change`` and optionally ``task``) ranked: largest
    |net change| first, undefined net change (None or NaN) last, then by task and group name."""
    def key(r):
        net = r.get("net_change")
        undefined = net is None or (isinstance(net, float) and math.isnan(net))
        return (undefined, 0.0 if undefined else -abs(net), str(r.get("task", "")),
                str(r["group"]))
    return sorted(rows, key=key)
