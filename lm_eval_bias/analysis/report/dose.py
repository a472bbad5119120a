"""The report's ``dose_response`` section: logistic regression of "became biased" (items unbiased
in the reference) on bits removed, overall and per task, and the emergence rate per (task,
condition)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lm_eval_bias.analysis.report.conditions import Condition
from lm_eval_bias.analysis.report.paired import Paired
from lm_eval_bias.metrics.flips import flip_counts
from lm_eval_bias.metrics.stats import dose_response

MODEL = ("logit P(became biased) = intercept + slope * (reference_bits - bits); rows: items "
         "unbiased in the reference run with a bias label at that precision, one row per (item, "
         "seed, precision); several methods at one bit width are pooled; standard errors "
         "clustered by item (Firth's penalised fit under separation)")


def _emergence(conds: list[Condition], paired: dict[str, Paired]) -> list[dict]:
    out = []
    for c in conds[1:]:
        for (task, filt), part in paired[c.id].items.groupby(["task", "filter"], sort=True):
            fc = flip_counts(part)
            out.append({"task": task, "filter": filt, "condition": c.id, "bits": c.bits,
                        "u2b": fc["u2b"], "n_base_unbiased": fc["n_base_unbiased"],
                        "rate": fc["u2b_rate_of_unbiased"]})
    return sorted(out, key=lambda e: (e["task"], e["filter"], -(e["bits"] or -1),
                                      e["condition"]))


def _rows(c: Condition, paired: pd.DataFrame) -> pd.DataFrame:
    """One row per item unbiased in the reference with a bias label in condition `c`."""
    sel = paired["base_biased"].astype("boolean").eq(False).fillna(False) & \
        paired["other_biased"].notna()
    sub = paired.loc[sel.to_numpy(bool), ["task", "filter", "doc_id", "other_biased"]]
    # the cluster of the dose-response's standard errors: one item, at every precision and seed
    item = sub["task"].astype(str) + "\x1f" + sub["filter"].astype(str) + "\x1f" + \
        sub["doc_id"].astype(str)
    return pd.DataFrame({"task": sub["task"].to_numpy(object), "item": item.to_numpy(object),
                         "bits": np.full(len(sub), c.bits),
                         "became_biased": sub["other_biased"].astype(bool).to_numpy()})


def dose_response_section(conds: list[Condition], paired: dict[str, Paired],
                          notes: list[str]) -> dict:
    """``dose_response``; a condition without a bit width is left out and named in `notes`."""
    ref = conds[0]
    ref_bits = ref.bits if ref.bits is not None else 16.0
    rows = []
    for c in conds[1:]:
        if c.bits is not None:
            rows.append(_rows(c, paired[c.id].items))
        else:
            notes.append(f"{c.id} ({c.label}): no bit width recorded, left out of the "
                         "dose-response")
    if rows:
        dr = pd.concat(rows, ignore_index=True)
        dose = {"all_tasks": dose_response(dr, reference_bits=ref_bits),
                "tasks": [{"task": t, **dose_response(part, reference_bits=ref_bits)}
                          for t, part in dr.groupby("task", sort=True)]}
    else:
        dose = {"all_tasks": dose_response(pd.DataFrame({"item": [], "bits": [],
                                                         "became_biased": []}),
                                           reference_bits=ref_bits), "tasks": []}
    dose.update({
        "reference_bits": ref_bits,
        "levels": sorted({c.bits for c in conds[1:] if c.bits is not None}),
        "model": MODEL,
        "emergence": _emergence(conds, paired),
    })
    return dose
