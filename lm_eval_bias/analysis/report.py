"""The report over N runs: scores with CIs, item-level change with significance, masked flipping,
uncertainty, group asymmetry, dose-response, seeds, quality next to bias.

`build_report(runs)` takes runs read with `analysis.runs.read_run` and returns one JSON-serialisable
dict (the renderers in `report_render` only present it). The numbers come from `metrics.flips`
(flip counts) and `metrics.stats` (McNemar, Benjamini-Hochberg, bootstrap, logistic regression).

Conditions, reference, seeds
----------------------------
Runs are grouped into *conditions*: same checkpoint (``model_name``), dtype, quantization record
(without its volatile keys: timings, byte counts, errors, library version) and task list. Runs of
one condition differ only in a seed (``config.random_seed/numpy_seed/torch_seed/fewshot_seed``,
task metadata keys with "seed" in the name, e.g. BBQ's ``permute_seed``, model_args "seed" keys);
they are pooled, and the spread across seeds is reported. Two runs with the same condition and
seed are refused (double counting).

The reference condition is the unquantized one (no quantization record, or method ``none``), or
the one of the run named by ``reference``. Several unquantized conditions without a choice are
refused. Each run of another condition is paired with the reference run of the same seed, or with
the only reference run when the reference has one; pairing follows `analysis.compare` (same task
versions, n-shot, filters, documents, prompts; refused otherwise).

Bit width (dose-response): ``quantization.bits`` (or model_args ``bits`` / ``load_in_4bit`` /
``load_in_8bit``). The reference counts as the width of its dtype (``model_dtype``: float32 -> 32,
float16 / bfloat16 -> 16; 16 when not recorded). Only the intercept depends on that choice: the
slope per bit removed does not.

Scores with CIs (recomputed from the item records; lm-eval's own aggregates are listed beside
them without CIs): ``accuracy`` (pred == gold, invalid = wrong; tasks whose items all have a gold),
``biased_rate`` (biased answers / answers with a bias label), ``unknown_rate`` (items whose
"unknown" option was chosen / items), and for BBQ-like items with a context condition
``acc_amb``, ``acc_disamb``, ``bias_disamb`` (s_DIS) and ``bias_amb`` (s_AMB) as in
`/work/shared/METRICS.md`; and the flip figures ``response_flip_rate``, ``u2b_rate_of_unbiased``,
``b2u_rate_of_biased``, ``net_change``. CIs are seeded percentile bootstraps over items (drawn as
multinomial cell counts, `metrics.stats.bootstrap_counts_ci`); a change against the reference is
*significant* when the paired bootstrap CI of the difference excludes 0.

Significance of item-level change: McNemar on the items' biased labels (b = unbiased -> biased,
c = biased -> unbiased) per task and per (task, group); Benjamini-Hochberg over all of these tests
of one comparison (condition vs reference). A unit is significant when q <= alpha. McNemar tests
exactly whether the unit's share of biased answers changed, so *masked flipping* is the share of
flips inside units (tasks; (task, group) cells) that are not significant.

Result structure (floats or None, never NaN; keys sorted when written)::

    {"schema": "lm-eval-bias/report", "schema_version": 1, "settings": {...},
     "definitions": {...}, "notes": [str],
     "runs": [RUN], "conditions": [COND], "reference": {...},
     "tasks": [TASKSCORES], "comparisons": [COMPARISON],
     "dose_response": {...}, "quality": {...}, "summary": {...}}
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lm_eval_bias.analysis.compare import (
    _check_comparable,
    _check_scorers,
    _jsonable,
    _quant_text,
    pair_items,
)
from lm_eval_bias.analysis.runs import Run, read_run
from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.metrics.flips import (
    flip_counts,
    flip_counts_by,
    flip_counts_by_uncertainty,
    high_low_ratio,
)
from lm_eval_bias.metrics.stats import (
    EXACT_BELOW,
    benjamini_hochberg,
    bootstrap_counts_ci,
    dose_response,
    masked_flipping,
    mcnemar,
)

SCHEMA = "lm-eval-bias/report"
SCHEMA_VERSION = 1

#: Quantization-record keys that describe one execution, not the condition.
# Measurements of a run, not settings: two runs of one setting (e.g. seeds run as separate
# lm_eval commands) must land in the same condition.
VOLATILE_QUANT_KEYS = ("quantize_seconds", "load_seconds", "kl_fixed_text", "mean_relative_error",
                       "model_bytes_before", "model_bytes_after", "library_version",
                       "optimum_version", "n_modules_quantized", "n_modules_skipped",
                       "modules_skipped")
_SEED_CONFIG_KEYS = ("random_seed", "numpy_seed", "torch_seed", "fewshot_seed")
#: lm-eval metrics that measure language-model quality (lower is better).
QUALITY_METRICS = ("word_perplexity", "byte_perplexity", "bits_per_byte", "perplexity")
_DTYPE_BITS = {"float32": 32, "float": 32, "float64": 64, "float16": 16, "half": 16,
               "bfloat16": 16, "bf16": 16, "fp16": 16, "fp32": 32}

#: Scores recomputed from items (with CIs), in display order.
ITEM_SCORES = ("accuracy", "biased_rate", "unknown_rate", "acc_amb", "acc_disamb", "bias_amb",
               "bias_disamb")
FLIP_SCORES = ("response_flip_rate", "u2b_rate_of_unbiased", "b2u_rate_of_biased", "net_change")

_B, _N, _U, _X = 0, 1, 2, 3   # bias status of an answer: biased, not biased (not unknown), unknown, undefined
_AMB, _DIS, _OTHER = 0, 1, 2  # context condition
_K = 24                       # cells of one answer: 3 conditions x 2 correct x 4 statuses


# ----------------------------------------------------------------------------- run description


def _canon(obj: Any) -> str:
    return json.dumps(_jsonable(obj), sort_keys=True)


def _model_args(run: Run) -> dict:
    from lm_eval_bias.analysis.runs import _model_args_dict
    return _model_args_dict(run.model_args)


def is_unquantized(run: Run) -> bool:
    """No quantization record, an empty one, or method / quant ``none``."""
    q = run.quantization
    if not q:
        return True
    if isinstance(q, dict):
        method = q.get("method", q.get("quant"))
        if method is not None:
            return str(method).strip().lower() in ("none", "")
        if q.get("bits") is not None:
            return False
        return not any(_truthy(v) for k, v in q.items() if str(k).lower().startswith("load_in_"))
    return str(q).strip().lower() in ("none", "")


def _truthy(v: Any) -> bool:
    return v is True or str(v).strip().lower() in ("true", "1")


def _dtype_bits(run: Run) -> int:
    dt = run.config.get("model_dtype") or _model_args(run).get("dtype") or ""
    name = str(dt).lower().replace("torch.", "").strip()
    return _DTYPE_BITS.get(name, 16)


def run_bits(run: Run) -> float | None:
    """The run's weight bit width (see the module docstring); None when it is not recorded."""
    if is_unquantized(run):
        return float(_dtype_bits(run))
    q = run.quantization if isinstance(run.quantization, dict) else {}
    args = _model_args(run)
    for source in (q, args):
        b = source.get("bits") if isinstance(source, dict) else None
        if b is not None:
            try:
                return float(b)
            except (TypeError, ValueError):
                pass
    for source in (q, args):
        if _truthy(source.get("load_in_4bit")):
            return 4.0
        if _truthy(source.get("load_in_8bit")):
            return 8.0
    return None


