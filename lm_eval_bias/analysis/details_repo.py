"""A local copy of a Hugging Face "details" dataset that lm-eval pushes with ``--hf_hub_log_args``.

What lm-eval 0.4.13 pushes (`lm_eval/loggers/evaluation_tracker.py`): the results file to
``<model_name>/results_<ts>.json`` (the model name as given, so ``org/name`` is two folders),
and the local ``<output_path>/<model_name_sanitized>/`` folder, samples and results files
together, to ``<model_name_sanitized>/`` (``org__name``). Every later run of the same model adds
files of its own timestamp. Such a copy therefore holds each results file twice, and may hold
several runs (timestamps) and several models.

`locate_run` picks the run a folder holds: one run (a timestamp of one model, its two copies of
the results file counted once) is read as any lm-eval output folder; a details repo that holds
several is refused, naming them, since picking one silently could mix or hide runs; the user
passes the ``results_<ts>.json`` of the run wanted. A plain ``--output_path`` folder keeps the
reader's rule (the newest run, the others listed as ignored). `samples_folder` finds the samples
of a results file in either place.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from lm_eval_bias.errors import BiasEvalError

_RESULTS_RE = re.compile(r"^results_(?P<ts>.+)\.json$")


def sanitize_model_name(name: str) -> str:
    """The folder name lm-eval gives a model (lm_eval.utils.sanitize_model_name's rule)."""
    return re.sub(r"[\"<>:/|\\?*\[\]]+", "__", name)


def _timestamp(results_file: Path) -> str:
    m = _RESULTS_RE.match(results_file.name)
    return m.group("ts") if m else ""


def _has_samples(folder: Path, ts: str) -> bool:
    suffix = f"_{ts}.jsonl"
    return folder.is_dir() and any(p.name.startswith("samples_") and p.name.endswith(suffix)
                                   for p in folder.iterdir())


def samples_folder(results_file: Path) -> Path:
    """The folder holding the samples of `results_file`: its own folder, or, in a details repo
    (results under ``org/name/``), the sibling ``org__name/`` folder of an ancestor."""
    ts = _timestamp(results_file)
    here = results_file.parent
    if _has_samples(here, ts):
        return here
    parts = here.parts
    for depth in range(2, min(len(parts), 6)):
        candidate = Path(*parts[:-depth]) / sanitize_model_name("/".join(parts[-depth:]))
        if _has_samples(candidate, ts):
            return candidate
    return here


def _runs(found: list[Path]) -> dict[tuple[Path, str], list[Path]]:
    """Results files grouped by run: (samples folder, timestamp) -> its copies."""
    runs: dict[tuple[Path, str], list[Path]] = {}
    for f in found:
        runs.setdefault((samples_folder(f), _timestamp(f)), []).append(f)
    return runs


def locate_run(folder: Path, found: list[Path]) -> tuple[Path, list[Path]]:
    """(the results file to read, the results files left out) among `found` (oldest first, all
    ``results_*.json`` under `folder`); refuses a details repo with several runs."""
    runs = _runs(found)
    is_details_repo = any(samples_folder(f) != f.parent for f in found)
    if is_details_repo and len(runs) > 1:
        listed = ", ".join(sorted(os.path.relpath(k[0] / f"results_{k[1]}.json", folder)
                                  for k in runs))
        raise BiasEvalError(
            f"{folder} is a details repo holding {len(runs)} runs ({listed}); give the "
            "results_<timestamp>.json of the one to read"
        )
    # the newest run; its copy next to the samples is the one read
    key = max(runs, key=lambda k: max(found.index(f) for f in runs[k]))
    copies = runs[key]
    chosen = next((f for f in copies if f.parent == key[0]), copies[-1])
    return chosen, [f for f in found if f not in copies]
