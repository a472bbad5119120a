"""The report's ``comparisons`` section: per compared condition, item-level change against the
reference per task and per (task, group), McNemar tests with Benjamini-Hochberg, masked flipping,
uncertainty, group asymmetry and the spread over seeds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lm_eval_bias.analysis.output import jsonable
from lm_eval_bias.analysis.pairing import rank_groups
from lm_eval_bias.analysis.report.conditions import Condition, run_seed
from lm_eval_bias.analysis.report.paired import Paired
from lm_eval_bias.analysis.report.scores import significant_changes
from lm_eval_bias.analysis.runs import Run
from lm_eval_bias.metrics.flips import (
    flip_counts,
    flip_counts_by,
    flip_counts_by_uncertainty,
    high_low_ratio,
)
from lm_eval_bias.metrics.stats import benjamini_hochberg, masked_flipping, mcnemar

_SEED_FIGURES = ("response_flip_rate", "u2b_rate_of_unbiased", "b2u_rate_of_biased",
                 "net_change")


def _spread(values: list[float | None]) -> dict:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return {"n": 0, "mean": None, "sd": None, "min": None, "max": None}
    return {"n": int(v.size), "mean": float(v.mean()),
            "sd": float(v.std(ddof=1)) if v.size > 1 else None,
            "min": float(v.min()), "max": float(v.max())}


def _group_rows(part: pd.DataFrame, task: str, filt: str) -> list[dict]:
    rows = []
    for rec in flip_counts_by(part, "groups").to_dict(orient="records"):
        m = mcnemar(b=int(rec["u2b"]), c=int(rec["b2u"]))
        rows.append({"task": task, "filter": filt, "group": str(rec["groups"]),
                     **{k: v for k, v in rec.items() if k != "groups"},
                     "mcnemar_statistic": m["statistic"], "pvalue": m["pvalue"],
                     "test": m["method"]})
    return rows


def uncertainty_summary(paired: pd.DataFrame) -> dict:
    """Flip figures per uncertainty bin of the reference answer, and the high/low ratios."""
    by_bin = flip_counts_by_uncertainty(paired, "base_entropy_norm")
    return {"bins": [jsonable(r) for r in by_bin.to_dict(orient="records")],
            "high_low_ratio": high_low_ratio(by_bin, "response_flip_rate"),
            "high_low_ratio_bias_flips": high_low_ratio(by_bin, "bias_flip_rate"),
            "n_without_probs": int(paired["base_entropy_norm"].isna().sum())}


def _tests(paired: pd.DataFrame, cond_id: str, tasks: list[dict],
           alpha: float) -> tuple[list[dict], list[dict]]:
    """Task rows and group rows with McNemar p and Benjamini-Hochberg q over both together."""
    task_rows, group_rows = [], []
    for (task, filt), part in paired.groupby(["task", "filter"], sort=True):
        fc = flip_counts(part)
        m = mcnemar(b=fc["u2b"], c=fc["b2u"])
        task_rows.append({"task": task, "filter": filt, **fc,
                          "mcnemar_statistic": m["statistic"], "pvalue": m["pvalue"],
                          "test": m["method"], "uncertainty": uncertainty_summary(part),
                          "scores_changed_significantly": significant_changes(
                              tasks, cond_id, task, filt)})
        group_rows += _group_rows(part, task, filt)
    tests = task_rows + group_rows
    bh = benjamini_hochberg([t["pvalue"] for t in tests], alpha=alpha)
    for t, q in zip(tests, bh["qvalue"].tolist()):
        t["qvalue"] = None if q is None or (isinstance(q, float) and math.isnan(q)) else q
        t["significant"] = t["qvalue"] is not None and t["qvalue"] <= alpha
    return task_rows, group_rows


def _units(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame({"flips": [r["response_flips"] for r in rows],
                         "bias_flips": [r["bias_flips"] for r in rows],
                         "n": [r["n_paired"] for r in rows],
                         "significant": [r["significant"] for r in rows]},
                        columns=["flips", "bias_flips", "n", "significant"])


def _masked(task_rows: list[dict], groups: list[dict]) -> dict:
    units_t, units_g = _units(task_rows), _units(groups)
    return {
        "tasks": {"response_flips": masked_flipping(units_t),
                  "bias_flips": masked_flipping(units_t, flips="bias_flips")},
        "groups": {"response_flips": masked_flipping(units_g),
                   "bias_flips": masked_flipping(units_g, flips="bias_flips")},
    }


def _asymmetry(groups: list[dict]) -> dict:
    worse = [g for g in groups if g["net_change"] is not None and g["net_change"] > 0]
    better = [g for g in groups if g["net_change"] is not None and g["net_change"] < 0]
    return {
        "largest_worsening": max(worse, key=lambda g: g["net_change"], default=None),
        "largest_improvement": min(better, key=lambda g: g["net_change"], default=None),
        "n_groups": len(groups),
        "n_significant": sum(1 for g in groups if g["significant"]),
    }


def _seeds(runs: list[Run], p: Paired, total: dict) -> dict:
    per_seed = []
    for k, (j, i) in enumerate(p.pairs):
        fc = flip_counts(p.items[p.items["pair"] == k]) if len(p.pairs) > 1 else total
        per_seed.append({"run": f"r{i}", "reference_run": f"r{j}", "seed": run_seed(runs[i]),
                         "n_paired": fc["n_paired"], **{f: fc[f] for f in _SEED_FIGURES}})
    spread = {f: _spread([s[f] for s in per_seed]) for f in _SEED_FIGURES}
    return {"n": len(per_seed), "varying": p.cond.varying_seeds, "per_seed": per_seed,
            "spread": spread}


def _comparison(runs: list[Run], ref: Condition, p: Paired, tasks: list[dict],
                alpha: float) -> dict:
    c, paired = p.cond, p.items
    total = flip_counts(paired)
    task_rows, group_rows = _tests(paired, c.id, tasks, alpha)
    groups = [jsonable(g) for g in rank_groups(group_rows)]
    return {
        "condition": c.id, "reference": ref.id, "label": c.label, "bits": c.bits,
        "pairs": [{"run": f"r{i}", "reference_run": f"r{j}"} for j, i in p.pairs],
        "n_paired": int(len(paired)),
        "flips": total,
        "mcnemar": {**mcnemar(b=total["u2b"], c=total["b2u"]),
                    "n_tests_in_family": len(task_rows) + len(group_rows)},
        "tasks": task_rows,
        "groups": groups,
        "group_asymmetry": _asymmetry(groups),
        "uncertainty": uncertainty_summary(paired),
        "masked_flipping": _masked(task_rows, groups),
        "seeds": _seeds(runs, p, total),
    }


def comparisons_section(runs: list[Run], conds: list[Condition], paired: dict[str, Paired],
                        tasks: list[dict], *, alpha: float) -> list[dict]:
    """``comparisons``: one entry per compared condition, in condition order. `tasks` is the
    ``tasks`` section (which item scores changed significantly)."""
    return [_comparison(runs, conds[0], paired[c.id], tasks, alpha) for c in conds[1:]]