def run_seed(run: Run) -> dict:
    """Every seed the run recorded: lm-eval's seeds, task-metadata and model_args keys with
    "seed" in their name."""
    out = {k: run.config.get(k) for k in _SEED_CONFIG_KEYS if k in run.config}
    per_task: dict[str, dict] = {}
    for task, cfg in sorted((run.results.get("configs") or {}).items()):
        md = cfg.get("metadata") if isinstance(cfg, dict) else None
        if isinstance(md, dict):
            per_task[task] = {k: v for k, v in md.items() if "seed" in str(k).lower()}
    values = {_canon(v) for v in per_task.values()}
    if len(values) == 1:
        out.update({f"metadata.{k}": v for k, v in next(iter(per_task.values())).items()})
    else:
        for task, md in per_task.items():
            out.update({f"metadata.{task}.{k}": v for k, v in md.items()})
    out.update({f"model_args.{k}": v for k, v in _model_args(run).items()
                if "seed" in str(k).lower()})
    return out


def _condition_key(run: Run) -> str:
    q = run.quantization
    if isinstance(q, dict):
        q = {k: v for k, v in q.items() if k not in VOLATILE_QUANT_KEYS and "seed" not in k}
    return _canon({"model_name": run.model_name, "dtype": run.config.get("model_dtype"),
                   "quantization": None if is_unquantized(run) else q, "tasks": run.tasks})


def _label(run: Run) -> str:
    q = "not quantized" if is_unquantized(run) else _quant_text(run.quantization)
    return f"{run.model_name or '?'} · {q}"


@dataclass
class _Cond:
    id: str
    key: str
    runs: list[int]                      # indices into the run list
    bits: float | None
    label: str
    reference: bool = False
    varying_seeds: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- cells


def _status(biased: pd.Series, unknown: pd.Series) -> np.ndarray:
    b = pd.array(biased, dtype="boolean")
    u = pd.array(unknown, dtype="boolean").fillna(False).to_numpy(bool)
    is_t = b.fillna(False).to_numpy(bool)
    is_f = (~b).fillna(False).to_numpy(bool)
    out = np.full(len(b), _X, dtype=np.int64)
    out[is_f] = _N
    out[is_f & u] = _U
    out[is_t] = _B
    return out


