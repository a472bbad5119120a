"""Item-level comparison of two lm-eval runs (BASE, e.g. full precision, and OTHER, e.g. 4-bit).

`compare_run_folders` reads both folders (`analysis.runs`), refuses runs that are not comparable,
pairs the items on (task, filter, doc_id) and returns a JSON-serialisable dict; `render_terminal`,
`render_markdown` and `write_json` only present that dict. The numbers come from
`lm_eval_bias.metrics.flips` (definitions and formulas there).

Result structure (all rates are floats or None, never NaN)::

    {
      "schema": "lm-eval-bias/compare", "schema_version": 1,
      "base":  RUN_INFO, "other": RUN_INFO,            # Run.info(): paths, files used, model, ...
      "tasks": [TASK, ...],                            # one per (task, filter), sorted
      "all_tasks": {"n_tasks", "n_paired", "flips", "groups", "axes", "uncertainty",
                    "group_asymmetry"},
      "tasks_only_in_base": [str], "tasks_only_in_other": [str],
      "aggregate_only": [{"name", "scores": [SCORE]}], # groups / tasks without bias_item, in both
      "scorer_differences": [{"task", "metric", "filter", "base", "other"}],  # only when allowed
      "backend_difference": {"base", "other", "base_engine", "other_engine"},  # only when allowed
    }
    TASK  = {"task", "filter", "n_paired", "flips": FLIPS, "groups": [GROUP], "axes": [AXIS],
             "uncertainty": UNC, "group_asymmetry": ASYM, "scores": [SCORE],
             "score_changes": [SCHG]}   # only for open-ended tasks; all_tasks too
    SCHG  = {"group", "score", "n", "base_mean", "other_mean", "mean_change"}  (open tasks)
    FLIPS = {n_paired, response_flips, u2b, b2u, bias_flips, n_base_unbiased, n_base_biased,
             n_bias_defined, response_flip_rate, u2b_rate, b2u_rate, bias_flip_rate,
             u2b_rate_of_unbiased, b2u_rate_of_biased, net_change}
    GROUP = {"group", **FLIPS}   sorted by |net_change| (largest first, None last), then name
    AXIS  = {"axis", **FLIPS}    sorted by axis
    UNC   = {"bins": [{"bin": "low"|"medium"|"high", **FLIPS}], "high_low_ratio": float|None,
             "n_without_probs": int}
    ASYM  = {"largest_worsening": GROUP|None, "largest_improvement": GROUP|None}
    SCORE = {"metric", "filter", "base", "other", "difference", "base_stderr", "other_stderr"}
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lm_eval_bias._files import write_atomic
from lm_eval_bias.analysis.builtin import rebuilt_note
from lm_eval_bias.analysis.formatting import num, pct, quant_text
from lm_eval_bias.analysis.output import (
    check_output_file,
    jsonable,
    records,
    write_json,  # noqa: F401  (part of compare's interface)
)
from lm_eval_bias.analysis.pairing import (
    backend_difference,
    check_comparable,
    check_scorers,
    metric_values,
    pair_items,
    rank_groups,
)
from lm_eval_bias.analysis.runs import Run, read_run
from lm_eval_bias.metrics.flips import (
    flip_counts,
    flip_counts_by,
    flip_counts_by_uncertainty,
    high_low_ratio,
)

SCHEMA = "lm-eval-bias/compare"
SCHEMA_VERSION = 1

_TERMINAL_GROUPS = 20


def _number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


# ----------------------------------------------------------------------------- summaries


def score_changes_by_group(paired: pd.DataFrame) -> list[dict]:
    """Open-ended tasks: per social group and numeric item score (the ``scores`` object of the
    records, e.g. ``toxicity``, ``sentiment``, ``max_toxicity``), the mean score in each run over
    the items scored in both, and ``mean_change = other - base``. An item counts once in each of
    its groups; items without groups count under ``"(all)"``. Empty for closed tasks."""
    if "base_scores" not in paired.columns or "other_scores" not in paired.columns:
        return []
    sums: dict[tuple[str, str], list[float]] = {}
    for groups, bs, os_ in zip(paired["groups"].to_numpy(object),
                               paired["base_scores"].to_numpy(object),
                               paired["other_scores"].to_numpy(object)):
        if not isinstance(bs, dict) or not isinstance(os_, dict):
            continue
        names = list(groups) if isinstance(groups, (list, tuple, np.ndarray)) and len(groups) \
            else ["(all)"]
        for key, b in bs.items():
            o = os_.get(key)
            if _number(b) is None or _number(o) is None:
                continue
            for g in dict.fromkeys(names):
                acc = sums.setdefault((str(g), str(key)), [0, 0.0, 0.0])
                acc[0] += 1
                acc[1] += float(b)
                acc[2] += float(o)
    rows = []
    for (g, key), (n, b, o) in sorted(sums.items()):
        rows.append({"group": g, "score": key, "n": n, "base_mean": b / n, "other_mean": o / n,
                     "mean_change": (o - b) / n})
    return rows


def _summary(paired: pd.DataFrame) -> dict:
    groups = rank_groups(records(flip_counts_by(paired, "groups").rename(
        columns={"groups": "group"})))
    by_bin = flip_counts_by_uncertainty(paired, "base_entropy_norm")
    worsening = [g for g in groups if g["net_change"] is not None and g["net_change"] > 0]
    improving = [g for g in groups if g["net_change"] is not None and g["net_change"] < 0]
    out = {
        "n_paired": int(len(paired)),
        "flips": jsonable(flip_counts(paired)),
        "groups": groups,
        "axes": records(flip_counts_by(paired, "axis")),
        "uncertainty": {
            "bins": records(by_bin),
            "high_low_ratio": jsonable(high_low_ratio(by_bin)),
            "n_without_probs": int(paired["base_entropy_norm"].isna().sum()),
        },
        "group_asymmetry": {
            "largest_worsening": max(worsening, key=lambda g: g["net_change"], default=None),
            "largest_improvement": min(improving, key=lambda g: g["net_change"], default=None),
        },
    }
    changes = score_changes_by_group(paired)
    if changes:  # open-ended tasks only (records with a `scores` object)
        out["score_changes"] = changes
    return out


def score_rows(base_entry: Any, other_entry: Any, filter_: str | None = None) -> list[dict]:
    """lm-eval's aggregate scores of one task (``results[task]``) side by side.

    Keeps numeric ``metric,filter`` entries (a NaN score, e.g. a bias score with no non-unknown
    answer, is kept and reads None), leaves out ``alias``, ``*_stderr`` and ``bias_item``;
    ``difference = other - base`` (None when either is missing). Only filter `filter_` when given.
    """
    bv, ov = metric_values(base_entry), metric_values(other_entry)
    rows = []
    for metric, filt in sorted(set(bv) | set(ov)):
        if metric in ("alias", "bias_item", "samples") or metric.endswith("_stderr") or not filt:
            continue
        if filter_ is not None and filt != filter_:
            continue
        raw = [bv.get((metric, filt)), ov.get((metric, filt))]
        if not any(isinstance(x, (int, float)) and not isinstance(x, bool) for x in raw):
            continue  # not a score (e.g. a string), or absent on both sides
        b, o = _number(raw[0]), _number(raw[1])
        rows.append({
            "metric": metric, "filter": filt, "base": b, "other": o,
            "difference": (o - b) if (b is not None and o is not None) else None,
            "base_stderr": _number(bv.get((f"{metric}_stderr", filt))),
            "other_stderr": _number(ov.get((f"{metric}_stderr", filt))),
        })
    return rows


def compare_runs(base: Run, other: Run, *, allow_different_scorers: bool = False,
                 allow_different_backends: bool = False) -> dict:
    """Compare two runs already read with `read_run` (see the module docstring for the result).

    Runs whose generation tasks were scored by different scorers (or scorer versions) are refused
    unless `allow_different_scorers`; the differences are then listed under
    ``"scorer_differences"`` (a key present only when there are some). Runs of different engines
    (vllm against hf / hf-quant) likewise unless `allow_different_backends`, then named under
    ``"backend_difference"``."""
    common = check_comparable(base, other, allow_different_backends=allow_different_backends)
    backend_diff = backend_difference(base, other)
    scorer_diffs = check_scorers(base, other, common, allow_different_scorers)
    paired = pair_items(base.items[base.items["task"].isin(common)],
                        other.items[other.items["task"].isin(common)])
    base_res = base.results.get("results") or {}
    other_res = other.results.get("results") or {}
    tasks = []
    for (task, filt), part in paired.groupby(["task", "filter"], sort=True):
        entry = {"task": task, "filter": filt, **_summary(part)}
        entry["scores"] = score_rows(base_res.get(task), other_res.get(task), filt)
        tasks.append(entry)
    total = {"n_tasks": len(common), **_summary(paired)}
    aggregate_only = []
    for name in sorted((set(base_res) & set(other_res)) - set(common)):
        rows = score_rows(base_res[name], other_res[name])
        if rows:
            aggregate_only.append({"name": name, "scores": rows})
    extra = {"scorer_differences": scorer_diffs} if scorer_diffs else {}
    if backend_diff:
        extra["backend_difference"] = backend_diff
    return jsonable({
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "base": base.info(),
        "other": other.info(),
        "tasks": tasks,
        "all_tasks": total,
        "tasks_only_in_base": sorted(set(base.tasks) - set(other.tasks)),
        "tasks_only_in_other": sorted(set(other.tasks) - set(base.tasks)),
        "aggregate_only": aggregate_only,
        **extra,
    })


def compare_run_folders(base: str | Path, other: str | Path, *,
                        allow_different_scorers: bool = False,
                        allow_different_backends: bool = False) -> dict:
    """Read two lm-eval ``--output_path`` folders and compare them item by item.

    Refuses (`BiasEvalError`) runs with no task in common, a task whose version, n-shot or filters
    differ, a (task, doc_id) whose ``doc_hash`` or ``prompt_hash`` differs, or different doc sets
    (e.g. another ``--limit``). Returns the JSON-serialisable dict described in the module
    docstring.
    """
    return compare_runs(read_run(base), read_run(other),
                        allow_different_scorers=allow_different_scorers,
                        allow_different_backends=allow_different_backends)


# ----------------------------------------------------------------------------- rendering


def _run_lines(info: dict) -> tuple[str, str]:
    model = info.get("model_name") or "?"
    kind = ", ".join(str(x) for x in (info.get("model"), info.get("model_dtype")) if x)
    kind = f" [{kind}]" if kind else ""
    head = f"{model}{kind}: {quant_text(info.get('quantization'))}"
    files = info["results_file"]
    n_old = len(info.get("ignored_results_files") or [])
    if n_old:
        files += f" (newest; {n_old} older results file{'s' if n_old > 1 else ''} ignored)"
    note = rebuilt_note(info.get("rebuilt") or {})
    if note:
        files += f" ({note})"
    return head, files


def _task_rows(result: dict) -> list[list[str]]:
    def row(name, filt, s):
        f = s["flips"]
        return [name, filt, str(f["n_paired"]),
                f"{f['response_flips']} ({pct(f['response_flip_rate'])})",
                f"{f['u2b']} ({pct(f['u2b_rate_of_unbiased'])})",
                f"{f['b2u']} ({pct(f['b2u_rate_of_biased'])})",
                pct(f["net_change"], signed=True),
                num(s["uncertainty"]["high_low_ratio"])]
    rows = [row(t["task"], t["filter"], t) for t in result["tasks"]]
    rows.append(row("all tasks", "", result["all_tasks"]))
    return rows


_TASK_HEAD = ["task", "filter", "n", "response flips", "u2b (of unbiased)", "b2u (of biased)",
              "net change", "high/low"]
_GROUP_HEAD = ["group", "n", "response flips", "u2b (of unbiased)", "b2u (of biased)",
               "net change"]
_BIN_HEAD = ["uncertainty", "n", "response flips", "u2b", "b2u", "bias flips"]
_SCORE_HEAD = ["task", "metric", "filter", "BASE", "OTHER", "difference"]
_SCHG_HEAD = ["group", "score", "n", "BASE mean", "OTHER mean", "change"]


def _schg_rows(changes: list[dict], top: int | None = None) -> list[list[str]]:
    """Rows of `score_changes`; with `top`, only the largest |mean change| first (the terminal)."""
    if top is not None:
        changes = sorted(changes, key=lambda c: (c["mean_change"] is None,
                                                 -abs(c["mean_change"] or 0.0)))[:top]
    return [[c["group"], c["score"], str(c["n"]), num(c["base_mean"]), num(c["other_mean"]),
             num(c["mean_change"], signed=True)] for c in changes]


def _group_rows(groups: list[dict]) -> list[list[str]]:
    return [[g["group"], str(g["n_paired"]),
             f"{g['response_flips']} ({pct(g['response_flip_rate'])})",
             f"{g['u2b']} ({pct(g['u2b_rate_of_unbiased'])})",
             f"{g['b2u']} ({pct(g['b2u_rate_of_biased'])})",
             pct(g["net_change"], signed=True)] for g in groups]


def _bin_rows(unc: dict) -> list[list[str]]:
    return [[b["bin"], str(b["n_paired"]),
             f"{b['response_flips']} ({pct(b['response_flip_rate'])})",
             str(b["u2b"]), str(b["b2u"]),
             f"{b['bias_flips']} ({pct(b['bias_flip_rate'])})"] for b in unc["bins"]]


def _score_table_rows(result: dict) -> list[list[str]]:
    rows = []
    for t in result["tasks"]:
        for s in t["scores"]:
            rows.append([t["task"], s["metric"], s["filter"], num(s["base"]), num(s["other"]),
                         num(s["difference"], signed=True)])
    for a in result.get("aggregate_only", []):
        for s in a["scores"]:
            rows.append([a["name"], s["metric"], s["filter"], num(s["base"]), num(s["other"]),
                         num(s["difference"], signed=True)])
    return rows


def _fixed(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]

    def fmt(r):
        cells = [str(c).ljust(w) if i == 0 else str(c).rjust(w)
                 for i, (c, w) in enumerate(zip(r, widths))]
        return "  ".join(cells).rstrip()
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(head), rule, *(fmt(r) for r in rows)])


def _md(head: list[str], rows: list[list[str]]) -> str:
    def esc(c):
        return str(c).replace("|", "\\|")
    lines = ["| " + " | ".join(esc(h) for h in head) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


_NOTE = ("response flip = chosen option changed (valid<->invalid counts); u2b / b2u = item turned "
         "biased / unbiased (% of items unbiased / biased in BASE); net change = (u2b - b2u) / "
         "items with a bias label in both runs, positive = OTHER more biased; high/low = response "
         "flip rate of uncertain over confident BASE answers.")


def render_terminal(result: dict) -> str:
    """The comparison as fixed-width text: runs, tasks, groups (largest |net change| first, at most
    20), mean score changes by group of open-ended tasks (largest first, at most 20), uncertainty
    bins, lm-eval's aggregate scores."""
    out = []
    for side in ("base", "other"):
        head, files = _run_lines(result[side])
        out.append(f"{side.upper():<5}  {head}")
        out.append(f"{'':<5}  {files}")
    out += ["", "Item-level change, OTHER vs BASE", _fixed(_TASK_HEAD, _task_rows(result))]
    for key, label in (("tasks_only_in_base", "BASE"), ("tasks_only_in_other", "OTHER")):
        if result.get(key):
            out.append(f"(only in {label}, not compared: {', '.join(result[key])})")
    groups = result["all_tasks"]["groups"]
    if groups:
        shown = groups[:_TERMINAL_GROUPS]
        title = "Social groups, largest |net change| first"
        if len(groups) > len(shown):
            title += f" (top {len(shown)} of {len(groups)}; all in --output-json / --output-md)"
        out += ["", title, _fixed(_GROUP_HEAD, _group_rows(shown))]
    changes = result["all_tasks"].get("score_changes") or []
    if changes:  # open-ended tasks: how each group's mean score moved
        title = "Mean score change by group, OTHER - BASE (open-ended tasks), largest first"
        if len(changes) > _TERMINAL_GROUPS:
            title += (f" (top {_TERMINAL_GROUPS} of {len(changes)}; all in --output-json / "
                      "--output-md)")
        out += ["", title, _fixed(_SCHG_HEAD, _schg_rows(changes, _TERMINAL_GROUPS))]
    unc = result["all_tasks"]["uncertainty"]
    out += ["", "Uncertainty of the BASE answer (normalized entropy: low <= 1/3 < medium <= 2/3 "
            "< high)", _fixed(_BIN_HEAD, _bin_rows(unc))]
    extra = f"high/low response-flip ratio: {num(unc['high_low_ratio'])}"
    if unc["n_without_probs"]:
        extra += f"; {unc['n_without_probs']} items without probabilities are in no bin"
    out.append(extra)
    scores = _score_table_rows(result)
    if scores:
        out += ["", "lm-eval aggregate scores", _fixed(_SCORE_HEAD, scores)]
    out += ["", _NOTE]
    return "\n".join(out) + "\n"


