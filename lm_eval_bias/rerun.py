"""`lm-eval-bias verify --rerun N`: re-evaluate N randomly chosen items of a submission with the
model, revision and quantization it declares, and compare the answers with its samples files.

Plain `verify` proves that every number of a submission follows from its samples files; it
cannot tell whether the samples files hold what the model answered. A samples file fabricated
consistently (answers and their scores edited, every hash, digest and aggregate recomputed)
passes it. The rerun asks the model again:

- items: N documents drawn with `random.Random(seed)` from the run's zero-shot tasks (a few-shot
  prompt depends on which documents lm-eval evaluates before it, so a subset would not rebuild
  it); the same documents of the reference run, when the submission has one;
- evaluation: lm-eval's own `simple_evaluate` with ``samples={task: [doc_id, ...]}``, the
  declared ``--model`` and ``model_args`` (``revision`` pinned to the recorded commit sha where
  there is one; ``pretrained`` replaced by ``--weights DIR`` for a local checkpoint), the run's
  seeds, generation kwargs, system instruction, chat-template use and task metadata;
- comparison, line by line (task, doc_id, filter): the document, prompt and target hashes must be
  equal (else the inputs differ); the answer (``bias_item.pred``, ``invalid``) must be equal; each
  log-likelihood (``filtered_resps``), each probability (``bias_item.probs``) and each scorer
  score (``bias_item.scores``) must agree within the tolerance (`math.isclose` with both
  ``rel_tol`` and ``abs_tol`` set to it); a generated text must be equal. A different answer whose
  log-likelihoods all agree within the tolerance is a tie, noted and not counted.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lm_eval_bias.analysis.runs import Run, model_args_dict, read_run
from lm_eval_bias.errors import BiasEvalError

DEFAULT_TOLERANCE = 1e-3
_SHA_RE_LEN = 40


@dataclass
class RerunReport:
    """What the rerun of one side (the run, or its reference) found."""

    side: str
    model: str
    n_items: int = 0
    n_lines: int = 0
    mismatches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def n_differ(self) -> int:
        return len(self.mismatches)  # one line per differing (task, doc_id, filter)


# ----------------------------------------------------------------------------- choosing items


def rerunnable_tasks(run: Run) -> tuple[list[str], list[str]]:
    """(tasks that can be rerun item by item, notes on those that cannot)."""
    ok, notes = [], []
    for task in sorted(run.samples_files):
        n_shot = run.n_shot.get(task) or 0
        if n_shot:
            notes.append(f"{task}: {n_shot}-shot; its few-shot examples depend on the documents "
                         "evaluated before, so it is not rerun")
        else:
            ok.append(task)
    return ok, notes


def choose_items(run: Run, n: int, seed: int) -> dict[str, list[int]]:
    """N (task, doc_id) pairs of the run's rerunnable tasks, drawn without replacement with
    `random.Random(seed)` from the sorted list of all of them; ``{task: sorted doc_ids}``."""
    if n < 1:
        raise BiasEvalError(f"--rerun takes a number of items >= 1, got {n}")
    tasks, _ = rerunnable_tasks(run)
    pool = sorted({(t, int(d)) for t, d in zip(run.items["task"], run.items["doc_id"])
                   if t in tasks})
    if not pool:
        raise BiasEvalError("nothing to rerun: every task of the run is few-shot (see the notes) "
                            "or has no items")
    chosen: dict[str, list[int]] = {}
    for task, doc_id in random.Random(seed).sample(pool, min(n, len(pool))):
        chosen.setdefault(task, []).append(doc_id)
    return {t: sorted(d) for t, d in sorted(chosen.items())}


def claimed_lines(run: Run, chosen: dict[str, list[int]]) -> dict[tuple, dict]:
    """The samples-file lines of the chosen documents, keyed (task, doc_id, filter)."""
    out = {}
    for task, doc_ids in chosen.items():
        if task not in run.samples_files:
            raise BiasEvalError(f"{run.path} has no samples file of task {task}; the run and its "
                                "reference must cover the same tasks")
        wanted = set(doc_ids)
        with Path(run.samples_files[task]).open(encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                rec = json.loads(line)
                if rec.get("doc_id") in wanted:
                    out[(task, rec["doc_id"], str(rec.get("filter") or "none"))] = rec
    return out


# ----------------------------------------------------------------------------- evaluating


def declared_model_args(model: dict, weights: str | Path | None) -> dict:
    """The submission's ``model_args``, with ``revision`` pinned to the recorded commit sha and
    ``pretrained`` replaced by a local weights folder when one is given."""
    args = dict(model.get("model_args") or {})
    sha = model.get("sha")
    if sha and len(str(sha)) == _SHA_RE_LEN and not model.get("local"):
        args["revision"] = sha
    if weights is not None:
        args["pretrained"] = str(weights)
    elif model.get("local") and not Path(str(args.get("pretrained", ""))).is_dir():
        raise BiasEvalError(f"the model {args.get('pretrained')} is a local checkpoint that is not "
                            "here; give it with --weights DIR (--reference-weights DIR for the "
                            "reference run)")
    return args


def _task_metadata(run: Run, tasks: list[str], model_args: dict) -> dict:
    """The ``--metadata`` the run gave (each task's recorded metadata without its YAML's version,
    its location, and the model_args that lm-eval merges in)."""
    out: dict[str, Any] = {}
    configs = run.results.get("configs") or {}
    for task in tasks:
        meta = (configs.get(task) or {}).get("metadata") or {}
        for k, v in meta.items():
            if k not in ("version", "config_source") and k not in model_args:
                out[k] = v
    return out


def evaluate_items(model_name: str, model_args: dict, run: Run, chosen: dict[str, list[int]], *,
                   device: str | None, batch_size: str | None) -> dict[tuple, dict]:
    """Evaluate the chosen documents with lm-eval's `simple_evaluate` as the run did; the logged
    samples keyed (task, doc_id, filter)."""
    import lm_eval.models  # noqa: F401 - lm-eval's own models first (registration order)
    from lm_eval import simple_evaluate

    from lm_eval_bias import _plugin

    _plugin.register_models()  # without the start-up hook (LM_EVAL_BIAS_NO_HOOK) too
    cfg = run.config
    results = run.results
    seeds = [cfg.get(k) for k in ("random_seed", "numpy_seed", "torch_seed", "fewshot_seed")]
    defaults = (0, 1234, 1234, 1234)
    seeds = [d if s is None else s for s, d in zip(seeds, defaults)]
    try:
        out = simple_evaluate(
            model=model_name, model_args=model_args, tasks=sorted(chosen), samples=chosen,
            batch_size=batch_size or cfg.get("batch_size") or 1,
            device=device or cfg.get("device"), gen_kwargs=cfg.get("gen_kwargs") or None,
            system_instruction=results.get("system_instruction"),
            apply_chat_template=bool(results.get("chat_template")),
            fewshot_as_multiturn=bool(results.get("fewshot_as_multiturn")),
            random_seed=seeds[0], numpy_random_seed=seeds[1], torch_random_seed=seeds[2],
            fewshot_random_seed=seeds[3], bootstrap_iters=0, log_samples=True,
            metadata=_task_metadata(run, sorted(chosen), model_args) or None,
        )
    except BiasEvalError:
        raise
    except Exception as exc:  # noqa: BLE001 - lm-eval / transformers: one line, not a traceback
        first = (str(exc).splitlines() or [""])[0][:300]
        raise BiasEvalError(f"the rerun with {model_name} {model_args.get('pretrained')} failed: "
                            f"{type(exc).__name__}: {first}") from None
    fresh = {}
    for task, lines in (out or {}).get("samples", {}).items():
        for rec in lines:
            fresh[(task, rec["doc_id"], str(rec.get("filter") or "none"))] = rec
    return fresh


# ----------------------------------------------------------------------------- comparing


def _num(x: Any) -> float | None:
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _close(a: Any, b: Any, tol: float) -> bool:
    fa, fb = _num(a), _num(b)
    if fa is None or fb is None:
        return a == b
    if math.isnan(fa) or math.isnan(fb) or math.isinf(fa) or math.isinf(fb):
        return fa == fb or (math.isnan(fa) and math.isnan(fb))
    return math.isclose(fa, fb, rel_tol=tol, abs_tol=tol)


def _loglikelihoods(rec: dict) -> list | None:
    """Per-option log-likelihoods of a loglikelihood line (``filtered_resps``: [ll, is_greedy]
    per option, as strings in a samples file); None for a generation line."""
    resps = rec.get("filtered_resps")
    if isinstance(resps, list) and resps and all(isinstance(r, (list, tuple)) and len(r) == 2
                                                for r in resps):
        return [_num(r[0]) for r in resps]
    return None


def _texts(rec: dict) -> list | None:
    resps = rec.get("filtered_resps")
    if isinstance(resps, list) and all(isinstance(r, str) for r in resps):
        return resps
    return None


def _vector_diff(name: str, a: Any, b: Any, tol: float) -> str | None:
    if a is None and b is None:
        return None
    if not isinstance(a, (list, tuple)) or not isinstance(b, (list, tuple)) or len(a) != len(b):
        return f"{name} claimed {a}, rerun {b}"
    bad = [i for i, (x, y) in enumerate(zip(a, b)) if not _close(x, y, tol)]
    if not bad:
        return None
    i = bad[0]
    return f"{name}[{i}] claimed {_num(a[i])!r}, rerun {_num(b[i])!r} ({len(bad)} of {len(a)} differ)"


def _score_diffs(a: Any, b: Any, tol: float) -> list[str]:
    if not isinstance(a, dict) or not isinstance(b, dict):
        return [] if a == b or (a is None and b is None) else [f"scores claimed {a}, rerun {b}"]
    out = []
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        if isinstance(x, list) or isinstance(y, list):
            d = _vector_diff(f"scores.{k}", x, y, tol)
            out += [d] if d else []
        elif not _close(x, y, tol):
            out.append(f"scores.{k} claimed {x!r}, rerun {y!r}")
    return out


def compare_line(claimed: dict, fresh: dict, tol: float) -> tuple[list[str], str | None]:
    """(differences, note) between a samples-file line and the rerun's line of the same
    (task, doc_id, filter); see the module docstring for what must agree."""
    for part in ("doc", "prompt", "target"):
        if claimed.get(f"{part}_hash") != fresh.get(f"{part}_hash"):
            return [f"{part} differs (the rerun's {part}_hash is not the samples file's): the "
                    "inputs are not the ones the run evaluated"], None
    out = []
    c_item, f_item = claimed.get("bias_item") or {}, fresh.get("bias_item") or {}
    lls = _vector_diff("log-likelihood", _loglikelihoods(claimed), _loglikelihoods(fresh), tol)
    if _texts(claimed) is not None or _texts(fresh) is not None:
        if _texts(claimed) != _texts(fresh):
            out.append("generated text differs")
    elif lls:
        out.append(lls)
    note = None
    for key in ("pred", "invalid"):
        if c_item.get(key) != f_item.get(key):
            if key == "pred" and not lls and _loglikelihoods(claimed) is not None:
                note = (f"answer {c_item.get(key)} vs {f_item.get(key)}: a tie within the "
                        "tolerance")
            else:
                out.insert(0, f"{key} claimed {c_item.get(key)}, rerun {f_item.get(key)}")
    probs = _vector_diff("probs", c_item.get("probs"), f_item.get("probs"), tol)
    out += [probs] if probs else []
    out += _score_diffs(c_item.get("scores"), f_item.get("scores"), tol)
    return out, note


def compare_items(claimed: dict[tuple, dict], fresh: dict[tuple, dict], tol: float,
                  report: RerunReport) -> None:
    """Fill `report` with one mismatch line per differing (task, doc_id, filter)."""
    for key in sorted(set(claimed) | set(fresh), key=str):
        task, doc_id, filt = key
        where = f"{task} doc {doc_id} filter {filt}"
        if key not in fresh:
            report.mismatches.append(f"{where}: in the samples file, not produced by the rerun")
            continue
        if key not in claimed:
            report.mismatches.append(f"{where}: produced by the rerun, not in the samples file")
            continue
        report.n_lines += 1
        diffs, note = compare_line(claimed[key], fresh[key], tol)
        if diffs:
            report.mismatches.append(f"{where}: " + "; ".join(diffs))
        if note:
            report.notes.append(f"{where}: {note}")


# ----------------------------------------------------------------------------- entry point


def rerun_side(side: str, run: Run, model: dict, chosen: dict[str, list[int]], *,
               weights: str | Path | None, tolerance: float, device: str | None,
               batch_size: str | None) -> RerunReport:
    """Rerun the chosen documents of one run with the model the submission declares for it."""
    args = declared_model_args(model, weights)
    name = model.get("lm_eval_model") or run.model
    quant = ",".join(f"{k}={args[k]}" for k in ("quant", "bits", "group_size") if k in args)
    report = RerunReport(side=side, model=f"{name} {args.get('pretrained')}"
                         + (f" {quant}" if quant else ""),
                         n_items=sum(len(d) for d in chosen.values()))
    if not model.get("pinned"):
        report.notes.append(f"the model is not pinned to a commit: revision "
                            f"{args.get('revision') or 'main'} as it is now was rerun")
    fresh = evaluate_items(name, args, run, chosen, device=device, batch_size=batch_size)
    compare_items(claimed_lines(run, chosen), fresh, tolerance, report)
    return report


def rerun_submission(sub: dict, runs: list[str | Path], n: int, *, seed: int = 0,
                     tolerance: float = DEFAULT_TOLERANCE, weights: str | Path | None = None,
                     reference_weights: str | Path | None = None, device: str | None = None,
                     batch_size: str | None = None) -> list[RerunReport]:
    """Rerun N random items of submission `sub` (already verified against `runs`: RUN, then
    REFERENCE when it has one) and compare them with the samples files; one report per run."""
    if not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance) and tolerance >= 0):
        raise BiasEvalError(f"--tolerance takes a number >= 0, got {tolerance}")
    run = read_run(runs[0])
    chosen = choose_items(run, n, seed)
    _, skipped = rerunnable_tasks(run)
    sides = [("run", run, sub["model"], weights)]
    if sub.get("reference") is not None and len(runs) > 1:
        sides.append(("reference", read_run(runs[1]), sub["reference"]["model"],
                      reference_weights))
    reports = []
    for side, side_run, model, folder in sides:
        report = rerun_side(side, side_run, model, chosen, weights=folder, tolerance=tolerance,
                            device=device, batch_size=batch_size)
        report.notes = skipped + report.notes
        reports.append(report)
    return reports


def verdict(reports: list[RerunReport], tolerance: float, seed: int) -> str:
    """The one-line outcome of the rerun."""
    n_items = reports[0].n_items if reports else 0
    differ = sum(r.n_differ for r in reports)
    sides = " and ".join(f"{r.side} ({r.model})" for r in reports)
    if differ:
        return (f"rerun: {differ} of {sum(r.n_lines for r in reports) or n_items} sample lines "
                f"differ from the samples files ({n_items} items of {sides}; tolerance "
                f"{tolerance:g}, seed {seed})")
    return (f"rerun: {n_items} items agree with the samples files ({sum(r.n_lines for r in reports)} "
            f"lines of {sides}; tolerance {tolerance:g}, seed {seed})")
