"""The report's ``quality`` section: lm-eval's perplexity-type metrics per condition, with the
relative change against the reference."""

from __future__ import annotations

import math

import numpy as np

from lm_eval_bias.analysis.report.conditions import Condition
from lm_eval_bias.analysis.runs import Run

#: lm-eval metrics that measure language-model quality (lower is better).
QUALITY_METRICS = ("word_perplexity", "byte_perplexity", "bits_per_byte", "perplexity")


def _values(runs: list[Run], conds: list[Condition]) -> dict[tuple[str, str, str], dict]:
    rows: dict[tuple[str, str, str], dict] = {}
    for c in conds:
        for i in c.runs:
            for task, entry in sorted((runs[i].results.get("results") or {}).items()):
                if not isinstance(entry, dict):
                    continue
                for key, v in entry.items():
                    metric, _, filt = str(key).partition(",")
                    if metric not in QUALITY_METRICS:
                        continue
                    if isinstance(v, bool) or not isinstance(v, (int, float)) \
                            or not math.isfinite(v):
                        continue
                    rows.setdefault((task, metric, filt), {}).setdefault(c.id, []).append(float(v))
    return rows


def quality_section(runs: list[Run], conds: list[Condition], notes: list[str]) -> dict:
    """``quality``; when any such metric is found, a note says which."""
    out = []
    ref_id = conds[0].id
    for (task, metric, filt), by_cond in sorted(_values(runs, conds).items()):
        values = {cid: float(np.mean(v)) for cid, v in by_cond.items()}
        ref = values.get(ref_id)
        out.append({
            "task": task, "metric": metric, "filter": filt, "values": values,
            "relative_change": {cid: ((v - ref) / ref if ref not in (None, 0) else None)
                                for cid, v in values.items() if cid != ref_id},
        })
    if out:
        notes.append("quality: lm-eval perplexity-type metrics found (" + ", ".join(sorted(
            {r["metric"] for r in out})) + "); shown next to bias emergence")
    return {"available": bool(out), "metrics": list(QUALITY_METRICS), "rows": out}