def render_markdown(result: dict) -> str:
    """The comparison as Markdown: a header naming BASE and OTHER (model and quantization), then
    the same tables as `render_terminal` (all groups, and per task)."""
    out = ["# Item-level comparison", ""]
    for side in ("base", "other"):
        head, files = _run_lines(result[side])
        out.append(f"- **{side.upper()}**: {head} — `{files}`")
    out += ["", "## Tasks", "", _md(_TASK_HEAD, _task_rows(result))]
    for key, label in (("tasks_only_in_base", "BASE"), ("tasks_only_in_other", "OTHER")):
        if result.get(key):
            out += ["", f"Only in {label}, not compared: {', '.join(result[key])}"]
    if result["all_tasks"]["groups"]:
        out += ["", "## Social groups (all tasks), largest |net change| first", "",
                _md(_GROUP_HEAD, _group_rows(result["all_tasks"]["groups"]))]
    if result["all_tasks"].get("score_changes"):
        out += ["", "## Mean score change by group, OTHER - BASE (open-ended tasks)", "",
                "Mean of each item score over the items scored in both runs.", "",
                _md(_SCHG_HEAD, _schg_rows(result["all_tasks"]["score_changes"]))]
    unc = result["all_tasks"]["uncertainty"]
    out += ["", "## Uncertainty of the BASE answer", "",
            "Normalized entropy of BASE's option probabilities: low <= 1/3 < medium <= 2/3 < high.",
            "", _md(_BIN_HEAD, _bin_rows(unc)), "",
            f"High/low response-flip ratio: {num(unc['high_low_ratio'])}."]
    if unc["n_without_probs"]:
        out[-1] += f" {unc['n_without_probs']} items without probabilities are in no bin."
    scores = _score_table_rows(result)
    if scores:
        out += ["", "## lm-eval aggregate scores", "", _md(_SCORE_HEAD, scores)]
    if len(result["tasks"]) > 1:
        out += ["", "## Per task"]
        for t in result["tasks"]:
            out += ["", f"### {t['task']} (filter {t['filter']})", ""]
            if t["groups"]:
                out += [_md(_GROUP_HEAD, _group_rows(t["groups"])), ""]
            if t.get("score_changes"):
                out += [_md(_SCHG_HEAD, _schg_rows(t["score_changes"])), ""]
            out += [_md(_BIN_HEAD, _bin_rows(t["uncertainty"]))]
    out += ["", _NOTE, ""]
    return "\n".join(out)


def write_markdown(result: dict, path: str | Path) -> None:
    """Write `render_markdown(result)` atomically (as `write_json`)."""
    path = check_output_file(path)
    write_atomic(path, render_markdown(result))
