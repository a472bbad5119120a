"""Composes the report over N runs: scores with CIs, item-level change with significance, masked
flipping, uncertainty, group asymmetry, dose-response, seeds, quality next to bias.

`build_report(runs)` takes runs read with `analysis.runs.read_run` and returns one JSON-serialisable
dict, composed of one builder per top-level section (modules of this package); the renderers in
`report.render` and `report.plots` only present it. The numbers come from `metrics.flips`
(flip counts) and `metrics.stats` (McNemar, Benjamini-Hochberg, bootstrap, logistic regression).

Conditions, reference, seeds
----------------------------
Runs are grouped into *conditions*: same checkpoint (``model_name``), engine (transformers for hf
and hf-quant, or vllm), dtype, quantization record
(without its volatile keys: timings, byte counts, errors, library version) and task list. Runs of
one condition differ only in a seed (``config.random_seed/numpy_seed/torch_seed/fewshot_seed``,
task metadata keys with "seed" in the name, e.g. BBQ's ``permute_seed``, model_args "seed" keys);
they are pooled, and the spread across seeds is reported. Two runs with the same condition and
seed are refused (double counting).

The reference condition is the unquantized one (no quantization record, or method ``none``), or
the one of the run named by ``reference``. Several unquantized conditions without a choice are
refused. Each run of another condition is paired with the reference run of the same seed, or with
the only reference run when the reference has one; pairing follows `analysis.pairing`, as
`compare` does (same task versions, n-shot, filters, documents, prompts; refused otherwise).

Bit width (dose-response): ``quantization.bits`` of `Run.quantization` (hf-quant's record, or
the one read from an hf / vllm run's checkpoint config and model args). The reference counts as the width of its dtype (``model_dtype``: float32 -> 32,
float16 / bfloat16 -> 16; 16 when not recorded). Only the intercept depends on that choice: the
slope per bit removed does not.

Scores with CIs (recomputed from the item records; lm-eval's own aggregates are listed beside
them without CIs): ``accuracy`` (pred == gold, invalid = wrong; tasks whose items all have a gold),
``biased_rate`` (biased answers / answers with a bias label), ``unknown_rate`` (items whose
"unknown" option was chosen / items), and for BBQ-like items with a context condition
``acc_amb``, ``acc_disamb``, ``bias_disamb`` (s_DIS) and ``bias_amb`` (s_AMB) as in
docs/metrics.md (s_AMB and s_DIS through `metrics.bbq`'s own functions); and the flip figures
``response_flip_rate``, ``u2b_rate_of_unbiased``, ``b2u_rate_of_biased``, ``net_change``. CIs
are seeded percentile bootstraps over items (drawn as multinomial cell counts,
`metrics.stats.bootstrap_counts_ci`); a change against the reference is
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

from pathlib import Path

from lm_eval_bias.analysis.builtin import rebuilt_note
from lm_eval_bias.analysis.output import jsonable
from lm_eval_bias.analysis.report.comparisons import comparisons_section
from lm_eval_bias.analysis.report.conditions import (
    conditions,
    conditions_section,
    reference_section,
    runs_section,
)
from lm_eval_bias.analysis.report.dose import dose_response_section
from lm_eval_bias.analysis.report.paired import pair_conditions
from lm_eval_bias.analysis.report.quality import quality_section
from lm_eval_bias.analysis.report.scores import tasks_section
from lm_eval_bias.analysis.report.settings import (
    DEFINITIONS,
    SCHEMA,
    SCHEMA_VERSION,
    check_n_boot,
    require,
    settings_section,
)
from lm_eval_bias.analysis.report.summary import summary_section
from lm_eval_bias.analysis.runs import Run, read_run
from lm_eval_bias.errors import BiasEvalError


def build_report(runs: list[Run], *, reference: int | None = None, n_boot: int = 1000,
                 seed: int = 0, alpha: float = 0.05, ci: float = 0.95,
                 allow_different_scorers: bool = False,
                 allow_different_backends: bool = False) -> dict:
    """The report over `runs` (see the module docstring). `reference` is an index into `runs`.
    A run whose generation tasks were scored by another scorer than its reference run is refused
    (as in `analysis.compare`) unless `allow_different_scorers`; then it is named in the notes.
    So is a run of another engine (vllm against hf / hf-quant) unless
    `allow_different_backends`."""
    if not runs:
        raise BiasEvalError("no runs given; give at least two lm-eval --output_path folders")
    check_n_boot(n_boot)
    require("statsmodels")
    conds = conditions(runs, reference)
    ref = conds[0]
    if len(conds) < 2:
        raise BiasEvalError(
            f"all {len(runs)} runs are the reference condition ({ref.label}); give at least one "
            "run of another precision or model to compare"
        )
    notes: list[str] = [f"{r.results_file}: {rebuilt_note(r.rebuilt)}" for r in runs if r.rebuilt]
    paired = pair_conditions(runs, conds, allow_different_scorers, notes,
                             allow_different_backends=allow_different_backends)
    tasks = tasks_section(runs, conds, paired, n_boot=n_boot, seed=seed, ci=ci)
    comparisons = comparisons_section(runs, conds, paired, tasks, alpha=alpha)
    dose = dose_response_section(conds, paired, notes)
    quality = quality_section(runs, conds, notes)
    return jsonable({
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "settings": settings_section(n_boot=n_boot, seed=seed, alpha=alpha, ci=ci),
        "definitions": DEFINITIONS,
        "notes": sorted(set(notes)),
        "runs": runs_section(runs, conds),
        "conditions": conditions_section(runs, conds),
        "reference": reference_section(runs, ref, chosen=reference is not None),
        "tasks": tasks,
        "comparisons": comparisons,
        "dose_response": dose,
        "quality": quality,
        "summary": summary_section(ref.id, comparisons, quality),
    })


def _resolve(p: str | Path) -> str:
    return str(Path(p).resolve())


def build_report_from_folders(paths: list[str | Path], *, reference: str | Path | None = None,
                              n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
                              ci: float = 0.95, allow_different_scorers: bool = False,
                              allow_different_backends: bool = False) -> dict:
    """Read every run folder (`read_run`) and `build_report`. `reference` names one of `paths`
    (it is added when it is not among them)."""
    check_n_boot(n_boot)  # before reading any run: a bad --n-boot is an immediate line
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
                        allow_different_scorers=allow_different_scorers,
                        allow_different_backends=allow_different_backends)
