"""The output folder of `lm-eval-bias sweep`: its checks (before anything runs), sweep.json, the
lock, the .partial folders and their syncing to disk, which runs are complete (resume), and the
report over the run folders, stripped of what describes one execution. See the package docstring
for the layout."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lm_eval_bias._files import write_atomic
from lm_eval_bias.errors import BiasEvalError

if TYPE_CHECKING:
    from lm_eval_bias.sweep.plan import SweepSpec

SCHEMA = "lm-eval-bias/sweep"
SCHEMA_VERSION = 1
MANIFEST = "sweep.json"
LOCK = ".sweep.lock"
PARTIAL_SUFFIX = ".partial"
REPORT_DIR = "report"

#: Keys of sweep.json that must match for a rerun into the same folder.
IDENTITY_KEYS = ("model_args", "settings", "seeds", "tasks", "limit", "batch_size", "device",
                 "lm_eval_options", "backend")
#: Scratch copy of the loaded tensors that the checkpoint cannot give back (sweep/weights.py);
#: exists only while a sweep runs.
WEIGHTS_FILE = ".sweep-weights.safetensors"
#: Quantization-record keys that time one execution (left out of the sweep's report).
_TIMING_KEYS = ("load_seconds", "quantize_seconds")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    for p in sorted(path.rglob("*")):
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
    for d in sorted({p.parent for p in path.rglob("*")} | {path}):
        fsync_dir(d)


def check_output(spec: SweepSpec) -> None:
    """Refuse an --output that is a file, that cannot be written (or created), that holds
    another sweep (sweep.json with other arguments) or that is not empty without a sweep.json.
    Writes nothing."""
    out = spec.output
    manifest_path = out / MANIFEST
    if out.exists() and not out.is_dir():
        raise BiasEvalError(f"--output {out} is a file; give a folder")
    _check_writable(out)
    if manifest_path.is_file():
        try:
            old = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BiasEvalError(f"{manifest_path} cannot be read ({exc}); give another --output"
                                ) from None
        if not isinstance(old, dict) or old.get("schema") != SCHEMA:
            raise BiasEvalError(f"{manifest_path} is not an lm-eval-bias sweep manifest; give "
                                "another --output")
        new = spec.identity()
        for key in IDENTITY_KEYS:
            if old.get(key) != new.get(key):
                raise BiasEvalError(
                    f"{out} holds a sweep with other {key} ({_short(old.get(key))} there, "
                    f"{_short(new[key])} now); rerun with the same arguments to finish it, or give "
                    "another --output")
    elif out.is_dir() and any(p.name != LOCK for p in out.iterdir()):
        raise BiasEvalError(f"--output {out} is not empty and holds no {MANIFEST}; give a new "
                            "or empty folder")


def _check_writable(out: Path) -> None:
    """The folder OUT, or the nearest folder above it that exists (where it will be created),
    must be writable."""
    here = Path(os.path.abspath(out))
    while not here.exists() and here != here.parent:
        here = here.parent
    if not here.is_dir():
        raise BiasEvalError(f"--output {out}: {here} is a file, so the folder cannot be created; "
                            "give another --output")
    if not os.access(here, os.W_OK | os.X_OK):
        raise BiasEvalError(f"--output {out}: {here} is not writable; give a folder you can "
                            "write to")


def init_output(spec: SweepSpec, log: Callable[[str], None] = print) -> int:
    """Create OUT and its sweep.json (once), take OUT's lock (held until the returned file
    descriptor is closed; the system drops it when the process dies, however it dies), and remove
    the .partial folders and the scratch weights that an interrupted sweep left (they are never
    read)."""
    import fcntl

    out = spec.output
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BiasEvalError(f"cannot create --output {out}: {exc.strerror}") from None
    try:
        fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise BiasEvalError(f"cannot write into --output {out}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BiasEvalError(f"another sweep is running into {out}; wait for it to finish (two "
                            "at once would redo each other's runs)") from None
    try:
        check_output(spec)  # again, under the lock
        if not (out / MANIFEST).is_file():
            write_atomic(out / MANIFEST, json.dumps(spec.manifest(), indent=2) + "\n")
        for job in spec.jobs:
            partial = out / (job.folder + PARTIAL_SUFFIX)
            if partial.exists():
                shutil.rmtree(partial)
                log(f"removed {partial}: an unfinished run of an interrupted sweep (it is redone)")
        (out / WEIGHTS_FILE).unlink(missing_ok=True)  # an interrupted sweep's scratch copy
    except BaseException:
        os.close(fd)
        raise
    return fd


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def is_complete(folder: Path) -> bool:
    """A final run folder: it only gets its name once complete, so a results file must be there."""
    from lm_eval_bias.analysis.runs import find_results_files

    return folder.is_dir() and bool(find_results_files(folder))


def _relative(path: Path, root: Path, stamp: str | None) -> Path:
    rel = Path(os.path.relpath(Path(path).resolve(), root.resolve())).as_posix()
    if stamp:
        rel = rel.replace(stamp, "*")
    return Path(rel)


def normalize_run(run, root: Path) -> None:
    """Strip what describes one execution rather than the run (see the module docstring), in place."""
    stamp = run.timestamp
    run.path = _relative(run.path, root, None)
    run.results_file = _relative(run.results_file, root, stamp)
    run.samples_files = {t: _relative(p, root, stamp) for t, p in run.samples_files.items()}
    run.ignored_results_files = [_relative(p, root, None) for p in run.ignored_results_files]
    run.timestamp = None
    run.results = dict(run.results)
    run.results["date"] = None
    config = run.results.get("config")
    if isinstance(config, dict) and isinstance(config.get("quantization"), dict):
        config = dict(config)
        config["quantization"] = {k: v for k, v in config["quantization"].items()
                                  if k not in _TIMING_KEYS}
        run.results["config"] = config


def write_sweep_report(spec: SweepSpec, *, n_boot: int = 1000) -> dict:
    """The report over every run folder of `spec` into OUT/report (see the module docstring)."""
    from lm_eval_bias.analysis.report import build_report, write_report
    from lm_eval_bias.analysis.runs import read_run

    runs = []
    for job in spec.jobs:
        run = read_run(spec.output / job.folder)
        normalize_run(run, spec.output)
        runs.append(run)
    report = build_report(runs, n_boot=n_boot, seed=0)
    return write_report(report, spec.output / REPORT_DIR)
