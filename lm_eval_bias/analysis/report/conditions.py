"""Runs grouped into conditions, the reference condition, seeds and bit widths, and the report's
``runs``, ``conditions`` and ``reference`` sections.

A *condition* is one checkpoint (``model_name``), engine (vllm apart from transformers), dtype,
quantization record (without its volatile keys, `VOLATILE_QUANT_KEYS`) and task list; its runs differ only in seeds and are pooled. The
reference condition is the unquantized one, or the one of the run named by ``reference``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from lm_eval_bias.analysis.formatting import quant_text
from lm_eval_bias.analysis.output import jsonable
from lm_eval_bias.analysis.quantization import engine
from lm_eval_bias.analysis.runs import Run, model_args_dict
from lm_eval_bias.errors import BiasEvalError

#: Quantization-record keys that describe one execution, not the condition.
# Measurements of a run, not settings: two runs of one setting (e.g. seeds run as separate
# lm_eval commands) must land in the same condition.
VOLATILE_QUANT_KEYS = ("quantize_seconds", "load_seconds", "kl_fixed_text", "mean_relative_error",
                       "model_bytes_before", "model_bytes_after", "library_version",
                       "optimum_version", "n_modules_quantized", "n_modules_skipped",
                       "modules_skipped")
_SEED_CONFIG_KEYS = ("random_seed", "numpy_seed", "torch_seed", "fewshot_seed")
_DTYPE_BITS = {"float32": 32, "float": 32, "float64": 64, "float16": 16, "half": 16,
               "bfloat16": 16, "bf16": 16, "fp16": 16, "fp32": 32}


def canon(obj: Any) -> str:
    """A canonical JSON string of `obj` (to compare seeds and condition keys)."""
    return json.dumps(jsonable(obj), sort_keys=True)


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
    dt = run.config.get("model_dtype") or model_args_dict(run.model_args).get("dtype") or ""
    name = str(dt).lower().replace("torch.", "").strip()
    return _DTYPE_BITS.get(name, 16)


def run_bits(run: Run) -> float | None:
    """The run's weight bit width: ``quantization.bits`` of its record (`Run.quantization`, for
    every backend); an unquantized run counts as the width of its dtype (float32 32, float16 /
    bfloat16 16, 16 when not recorded). None when the record has no bits."""
    if is_unquantized(run):
        return float(_dtype_bits(run))
    q = run.quantization if isinstance(run.quantization, dict) else {}
    b = q.get("bits")
    if b is not None and not isinstance(b, bool):
        try:
            return float(b)
        except (TypeError, ValueError):
            pass
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
    values = {canon(v) for v in per_task.values()}
    if len(values) == 1:
        out.update({f"metadata.{k}": v for k, v in next(iter(per_task.values())).items()})
    else:
        for task, md in per_task.items():
            out.update({f"metadata.{task}.{k}": v for k, v in md.items()})
    out.update({f"model_args.{k}": v for k, v in model_args_dict(run.model_args).items()
                if "seed" in str(k).lower()})
    return out


def _condition_key(run: Run) -> str:
    q = run.quantization
    if isinstance(q, dict):
        q = {k: v for k, v in q.items() if k not in VOLATILE_QUANT_KEYS and "seed" not in k}
    key = {"model_name": run.model_name, "dtype": run.config.get("model_dtype"),
           "quantization": None if is_unquantized(run) else q, "tasks": run.tasks}
    if engine(run.model) not in (None, "transformers"):
        key["engine"] = engine(run.model)  # the same checkpoint on vllm is another condition
    return canon(key)


def _label(run: Run) -> str:
    q = "not quantized" if is_unquantized(run) else quant_text(run.quantization)
    on = engine(run.model)
    return f"{run.model_name or '?'} · {q}" + (f" · {on}" if on not in (None, "transformers")
                                               else "")


@dataclass
class Condition:
    """Runs of one condition; `id` is ``c0`` for the reference, ``c1``... for the others."""
    id: str
    key: str
    runs: list[int]                      # indices into the run list
    bits: float | None
    label: str
    reference: bool = False
    varying_seeds: list[str] = field(default_factory=list)


def _group(runs: list[Run]) -> list[Condition]:
    by_key: dict[str, list[int]] = {}
    for i, r in enumerate(runs):
        by_key.setdefault(_condition_key(r), []).append(i)
    conds = []
    for key, idx in by_key.items():
        seeds = [canon(run_seed(runs[i])) for i in idx]
        if len(set(seeds)) < len(seeds):
            dup = [runs[i].path for i in idx if seeds.count(canon(run_seed(runs[i]))) > 1]
            raise BiasEvalError(
                f"runs {dup[0]} and {dup[1]} have the same model, quantization, tasks and seeds; "
                "give each run once (rerun with another seed to add a replicate)"
            )
        varying = sorted({k for i in idx for k in run_seed(runs[i])
                          if len({canon(run_seed(runs[j]).get(k)) for j in idx}) > 1})
        conds.append(Condition(id="", key=key, runs=idx, bits=run_bits(runs[idx[0]]),
                               label=_label(runs[idx[0]]), varying_seeds=varying))
    return conds


def _reference(runs: list[Run], conds: list[Condition], reference: int | None) -> Condition:
    if reference is not None:
        return next(c for c in conds if reference in c.runs)
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
    return unq[0]


def conditions(runs: list[Run], reference: int | None) -> list[Condition]:
    """The conditions of `runs`, the reference first (`reference`: index of its run, or None for
    the only unquantized condition), then by model, bits (widest first) and label."""
    conds = _group(runs)
    ref = _reference(runs, conds, reference)
    ref.reference = True
    others = sorted((c for c in conds if not c.reference),
                    key=lambda c: (runs[c.runs[0]].model_name or "",
                                   -(c.bits if c.bits is not None else -1), c.label, c.key))
    ordered = [ref, *others]
    for n, c in enumerate(ordered):
        c.id = f"c{n}"
    return ordered


def seed_pairs(runs: list[Run], ref: Condition, cond: Condition) -> list[tuple[int, int]]:
    """(reference run, run) index pairs: each run of `cond` with the reference run of the same
    seeds, or with the only reference run."""
    ref_by_seed = {canon(run_seed(runs[i])): i for i in ref.runs}
    out = []
    for i in cond.runs:
        j = ref_by_seed.get(canon(run_seed(runs[i])))
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


# ----------------------------------------------------------------------------- sections


def runs_section(runs: list[Run], conds: list[Condition]) -> list[dict]:
    """``runs``: one row per run (its condition, role, bits, seeds, item count, `Run.info`)."""
    cond_of = {i: c for c in conds for i in c.runs}
    rows = []
    for i, r in enumerate(runs):
        c = cond_of[i]
        rows.append({"id": f"r{i}", "condition": c.id,
                     "role": "reference" if c.reference else "compared",
                     "bits": c.bits, "seed": run_seed(r), "n_items": int(len(r.items)),
                     **r.info()})
    return rows


def conditions_section(runs: list[Run], conds: list[Condition]) -> list[dict]:
    """``conditions``: one row per condition."""
    return [{"id": c.id, "label": c.label, "reference": c.reference, "bits": c.bits,
             "model_name": runs[c.runs[0]].model_name,
             "model_dtype": runs[c.runs[0]].config.get("model_dtype"),
             "quantization": None if is_unquantized(runs[c.runs[0]])
             else runs[c.runs[0]].quantization,
             "runs": [f"r{i}" for i in c.runs], "n_seeds": len(c.runs),
             "varying_seeds": c.varying_seeds} for c in conds]


def reference_section(runs: list[Run], ref: Condition, chosen: bool) -> dict:
    """``reference``: the reference condition, how it was chosen, and with several seeds each
    reference run's biased rate."""
    per_seed = []
    if len(ref.runs) > 1:
        for i in ref.runs:
            b = runs[i].items["biased"].astype("boolean")
            per_seed.append({"run": f"r{i}", "seed": run_seed(runs[i]),
                             "biased_rate": float(b.sum() / b.notna().sum())
                             if b.notna().any() else None})
    return {"condition": ref.id, "label": ref.label, "bits": ref.bits,
            "chosen_by": "--reference" if chosen else "unquantized",
            "runs": [f"r{i}" for i in ref.runs], "per_seed": per_seed}