def _cells(df: pd.DataFrame, prefix: str, cond_col: str = "context_condition") -> np.ndarray:
    """Cell code (0.._K-1) of each answer: condition * 8 + correct * 4 + status."""
    cc = df[cond_col].to_numpy(object)
    cond = np.full(len(df), _OTHER, dtype=np.int64)
    cond[cc == "ambig"] = _AMB
    cond[cc == "disambig"] = _DIS
    pred = pd.array(df[f"{prefix}pred"], dtype="Int64")
    gold = pd.array(df[f"{prefix}gold"], dtype="Int64")
    correct = (pred == gold).fillna(False).to_numpy(bool).astype(np.int64)
    return cond * 8 + correct * 4 + _status(df[f"{prefix}biased"], df[f"{prefix}unknown_chosen"])


def _cell_attrs(codes: np.ndarray) -> dict[str, np.ndarray]:
    return {"cond": codes // 8, "correct": (codes // 4) % 2, "status": codes % 4}


def _div(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


def _score_fns(attrs: dict[str, np.ndarray], which: list[str]) -> dict:
    """Functions of cell counts (..., m) -> score (...), one per score in `which`."""
    st, cond, cor = attrs["status"], attrs["cond"], attrs["correct"].astype(float)
    B = (st == _B).astype(float)
    BN = ((st == _B) | (st == _N)).astype(float)
    labelled = (st != _X).astype(float)
    U = (st == _U).astype(float)
    amb, dis = (cond == _AMB).astype(float), (cond == _DIS).astype(float)

    def acc_amb(c):
        return _div(c @ (cor * amb), c @ amb)

    def bias_amb(c):
        a = acc_amb(c)
        raw = 2 * _div(c @ (B * amb), c @ (BN * amb)) - 1
        return np.where(a == 1.0, 0.0, (1 - a) * raw)

    fns = {
        "accuracy": lambda c: _div(c @ cor, c.sum(-1)),
        "biased_rate": lambda c: _div(c @ B, c @ labelled),
        "unknown_rate": lambda c: _div(c @ U, c.sum(-1)),
        "acc_amb": acc_amb,
        "acc_disamb": lambda c: _div(c @ (cor * dis), c @ dis),
        "bias_amb": bias_amb,
        "bias_disamb": lambda c: 2 * _div(c @ (B * dis), c @ (BN * dis)) - 1,
    }
    return {k: fns[k] for k in which}


def _flip_fns(bst: np.ndarray, ost: np.ndarray, flip: np.ndarray) -> dict:
    bf = ((bst == _N) | (bst == _U))
    bt = bst == _B
    of = ((ost == _N) | (ost == _U))
    ot = ost == _B
    u2b = (bf & ot).astype(float)
    b2u = (bt & of).astype(float)
    defined = ((bf | bt) & (of | ot)).astype(float)
    return {
        "response_flip_rate": lambda c: _div(c @ flip.astype(float), c.sum(-1)),
        "u2b_rate_of_unbiased": lambda c: _div(c @ u2b, c @ bf.astype(float)),
        "b2u_rate_of_biased": lambda c: _div(c @ b2u, c @ bt.astype(float)),
        "net_change": lambda c: _div(c @ (u2b - b2u), c @ defined),
    }


def _seed_for(base_seed: int, *parts: str) -> int:
    return (base_seed * 1_000_003 + zlib.crc32("\x1f".join(parts).encode())) % (2 ** 32)


def _ci(counts: np.ndarray, fn, n_boot: int, seed: int, ci: float) -> dict:
    r = bootstrap_counts_ci(counts, fn, n_boot=n_boot, seed=seed, ci=ci)
    return {"estimate": r["estimate"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]}


def _compact(codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(cell codes present, their counts)."""
    counts = np.bincount(codes, minlength=k)
    present = np.flatnonzero(counts)
    return present, counts[present]


def _applicable_scores(items: pd.DataFrame) -> list[str]:
    out = []
    if len(items) and items["gold"].notna().all():
        out.append("accuracy")
    if items["biased"].notna().any():
        out.append("biased_rate")
    if items["unknown_choice"].notna().any() or items["unknown_chosen"].notna().any():
        out.append("unknown_rate")
    cc = set(items["context_condition"].dropna().unique().tolist())
    if "ambig" in cc:
        out += ["acc_amb", "bias_amb"]
    if "disambig" in cc:
        out += ["acc_disamb", "bias_disamb"]
    return [s for s in ITEM_SCORES if s in out]


# ----------------------------------------------------------------------------- grouping runs


def _conditions(runs: list[Run], reference: int | None) -> list[_Cond]:
    by_key: dict[str, list[int]] = {}
    for i, r in enumerate(runs):
        by_key.setdefault(_condition_key(r), []).append(i)
    conds = []
    for key, idx in by_key.items():
        seeds = [_canon(run_seed(runs[i])) for i in idx]
        if len(set(seeds)) < len(seeds):
            dup = [runs[i].path for i in idx if seeds.count(_canon(run_seed(runs[i]))) > 1]
            raise BiasEvalError(
                f"runs {dup[0]} and {dup[1]} have the same model, quantization, tasks and seeds; "
                "give each run once (rerun with another seed to add a replicate)"
            )
        varying = sorted({k for i in idx for k in run_seed(runs[i])
                          if len({_canon(run_seed(runs[j]).get(k)) for j in idx}) > 1})
        conds.append(_Cond(id="", key=key, runs=idx, bits=run_bits(runs[idx[0]]),
                           label=_label(runs[idx[0]]), varying_seeds=varying))
    if reference is not None:
        ref = next(c for c in conds if reference in c.runs)
    else:
        unq = [c for c in conds if is_unquantized(runs[c.runs[0]])]
        if not unq:
            raise BiasEvalError(
                "no unquantized run among the runs given (none has quantization method none); "
                "name the reference with --reference RUN"
            )
        if len(unq) > 1:
            names = "; ".join(f"{runs[c.runs[0]].path} ({c.label})" for c in unq)
            raise BiasEvalError(
                f"{len(unq)} unquantized conditions, the reference is ambiguous: {names}; "
                "choose one with --reference RUN"
            )
        ref = unq[0]
    ref.reference = True
    others = sorted((c for c in conds if not c.reference),
                    key=lambda c: (runs[c.runs[0]].model_name or "",
                                   -(c.bits if c.bits is not None else -1), c.label, c.key))
    ordered = [ref, *others]
    for n, c in enumerate(ordered):
        c.id = f"c{n}"
    return ordered


def _pairs(runs: list[Run], ref: _Cond, cond: _Cond) -> list[tuple[int, int]]:
    ref_by_seed = {_canon(run_seed(runs[i])): i for i in ref.runs}
    out = []
    for i in cond.runs:
        j = ref_by_seed.get(_canon(run_seed(runs[i])))
        if j is None:
            if len(ref.runs) == 1:
                j = ref.runs[0]
            else:
                raise BiasEvalError(
                    f"run {runs[i].path} has seeds {run_seed(runs[i])} but no reference run has "
                    "the same seeds; give the reference run of that seed"
                )
        out.append((j, i))
    return out


# ----------------------------------------------------------------------------- pieces


def _spread(values: list[float | None]) -> dict:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return {"n": 0, "mean": None, "sd": None, "min": None, "max": None}
    return {"n": int(v.size), "mean": float(v.mean()),
            "sd": float(v.std(ddof=1)) if v.size > 1 else None,
            "min": float(v.min()), "max": float(v.max())}


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


def _quality(runs: list[Run], conds: list[_Cond]) -> dict:
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
                    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                        continue
                    rows.setdefault((task, metric, filt), {}).setdefault(c.id, []).append(float(v))
    out = []
    ref_id = conds[0].id
    for (task, metric, filt), by_cond in sorted(rows.items()):
        values = {cid: float(np.mean(v)) for cid, v in by_cond.items()}
        ref = values.get(ref_id)
        out.append({
            "task": task, "metric": metric, "filter": filt, "values": values,
            "relative_change": {cid: ((v - ref) / ref if ref not in (None, 0) else None)
                                for cid, v in values.items() if cid != ref_id},
        })
    return {"available": bool(out), "metrics": list(QUALITY_METRICS), "rows": out}


def _group_rows(part: pd.DataFrame, task: str, filt: str) -> list[dict]:
    table = flip_counts_by(part, "groups")
    rows = []
    for rec in table.to_dict(orient="records"):
        m = mcnemar(b=int(rec["u2b"]), c=int(rec["b2u"]))
        rows.append({"task": task, "filter": filt, "group": str(rec["groups"]),
                     **{k: v for k, v in rec.items() if k != "groups"},
                     "mcnemar_statistic": m["statistic"], "pvalue": m["pvalue"],
                     "test": m["method"]})
    return rows


def _unc_summary(paired: pd.DataFrame) -> dict:
    by_bin = flip_counts_by_uncertainty(paired, "base_entropy_norm")
    return {"bins": [_jsonable(r) for r in by_bin.to_dict(orient="records")],
            "high_low_ratio": high_low_ratio(by_bin, "response_flip_rate"),
            "high_low_ratio_bias_flips": high_low_ratio(by_bin, "bias_flip_rate"),
            "n_without_probs": int(paired["base_entropy_norm"].isna().sum())}


def _bits_text(b: float | None) -> str:
    if b is None:
        return "?"
    return str(int(b)) if float(b).is_integer() else f"{b:g}"


# ----------------------------------------------------------------------------- the report


def _require(module: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise BiasEvalError(f"the report needs {module}, which is not installed; "
                            "pip install 'lm-eval-bias[stats]'")


def build_report(runs: list[Run], *, reference: int | None = None, n_boot: int = 1000,
                 seed: int = 0, alpha: float = 0.05, ci: float = 0.95,
                 allow_different_scorers: bool = False) -> dict:
    """The report over `runs` (see the module docstring). `reference` is an index into `runs`.
    A run whose generation tasks were scored by another scorer than its reference run is refused
    (as in `analysis.compare`) unless `allow_different_scorers`; then it is named in the notes."""
    if not runs:
        raise BiasEvalError("no runs given; give at least two lm-eval --output_path folders")
    if isinstance(n_boot, bool) or int(n_boot) < 100:
        raise BiasEvalError(f"--n-boot must be an integer >= 100, got {n_boot}")
    _require("statsmodels")
    conds = _conditions(runs, reference)
    ref = conds[0]
    if len(conds) < 2:
        raise BiasEvalError(
            f"all {len(runs)} runs are the reference condition ({ref.label}); give at least one "
            "run of another precision or model to compare"
        )
    cond_of = {i: c for c in conds for i in c.runs}
    notes: list[str] = []

    # ---- pairing
    paired_by_cond: dict[str, pd.DataFrame] = {}
    pairs_by_cond: dict[str, list[tuple[int, int]]] = {}
    for c in conds[1:]:
        pairs = _pairs(runs, ref, c)
        parts = []
        for seed_index, (j, i) in enumerate(pairs):
            common = _check_comparable(runs[j], runs[i])
            for d in _check_scorers(runs[j], runs[i], common, allow_different_scorers):
                notes.append(f"{c.id}: task {d['task']} scored by {d['base']} in the reference "
                             f"but {d['other']} here ({d['metric']}), allowed")
            b = runs[j].items
            o = runs[i].items
            if set(common) != set(b["task"].unique()):
                b = b[b["task"].isin(common)]
            if set(common) != set(o["task"].unique()):
                o = o[o["task"].isin(common)]
            p = pair_items(b, o)
            p["pair"] = seed_index
            parts.append(p)
            only = sorted(set(runs[j].tasks) ^ set(runs[i].tasks))
            if only:
                notes.append(f"{c.id}: tasks not in both runs, not compared: {', '.join(only)}")
        paired_by_cond[c.id] = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        pairs_by_cond[c.id] = pairs

    # ---- per task scores (reference and every condition), with CIs and paired differences
    ref_items = pd.concat([runs[i].items for i in ref.runs], ignore_index=True)
    task_keys = sorted(ref_items[["task", "filter"]].drop_duplicates().itertuples(index=False,
                                                                                   name=None))
    tasks_out = []
    sig_by_task: dict[tuple[str, str, str], dict] = {}
    for task, filt in task_keys:
        mask_ref = (ref_items["task"] == task) & (ref_items["filter"] == filt)
        ritems = ref_items[mask_ref]
        scores = _applicable_scores(ritems)
        rows = {s: {"metric": s, "source": "items", "values": {}} for s in scores}
        rows |= {s: {"metric": s, "source": "item pairs", "values": {}} for s in FLIP_SCORES}
        # reference values
        present, counts = _compact(_cells(ritems, ""), _K)
        fns = _score_fns(_cell_attrs(present), scores)
        for s, fn in fns.items():
            rows[s]["values"][ref.id] = {
                **_ci(counts, fn, n_boot, _seed_for(seed, task, filt, ref.id, s), ci),
                "difference": None, "difference_ci_low": None, "difference_ci_high": None,
                "significant": None, "n": int(counts.sum())}
        for c in conds[1:]:
            paired = paired_by_cond[c.id]
            part = paired[(paired["task"] == task) & (paired["filter"] == filt)]
            if not len(part):
                continue
            bcode = _cells(part, "base_")
            ocode = _cells(part, "other_")
            from lm_eval_bias.metrics.flips import response_flipped
            flip = response_flipped(part).astype(np.int64)
            joint = (bcode * _K + ocode) * 2 + flip
            jp, jc = _compact(joint, _K * _K * 2)
            b_attr = _cell_attrs((jp // 2) // _K)
            o_attr = _cell_attrs((jp // 2) % _K)
            bf, of = _score_fns(b_attr, scores), _score_fns(o_attr, scores)
            bseed = _seed_for(seed, task, filt, c.id)
            for s in scores:
                est = _ci(jc, of[s], n_boot, bseed, ci)
                diff = _ci(jc, lambda x, s=s: of[s](x) - bf[s](x), n_boot, bseed, ci)
                sig = (None if diff["ci_low"] is None
                       else bool(diff["ci_low"] > 0 or diff["ci_high"] < 0))
                rows[s]["values"][c.id] = {**est, "difference": diff["estimate"],
                                           "difference_ci_low": diff["ci_low"],
                                           "difference_ci_high": diff["ci_high"],
                                           "significant": sig, "n": int(jc.sum())}
            for s, fn in _flip_fns(b_attr["status"], o_attr["status"], jp % 2).items():
                est = _ci(jc, fn, n_boot, bseed, ci)
                sig = None if est["ci_low"] is None else bool(est["ci_low"] > 0 or
                                                              est["ci_high"] < 0)
                # a flip rate is a change itself: "significant" = its CI excludes 0
                rows[s]["values"][c.id] = {**est, "difference": est["estimate"],
                                           "difference_ci_low": est["ci_low"],
                                           "difference_ci_high": est["ci_high"],
                                           "significant": sig if s == "net_change" else None,
                                           "n": int(jc.sum())}
            sig_by_task[(c.id, task, filt)] = {s: rows[s]["values"][c.id]["significant"]
                                               for s in scores}
        lm_eval = {}
        for c in conds:
            for metric, v in _lm_eval_scores(runs, c.runs, task, filt).items():
                lm_eval.setdefault(metric, {})[c.id] = v
        tasks_out.append({
            "task": task, "filter": filt, "n_items": int(mask_ref.sum()) // max(len(ref.runs), 1),
            "scores_with_ci": scores + list(FLIP_SCORES),
            "scores": [rows[s] for s in [*scores, *FLIP_SCORES]],
            "lm_eval": [{"metric": m, "values": v} for m, v in sorted(lm_eval.items())],
        })

    # ---- comparisons: item-level change, McNemar + BH, masked flipping, uncertainty, groups
    comparisons = []
    dose_rows = []
    emergence = []
    for c in conds[1:]:
        paired = paired_by_cond[c.id]
        total = flip_counts(paired)
        task_rows, group_rows = [], []
        for (task, filt), part in paired.groupby(["task", "filter"], sort=True):
            fc = flip_counts(part)
            m = mcnemar(b=fc["u2b"], c=fc["b2u"])
            task_rows.append({"task": task, "filter": filt, **fc,
                              "mcnemar_statistic": m["statistic"], "pvalue": m["pvalue"],
                              "test": m["method"], "uncertainty": _unc_summary(part),
                              "scores_changed_significantly": sorted(
                                  s for s, v in sig_by_task.get((c.id, task, filt), {}).items()
                                  if v)})
            group_rows += _group_rows(part, task, filt)
            emergence.append({"task": task, "filter": filt, "condition": c.id, "bits": c.bits,
                              "u2b": fc["u2b"], "n_base_unbiased": fc["n_base_unbiased"],
                              "rate": fc["u2b_rate_of_unbiased"]})
        tests = task_rows + group_rows
        bh = benjamini_hochberg([t["pvalue"] for t in tests], alpha=alpha)
        for t, q in zip(tests, bh["qvalue"].tolist()):
            t["qvalue"] = None if q is None or (isinstance(q, float) and math.isnan(q)) else q
            t["significant"] = t["qvalue"] is not None and t["qvalue"] <= alpha
        ranked = sorted(group_rows, key=lambda g: (
            g["net_change"] is None or (isinstance(g["net_change"], float)
                                        and math.isnan(g["net_change"])),
            -(g["net_change"] if g["net_change"] == g["net_change"] and g["net_change"]
              is not None else 0.0), g["task"], g["group"]))
        ranked = [_jsonable(g) for g in ranked]
        worse = [g for g in ranked if g["net_change"] is not None and g["net_change"] > 0]
        better = [g for g in ranked if g["net_change"] is not None and g["net_change"] < 0]
        units_t = pd.DataFrame({"flips": [t["response_flips"] for t in task_rows],
                                "bias_flips": [t["bias_flips"] for t in task_rows],
                                "n": [t["n_paired"] for t in task_rows],
                                "significant": [t["significant"] for t in task_rows]})
        units_g = pd.DataFrame({"flips": [g["response_flips"] for g in ranked],
                                "bias_flips": [g["bias_flips"] for g in ranked],
                                "n": [g["n_paired"] for g in ranked],
                                "significant": [g["significant"] for g in ranked]},
                               columns=["flips", "bias_flips", "n", "significant"])
        masked = {
            "tasks": {"response_flips": masked_flipping(units_t),
                      "bias_flips": masked_flipping(units_t, flips="bias_flips")},
            "groups": {"response_flips": masked_flipping(units_g),
                       "bias_flips": masked_flipping(units_g, flips="bias_flips")},
        }
        m_all = mcnemar(b=total["u2b"], c=total["b2u"])
        # seeds
        per_seed = []
        for k, (j, i) in enumerate(pairs_by_cond[c.id]):
            fc = flip_counts(paired[paired["pair"] == k]) if len(pairs_by_cond[c.id]) > 1 else total
            per_seed.append({"run": f"r{i}", "reference_run": f"r{j}",
                             "seed": run_seed(runs[i]),
                             **{k2: fc[k2] for k2 in ("n_paired", "response_flip_rate",
                                                      "u2b_rate_of_unbiased",
                                                      "b2u_rate_of_biased", "net_change")}})
        spread = {k: _spread([s[k] for s in per_seed])
                  for k in ("response_flip_rate", "u2b_rate_of_unbiased", "b2u_rate_of_biased",
                            "net_change")}
        comparisons.append({
            "condition": c.id, "reference": ref.id, "label": c.label, "bits": c.bits,
            "pairs": [{"run": f"r{i}", "reference_run": f"r{j}"} for j, i in pairs_by_cond[c.id]],
            "n_paired": int(len(paired)),
            "flips": total,
            "mcnemar": {**m_all, "n_tests_in_family": len(tests)},
            "tasks": task_rows,
            "groups": ranked,
            "group_asymmetry": {
                "largest_worsening": max(worse, key=lambda g: g["net_change"], default=None),
                "largest_improvement": min(better, key=lambda g: g["net_change"], default=None),
                "n_groups": len(ranked),
                "n_significant": sum(1 for g in ranked if g["significant"]),
            },
            "uncertainty": _unc_summary(paired),
            "masked_flipping": masked,
            "seeds": {"n": len(per_seed), "varying": c.varying_seeds, "per_seed": per_seed,
                      "spread": spread},
        })
        if c.bits is not None:
            sel = paired["base_biased"].astype("boolean").eq(False).fillna(False) & \
                paired["other_biased"].notna()
            sub = paired.loc[sel.to_numpy(bool), ["task", "other_biased"]]
            dose_rows.append(pd.DataFrame({
                "task": sub["task"].to_numpy(object), "bits": np.full(len(sub), c.bits),
                "became_biased": sub["other_biased"].astype(bool).to_numpy()}))
        else:
            notes.append(f"{c.id} ({c.label}): no bit width recorded, left out of the "
                         "dose-response")

    # ---- dose-response
    ref_bits = ref.bits if ref.bits is not None else 16.0
    if dose_rows:
        dr = pd.concat(dose_rows, ignore_index=True)
        dose = {"all_tasks": dose_response(dr, reference_bits=ref_bits),
                "tasks": [{"task": t, **dose_response(part, reference_bits=ref_bits)}
                          for t, part in dr.groupby("task", sort=True)]}
    else:
        dose = {"all_tasks": dose_response(pd.DataFrame({"bits": [], "became_biased": []}),
                                           reference_bits=ref_bits), "tasks": []}
    dose.update({
        "reference_bits": ref_bits,
        "levels": sorted({c.bits for c in conds[1:] if c.bits is not None}),
        "model": "logit P(became biased) = intercept + slope * (reference_bits - bits); rows: "
                 "items unbiased in the reference run with a bias label at that precision, one "
                 "row per (item, seed, precision); several methods at one bit width are pooled",
        "emergence": sorted(emergence, key=lambda e: (e["task"], e["filter"],
                                                       -(e["bits"] or -1), e["condition"])),
    })

    quality = _quality(runs, conds)
    if quality["available"]:
        notes.append("quality: lm-eval perplexity-type metrics found (" + ", ".join(sorted(
            {r["metric"] for r in quality["rows"]})) + "); shown next to bias emergence")

    # ---- runs, conditions, summary
    run_rows = []
    for i, r in enumerate(runs):
        c = cond_of[i]
        info = r.info()
        run_rows.append({"id": f"r{i}", "condition": c.id,
                         "role": "reference" if c.reference else "compared",
                         "bits": c.bits, "seed": run_seed(r), "n_items": int(len(r.items)),
                         **info})
    cond_rows = [{"id": c.id, "label": c.label, "reference": c.reference, "bits": c.bits,
                  "model_name": runs[c.runs[0]].model_name,
                  "model_dtype": runs[c.runs[0]].config.get("model_dtype"),
                  "quantization": None if is_unquantized(runs[c.runs[0]])
                  else runs[c.runs[0]].quantization,
                  "runs": [f"r{i}" for i in c.runs], "n_seeds": len(c.runs),
                  "varying_seeds": c.varying_seeds} for c in conds]
    ref_per_seed = []
    if len(ref.runs) > 1:
        for i in ref.runs:
            it = runs[i].items
            b = it["biased"].astype("boolean")
            ref_per_seed.append({"run": f"r{i}", "seed": run_seed(runs[i]),
                                 "biased_rate": float(b.sum() / b.notna().sum())
                                 if b.notna().any() else None})
    summary = {
        "reference": ref.id,
        "conditions": [{
            "condition": cmp["condition"], "label": cmp["label"], "bits": cmp["bits"],
            "n_paired": cmp["n_paired"],
            "response_flip_rate": cmp["flips"]["response_flip_rate"],
            "u2b_rate_of_unbiased": cmp["flips"]["u2b_rate_of_unbiased"],
            "b2u_rate_of_biased": cmp["flips"]["b2u_rate_of_biased"],
            "net_change": cmp["flips"]["net_change"],
            "mcnemar_pvalue": cmp["mcnemar"]["pvalue"],
            "masked_share_groups": cmp["masked_flipping"]["groups"]["response_flips"][
                "masked_share"],
            "high_low_ratio": cmp["uncertainty"]["high_low_ratio"],
            "largest_worsening": (cmp["group_asymmetry"]["largest_worsening"] or {}).get("group"),
            "largest_improvement": (cmp["group_asymmetry"]["largest_improvement"] or {}).get(
                "group"),
            "n_seeds": cmp["seeds"]["n"],
            "quality": {f"{r['task']}/{r['metric']}": r["relative_change"].get(cmp["condition"])
                        for r in quality["rows"]} or None,
        } for cmp in comparisons],
    }
    return _jsonable({
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "settings": {"n_boot": int(n_boot), "seed": int(seed), "alpha": alpha, "ci": ci,
                     "mcnemar_exact_below": EXACT_BELOW,
                     "reference_bits": "dtype width of the reference (float32 32, float16 / "
                                       "bfloat16 16, 16 when not recorded)"},
        "definitions": DEFINITIONS,
        "notes": sorted(set(notes)),
        "runs": run_rows,
        "conditions": cond_rows,
        "reference": {"condition": ref.id, "label": ref.label, "bits": ref.bits,
                      "chosen_by": "--reference" if reference is not None else "unquantized",
                      "runs": [f"r{i}" for i in ref.runs], "per_seed": ref_per_seed},
        "tasks": tasks_out,
        "comparisons": comparisons,
        "dose_response": dose,
        "quality": quality,
        "summary": summary,
    })


DEFINITIONS = {
    "response_flip": "the chosen option (or open-task label) changed; valid <-> invalid counts",
    "u2b": "item unbiased in the reference, biased in the compared run (bias emergence, S2)",
    "b2u": "item biased in the reference, unbiased in the compared run",
    "net_change": "(u2b - b2u) / items with a bias label in both runs; > 0 = more biased",
    "mcnemar": f"on the items' biased labels, b = u2b, c = b2u; exact binomial when b + c < "
               f"{EXACT_BELOW}, else chi-square with continuity correction",
    "bh": "Benjamini-Hochberg over all McNemar tests of one comparison (per task and per "
          "(task, group)); significant when q <= alpha",
    "masked_flipping": "share of flips inside units (tasks; (task, group)) whose share of biased "
                       "answers did not change significantly (McNemar q > alpha), S3",
    "uncertainty": "normalized entropy of the reference run's option probabilities: low <= 1/3 "
                   "< medium <= 2/3 < high; high_low_ratio = flip rate high / low, S3",
    "group_asymmetry": "net change per (task, group), ranked; largest worsening = max > 0, "
                       "largest improvement = min < 0, S3",
    "scores_with_ci": "accuracy, biased_rate, unknown_rate, acc_amb, acc_disamb, bias_amb "
                      "(s_AMB), bias_disamb (s_DIS) recomputed from item records, and the flip "
                      "rates; seeded percentile bootstrap over items; a change is significant "
                      "when the paired bootstrap CI of the difference excludes 0; lm-eval's own "
                      "aggregates are listed without CIs",
    "dose_response": "logistic regression of 'became biased' (items unbiased in the reference) "
                     "on bits removed; odds ratio per bit removed with Wald 95% CI, S2",
    "seeds": "runs with the same model, dtype, quantization and tasks that differ only in seeds "
             "are pooled (counts summed over seed pairs); spread = mean, sd, min, max over seeds",
    "quality": "lm-eval perplexity-type metrics (word_perplexity, byte_perplexity, "
               "bits_per_byte, perplexity) per condition; relative change vs the reference",
}


def _resolve(p: str | Path) -> str:
    return str(Path(p).resolve())


def build_report_from_folders(paths: list[str | Path], *, reference: str | Path | None = None,
                              n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
                              ci: float = 0.95, allow_different_scorers: bool = False) -> dict:
    """Read every run folder (`read_run`) and `build_report`. `reference` names one of `paths`
    (it is added when it is not among them)."""
    paths = [Path(p) for p in paths]
    seen: dict[str, Path] = {}
    for p in paths:
        r = _resolve(p)
        if r in seen:
            raise BiasEvalError(f"run {p} is given twice; give each run folder once")
        seen[r] = p
    ref_index = None
    if reference is not None:
        rr = _resolve(reference)
        if rr not in seen:
            paths.append(Path(reference))
            seen[rr] = Path(reference)
        ref_index = [_resolve(p) for p in paths].index(rr)
    runs = [read_run(p) for p in paths]
    return build_report(runs, reference=ref_index, n_boot=n_boot, seed=seed, alpha=alpha, ci=ci,
                        allow_different_scorers=allow_different_scorers)
