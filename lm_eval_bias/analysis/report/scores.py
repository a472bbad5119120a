"""The report's ``tasks`` section: per (task, filter), every score of every condition with a
seeded bootstrap CI, the paired change against the reference, and lm-eval's own aggregates."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd

from lm_eval_bias.analysis.report.cells import (
    FLIP_SCORES,
    K,
    applicable_scores,
    cell_attrs,
    cells,
    compact,
    flip_fns,
    score_fns,
)
from lm_eval_bias.analysis.report.conditions import Condition
from lm_eval_bias.analysis.report.paired import Paired
from lm_eval_bias.analysis.runs import Run
from lm_eval_bias.metrics.flips import response_flipped
from lm_eval_bias.metrics.stats import bootstrap_counts_ci


def _seed_for(base_seed: int, *parts: str) -> int:
    return (base_seed * 1_000_003 + zlib.crc32("\x1f".join(parts).encode())) % (2 ** 32)


def _ci(counts: np.ndarray, fn, n_boot: int, seed: int, ci: float) -> dict:
    r = bootstrap_counts_ci(counts, fn, n_boot=n_boot, seed=seed, ci=ci)
    return {"estimate": r["estimate"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]}


def _excludes_zero(v: dict) -> bool | None:
    return None if v["ci_low"] is None else bool(v["ci_low"] > 0 or v["ci_high"] < 0)


def _reference_values(rows: dict, ritems: pd.DataFrame, scores: list[str], ref: Condition,
                      key: tuple[str, str], boot: dict) -> None:
    present, counts = compact(cells(ritems, ""), K)
    for s, fn in score_fns(cell_attrs(present), scores).items():
        seed = _seed_for(boot["seed"], *key, ref.id, s)
        rows[s]["values"][ref.id] = {
            **_ci(counts, fn, boot["n_boot"], seed, boot["ci"]),
            "difference": None, "difference_ci_low": None, "difference_ci_high": None,
            "significant": None, "n": int(counts.sum())}


def _condition_values(rows: dict, part: pd.DataFrame, scores: list[str], cond: Condition,
                      key: tuple[str, str], boot: dict) -> None:
    flip = response_flipped(part).astype(np.int64)
    joint = (cells(part, "base_") * K + cells(part, "other_")) * 2 + flip
    jp, jc = compact(joint, K * K * 2)
    b_attr = cell_attrs((jp // 2) // K)
    o_attr = cell_attrs((jp // 2) % K)
    bf, of = score_fns(b_attr, scores), score_fns(o_attr, scores)
    n_boot, ci, seed = boot["n_boot"], boot["ci"], _seed_for(boot["seed"], *key, cond.id)
    n = int(jc.sum())
    for s in scores:
        est = _ci(jc, of[s], n_boot, seed, ci)
        diff = _ci(jc, lambda x, s=s, of=of, bf=bf: of[s](x) - bf[s](x), n_boot, seed, ci)
        rows[s]["values"][cond.id] = {**est, "difference": diff["estimate"],
                                      "difference_ci_low": diff["ci_low"],
                                      "difference_ci_high": diff["ci_high"],
                                      "significant": _excludes_zero(diff), "n": n}
    for s, fn in flip_fns(b_attr["status"], o_attr["status"], jp % 2).items():
        est = _ci(jc, fn, n_boot, seed, ci)
        # a flip rate is a change itself: "significant" = its CI excludes 0
        rows[s]["values"][cond.id] = {**est, "difference": est["estimate"],
                                      "difference_ci_low": est["ci_low"],
                                      "difference_ci_high": est["ci_high"],
                                      "significant": _excludes_zero(est)
                                      if s == "net_change" else None, "n": n}


def _lm_eval_scores(runs: list[Run], idx: list[int], task: str, filt: str) -> dict:
    """lm-eval's own numeric aggregates of `task` (mean over the runs given)."""
    vals: dict[str, list[float]] = {}
    for i in idx:
        entry = (runs[i].results.get("results") or {}).get(task) or {}
        for key, v in entry.items():
            metric, _, f = str(key).partition(",")
            if f != filt or metric in ("alias", "bias_item", "samples") or metric.endswith(
                    "_stderr"):
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                continue
            vals.setdefault(metric, []).append(float(v))
    return {m: float(np.mean(v)) for m, v in sorted(vals.items())}


def _task_entry(runs: list[Run], conds: list[Condition], paired: dict[str, Paired],
                ref_items: pd.DataFrame, key: tuple[str, str], boot: dict) -> dict:
    task, filt = key
    ref = conds[0]
    mask_ref = (ref_items["task"] == task) & (ref_items["filter"] == filt)
    ritems = ref_items[mask_ref]
    scores = applicable_scores(ritems)
    rows = {s: {"metric": s, "source": "items", "values": {}} for s in scores}
    rows |= {s: {"metric": s, "source": "item pairs", "values": {}} for s in FLIP_SCORES}
    _reference_values(rows, ritems, scores, ref, key, boot)
    for c in conds[1:]:
        items = paired[c.id].items
        part = items[(items["task"] == task) & (items["filter"] == filt)]
        if len(part):
            _condition_values(rows, part, scores, c, key, boot)
    lm_eval: dict[str, dict] = {}
    for c in conds:
        for metric, v in _lm_eval_scores(runs, c.runs, task, filt).items():
            lm_eval.setdefault(metric, {})[c.id] = v
    return {
        "task": task, "filter": filt, "n_items": int(mask_ref.sum()) // max(len(ref.runs), 1),
        "scores_with_ci": scores + list(FLIP_SCORES),
        "scores": [rows[s] for s in [*scores, *FLIP_SCORES]],
        "lm_eval": [{"metric": m, "values": v} for m, v in sorted(lm_eval.items())],
    }


def tasks_section(runs: list[Run], conds: list[Condition], paired: dict[str, Paired], *,
                  n_boot: int, seed: int, ci: float) -> list[dict]:
    """``tasks``: one entry per (task, filter) of the reference runs, sorted."""
    ref_items = pd.concat([runs[i].items for i in conds[0].runs], ignore_index=True)
    keys = sorted(ref_items[["task", "filter"]].drop_duplicates().itertuples(index=False,
                                                                             name=None))
    boot = {"n_boot": n_boot, "seed": seed, "ci": ci}
    return [_task_entry(runs, conds, paired, ref_items, key, boot) for key in keys]


def significant_changes(tasks: list[dict], cond_id: str, task: str, filt: str) -> list[str]:
    """The item scores of (`task`, `filt`) whose change in condition `cond_id` is significant."""
    for t in tasks:
        if t["task"] == task and t["filter"] == filt:
            return sorted(row["metric"] for row in t["scores"] if row["source"] == "items"
                          and (row["values"].get(cond_id) or {}).get("significant"))
    return []
