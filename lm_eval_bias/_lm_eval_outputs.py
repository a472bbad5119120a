"""The plain `lm_eval` command saves its files or fails (start-up hook, `lm_eval` command only).

lm-eval 0.4.13's `EvaluationTracker` turns every error while writing `--output_path` into a
warning, so a run whose results or samples could not be written still prints its table and exits
0, and hours of evaluation are lost without a sign. With this package's hook active, the command
instead:
- checks the output path before the model is loaded (`check_output_path`, called by the
  pre-flight checks in `_preflight.py`): a file where a folder is needed, a folder that cannot be
  created or written, a model folder name or results file name over the file system's limit;
- checks after each save that the file lm-eval meant to write is there (`require_written`),
  and otherwise stops with one line (exit 2 through the error hook in `_plugin.py`).
"""

from __future__ import annotations

import errno
import functools
import os
from pathlib import Path

from lm_eval_bias.errors import BiasEvalError

# lm-eval names files `results_<datetime.isoformat()>.json` with ':' replaced: 26 characters of
# timestamp, e.g. 2026-12-07T16-23-30.123456
_TIMESTAMP_LEN = 26


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def check_output_path(output_path: str | os.PathLike, model_name_sanitized: str | None) -> None:
    """Refuse (`BiasEvalError`) an `--output_path` lm-eval could not write into, without writing
    anything: lm-eval writes `P/<model_name_sanitized>/results_<ts>.json` and `samples_*.jsonl`
    there, or `P_<ts>.json` next to a `P` ending in `.json`."""
    path = Path(output_path).expanduser()
    where = f"--output_path {output_path}"
    if path.suffix == ".json":
        folder, names = path.parent, [f"{path.stem}_{'0' * _TIMESTAMP_LEN}.json"]
    else:
        if path.exists() and not path.is_dir():
            raise BiasEvalError(f"{where} is a file; lm-eval needs a folder there (or a path "
                                "ending in .json)")
        folder = path / model_name_sanitized if model_name_sanitized else path
        names = [model_name_sanitized] if model_name_sanitized else []
        names.append(f"results_{'0' * _TIMESTAMP_LEN}.json")
    ancestor = _existing_ancestor(folder)
    if not ancestor.is_dir():
        raise BiasEvalError(f"{where}: {ancestor} is a file, so the folder {folder} cannot be "
                            "created; choose another output path")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise BiasEvalError(f"{where}: {ancestor} is not writable, so lm-eval could not save "
                            "the results; choose another output path")
    limit = _name_max(ancestor)
    for name in names:
        if len(name.encode("utf-8")) > limit:
            raise BiasEvalError(
                f"{where}: lm-eval would name a file or folder {name[:40]}... "
                f"({len(name.encode('utf-8'))} bytes; this file system allows {limit}); use a "
                "shorter checkpoint path or a symbolic link to it")


def require_written(path: Path, what: str) -> None:
    """After lm-eval's save: the file it meant to write must exist, else one line saying why."""
    if path.is_file():
        return
    ancestor = _existing_ancestor(path.parent)
    if not ancestor.is_dir():
        reason = f"{ancestor} is a file"
    else:
        reason = "no error reproduced: the file was removed or never written"
        try:  # reproduce the write error lm-eval logged only as a warning
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8"):
                pass
            path.unlink()
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno in errno.errorcode else str(exc)
    raise BiasEvalError(f"lm-eval could not write its {what} to {path} ({reason}); nothing of "
                        "this run was saved there: fix the output path and run again")


def results_file(tracker) -> Path:
    """The results file a saved `EvaluationTracker` wrote (its `date_id` is set by the save)."""
    path = Path(tracker.output_path)
    if path.suffix == ".json":
        return path.with_name(f"{path.stem}_{tracker.date_id}.json")
    return path / str(tracker.general_config_tracker.model_name_sanitized) / \
        f"results_{tracker.date_id}.json"


def samples_file(tracker, task_name: str) -> Path:
    """The samples file of `task_name` a saved `EvaluationTracker` wrote."""
    path = Path(tracker.output_path)
    folder = path.parent if path.suffix == ".json" else \
        path / str(tracker.general_config_tracker.model_name_sanitized)
    return folder / f"samples_{task_name}_{tracker.date_id}.jsonl"


def guard_tracker(tracker_cls) -> None:
    """Wrap `EvaluationTracker.save_results_aggregated` / `save_results_samples` so that a file
    they failed to write stops the command, and the results JSON records `data_files`. Pushing to the hub is lm-eval's business: only the
    local files are checked."""
    if getattr(tracker_cls.save_results_aggregated, "_lm_eval_bias", False):
        return
    save_results, save_samples = tracker_cls.save_results_aggregated, tracker_cls.save_results_samples

    @functools.wraps(save_results)
    def save_results_aggregated(self, results, *args, **kwargs):
        from lm_eval_bias.tasks._data import files_read

        # provenance: the sha256 of every benchmark file the tasks read (tasks/_data.py)
        results["data_files"] = files_read()
        save_results(self, results, *args, **kwargs)
        if self.output_path:
            require_written(results_file(self), "results")

    @functools.wraps(save_samples)
    def save_results_samples(self, task_name, *args, **kwargs):
        save_samples(self, task_name, *args, **kwargs)
        if self.output_path:
            require_written(samples_file(self, task_name), f"samples of {task_name}")

    save_results_aggregated._lm_eval_bias = save_results_samples._lm_eval_bias = True
    tracker_cls.save_results_aggregated = save_results_aggregated
    tracker_cls.save_results_samples = save_results_samples

