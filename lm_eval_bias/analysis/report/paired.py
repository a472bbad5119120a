"""Each compared condition's runs paired item by item with the reference runs of the same seeds
(`analysis.pairing`: the same checks as `compare`)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from lm_eval_bias.analysis.pairing import (
    check_backends,
    check_comparable,
    check_scorers,
    pair_items,
)
from lm_eval_bias.analysis.report.conditions import Condition, seed_pairs
from lm_eval_bias.analysis.runs import Run


@dataclass
class Paired:
    """One compared condition against the reference: the (reference run, run) index pairs and the
    paired item table of all of them (column ``pair`` = index into `pairs`)."""
    cond: Condition
    pairs: list[tuple[int, int]]
    items: pd.DataFrame


def _pair_runs(base: Run, other: Run, cond: Condition, allow: tuple[bool, bool],
               notes: list[str]) -> pd.DataFrame:
    allow_different_scorers, allow_different_backends = allow
    d = check_backends(base, other, allow_different_backends)
    if d is not None:
        notes.append(f"{cond.id}: run on {d['other_engine']} (--model {d['other']}) but the "
                     f"reference on {d['base_engine']} (--model {d['base']}), allowed")
    common = check_comparable(base, other, allow_different_backends=True)
    for d in check_scorers(base, other, common, allow_different_scorers):
        notes.append(f"{cond.id}: task {d['task']} scored by {d['base']} in the reference "
                     f"but {d['other']} here ({d['metric']}), allowed")
    b, o = base.items, other.items
    if set(common) != set(b["task"].unique()):
        b = b[b["task"].isin(common)]
    if set(common) != set(o["task"].unique()):
        o = o[o["task"].isin(common)]
    only = sorted(set(base.tasks) ^ set(other.tasks))
    if only:
        notes.append(f"{cond.id}: tasks not in both runs, not compared: {', '.join(only)}")
    return pair_items(b, o)


def pair_conditions(runs: list[Run], conds: list[Condition], allow_different_scorers: bool,
                    notes: list[str], allow_different_backends: bool = False
                    ) -> dict[str, Paired]:
    """{condition id: `Paired`} for every condition but the reference (``conds[0]``); notes on
    allowed scorer and backend differences and tasks left out are appended to `notes`."""
    ref = conds[0]
    out = {}
    for c in conds[1:]:
        pairs = seed_pairs(runs, ref, c)
        parts = []
        for k, (j, i) in enumerate(pairs):
            p = _pair_runs(runs[j], runs[i], c,
                           (allow_different_scorers, allow_different_backends), notes)
            p["pair"] = k
            parts.append(p)
        items = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        out[c.id] = Paired(cond=c, pairs=pairs, items=items)
    return out
