"""Check a submission (`analysis.submission`) against the run folders it claims to come from and
against the tasks installed here.

`verify_submission(path, runs)` returns a `Verification`: a list of `Mismatch` (what differs, what
the submission says = *expected*, what was found here) and counts of what was checked. It

1. validates the file against the shipped JSON Schema (each violation is one mismatch; a file that
   breaks the schema is not checked further);
2. reads RUN (and REFERENCE when the submission has one) with `analysis.runs`, digests every
   samples file and the results file, and rebuilds the whole submission from them
   (`build_submission`); every field that differs is one mismatch (numbers compared with a
   relative tolerance of 1e-9);
3. recomputes each task's hash from the samples lines, the way lm-eval computes results'
   ``task_hashes`` (sha256 of the concatenated doc_hash + prompt_hash + target_hash of all lines);
4. against the installed tasks (lm-eval's `TaskManager`, which sees this package's tasks too):
   the task exists, its ``metadata.version`` equals the submitted version, every lm-eval aggregate
   score recomputes from the samples lines' per-item values with the installed task's aggregation
   functions, and the task hash recomputes from the installed task's own documents, prompts and
   targets (`Task.build_all_requests`, hashed as `lm_eval.evaluator` does). When the run used a
   system instruction or a chat template the prompts cannot be rebuilt here; then the documents
   and targets are compared line by line instead, and a note says so.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lm_eval_bias.analysis.runs import read_run
from lm_eval_bias.analysis.submission import (
    SamplesScan,
    build_submission,
    read_submission_text,
    scan_run,
    submission_marks,
    validate_schema,
)
from lm_eval_bias.errors import BiasEvalError

REL_TOL = 1e-9
ABS_TOL = 1e-12


@dataclass
class Mismatch:
    what: str
    expected: Any
    found: Any

    def line(self) -> str:
        return f"{self.what}: expected {_show(self.expected)}, found {_show(self.found)}"


@dataclass
class Verification:
    path: Path
    mismatches: list[Mismatch] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    n_values: int = 0
    n_files: int = 0
    n_recomputed_scores: int = 0
    n_task_hashes: int = 0
    tasks: list[str] = field(default_factory=list)
    submission: dict | None = None

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def summary(self) -> str:
        model = "?"
        if isinstance(self.submission, dict):
            m = self.submission.get("model") or {}
            q = self.submission.get("quantization") or {}
            method = q.get("method", "not quantized") if isinstance(q, dict) else "?"
            bits = f" {q['bits']}-bit" if isinstance(q, dict) and q.get("bits") else ""
            model = f"{m.get('name')} ({method}{bits})"
        if not self.ok:
            return (f"{self.path}: {len(self.mismatches)} mismatch"
                    f"{'es' if len(self.mismatches) != 1 else ''} ({model})")
        return (f"{self.path}: verified {model}: {len(self.tasks)} task"
                f"{'s' if len(self.tasks) != 1 else ''}, {self.n_values} values, "
                f"{self.n_recomputed_scores} scores recomputed from samples, {self.n_files} file "
                f"digests, {self.n_task_hashes} task hashes against installed tasks"
                f"{submission_marks(self.submission)}")


class Text(str):
    """A description (not a value from a file): shown without quotes."""


def _show(x: Any) -> str:
    if isinstance(x, Text):
        return str(x)
    if isinstance(x, float):
        return repr(x)
    if isinstance(x, (dict, list)):
        text = json.dumps(x, sort_keys=True)
        return text if len(text) <= 120 else text[:117] + "..."
    if x is _ABSENT:
        return "(absent)"
    return json.dumps(x) if isinstance(x, str) else str(x)


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


_ABSENT = _Absent()


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _close(a: Any, b: Any) -> bool:
    if _is_num(a) and _is_num(b):
        fa, fb = float(a), float(b)
        if math.isnan(fa) or math.isnan(fb):
            return math.isnan(fa) and math.isnan(fb)
        return math.isclose(fa, fb, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return a == b and type(a) is type(b) or (a is None and b is None)


def _key(path: str, k: Any) -> str:
    k = str(k)
    simple = k.replace("_", "").replace("-", "").isalnum()
    return f"{path}.{k}" if simple else f"{path}[{json.dumps(k)}]"


def diff(expected: Any, found: Any, path: str, out: list[Mismatch], *, source: str = "") -> int:
    """Append a `Mismatch` for every leaf where `expected` and `found` differ; return the number of
    leaves compared. Dicts are compared key by key (missing keys read ``(absent)``)."""
    if isinstance(expected, dict) and isinstance(found, dict):
        n = 0
        for k in list(expected) + [k for k in found if k not in expected]:
            n += diff(expected.get(k, _ABSENT), found.get(k, _ABSENT), _key(path, k), out,
                      source=source)
        return n
    if isinstance(expected, list) and isinstance(found, list) and len(expected) == len(found):
        n = 0
        for i, (a, b) in enumerate(zip(expected, found)):
            n += diff(a, b, f"{path}[{i}]", out, source=source)
        return n
    if not _close(expected, found):
        out.append(Mismatch(f"{path}{source}", expected, found))
    return 1


# ----------------------------------------------------------------------------- installed tasks

_MANAGERS: dict[str, Any] = {}
_TASKS: dict[tuple[str, str], Any] = {}


def _task_manager(metadata: dict, defaults: bool):
    """A cached `TaskManager`. Without lm-eval's defaults it indexes only this package's task
    folder (added by `lm_eval_bias._plugin`), which is much faster; lm-eval's own tasks need the
    full index."""
    key = json.dumps(metadata, sort_keys=True, default=str)
    if (key, defaults) not in _MANAGERS:
        from lm_eval.tasks import TaskManager

        _MANAGERS[(key, defaults)] = TaskManager(include_defaults=defaults,
                                                 metadata=metadata or None)
    return _MANAGERS[(key, defaults)], key


def _installed_task(name: str, metadata: dict):
    """The installed task `name` built with the run's metadata, or None when not installed."""
    tm, key = _task_manager(metadata, defaults=False)
    if name not in tm.all_subtasks:
        tm, key = _task_manager(metadata, defaults=True)
    if (name, key) not in _TASKS:
        if name not in tm.all_subtasks:
            _TASKS[(name, key)] = None
        else:
            built = tm.load_task_or_group([name])
            _TASKS[(name, key)] = built[name]
    return _TASKS[(name, key)]


def _hash(text: str) -> str:
    from lm_eval.utils import hash_string

    return hash_string(text)


def _doc_hash(doc: Any) -> str:
    from lm_eval.utils import handle_non_serializable

    return _hash(json.dumps(doc, indent=2, default=handle_non_serializable, ensure_ascii=False))


def _check_installed(task_name: str, sub: dict, gen: dict, scan: SamplesScan,
                     res: Verification):
    claimed = sub["tasks"][task_name]
    meta = dict((gen.get("tasks") or {}).get(task_name, {}).get("metadata") or {})
    meta.pop("version", None)
    where = f"tasks.{task_name}"
    try:
        task = _installed_task(task_name, meta)
    except Exception as exc:  # noqa: BLE001 - any failure to build means: not checkable here
        res.mismatches.append(Mismatch(f"{where} (installed task)", Text("loadable here"),
                                       Text(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")))
        return None
    if task is None:
        res.mismatches.append(Mismatch(f"{where} (installed task)", Text("installed here"),
                                       Text("not installed (pip install the lm-eval-bias version "
                                            "that made the submission)")))
        return None
    installed_version = (task.config.metadata or {}).get("version")
    diff(claimed.get("version"), installed_version, f"{where}.version", res.mismatches,
         source=" (installed task)")
    _check_scores(task, claimed, scan, where, res)
    _check_task_hash(task, task_name, claimed, gen, scan, res)
    return task


def _check_scores(task, claimed: dict, scan: SamplesScan, where: str, res: Verification) -> None:
    """Aggregates, recomputed from the samples lines with the installed aggregation functions."""
    aggs = task.aggregation()
    for key, score in sorted((claimed.get("scores") or {}).items()):
        metric, _, filt = key.partition(",")
        values = scan.metric_values.get((metric, filt))
        agg = aggs.get(metric)
        if agg is None or values is None:
            res.mismatches.append(Mismatch(
                f"{where}.scores[{json.dumps(key)}]", Text("a metric of the installed task with "
                "per-item values in the samples file"),
                Text("no aggregation" if agg is None else "no per-item values")))
            continue
        try:
            value = agg(values)
        except Exception as exc:  # noqa: BLE001 - task code; reported as a mismatch
            res.mismatches.append(Mismatch(f"{where}.scores[{json.dumps(key)}].value",
                                           score.get("value"), Text(f"aggregation failed: {exc}")))
            continue
        value = None if _is_num(value) and not math.isfinite(float(value)) else value
        diff(score.get("value"), value, f"{where}.scores[{json.dumps(key)}].value",
             res.mismatches, source=" (recomputed from samples with the installed aggregation)")
        res.n_recomputed_scores += 1


def _check_task_hash(task, task_name: str, claimed: dict, gen: dict, scan: SamplesScan,
                     res: Verification) -> None:
    """Task hash from the installed task's documents, prompts and targets."""
    where = f"tasks.{task_name}"
    lines = scan.lines
    if not lines:
        return
    n_shot = claimed.get("n_shot") or 0
    if n_shot:
        task.set_config(key="num_fewshot", value=n_shot)
        seed = (gen.get("seeds") or {}).get("fewshot_seed")
        if seed is not None:
            task.set_fewshot_seed(seed=seed)
    doc_ids = [d for _, d, *_ in lines]
    task.build_all_requests(limit=max(doc_ids) + 1, rank=0, world_size=1)
    by_doc: dict[int, list] = {}
    for inst in task.instances:
        by_doc.setdefault(inst.doc_id, []).append(inst)
    rebuild_prompts = not gen.get("system_instruction_sha") and not gen.get("chat_template_sha")
    hashes = []
    bad_docs = []
    for filt, doc_id, doc_hash, prompt_hash, target_hash in lines:
        reqs = sorted(by_doc.get(doc_id, []), key=lambda x: x.idx)
        if not reqs:
            bad_docs.append((doc_id, "no such document"))
            continue
        doc = reqs[0].doc
        h_doc = _doc_hash(doc)
        h_target = _hash(str(task.doc_to_target(doc)))
        h_prompt = _hash(reqs[0].arguments[0]) if rebuild_prompts else prompt_hash
        hashes.append(f"{h_doc}{h_prompt}{h_target}")
        if (h_doc, h_prompt, h_target) != (doc_hash, prompt_hash, target_hash):
            bad_docs.append((doc_id, "document" if h_doc != doc_hash else
                             "prompt" if h_prompt != prompt_hash else "target"))
    if bad_docs:
        doc_id, part = bad_docs[0]
        res.mismatches.append(Mismatch(
            f"{where} samples doc_id {doc_id} {part} (installed task)",
            Text("the installed task's " + part), Text(f"a different {part} ({len(bad_docs)} of "
                                                      f"{len(lines)} lines differ)")))
    if rebuild_prompts:
        diff(claimed.get("task_hash"), _hash("".join(hashes)), f"{where}.task_hash",
             res.mismatches, source=" (recomputed from the installed task)")
        res.n_task_hashes += 1
    else:
        res.notes.append(f"{task_name}: prompts not rebuilt here (the run used a system "
                         "instruction or chat template); documents and targets checked")


# ----------------------------------------------------------------------------- software


def _release(version: Any) -> tuple[int, ...] | None:
    """The release numbers of a PEP 440 version (``"0.4.13.dev2+g1"`` -> ``(0, 4, 13)``)."""
    m = re.match(r"^v?(\d+(?:\.\d+)*)", str(version)) if isinstance(version, str) else None
    if m is None:
        return None
    parts = [int(x) for x in m.group(1).split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _check_software(claimed: dict, fresh: dict, res: Verification) -> None:
    """``run_lm_eval`` and ``run_transformers`` are what the run's results JSON records; the
    versions at export (``lm_eval_bias``, ``lm_eval``) are version strings (the schema) and an
    ``lm_eval_bias`` newer than the one verifying is refused: its figures may follow rules this
    installation does not know."""
    for key in ("run_lm_eval", "run_transformers"):
        diff(claimed.get(key), fresh.get(key), f"software.{key}", res.mismatches,
             source=" (recomputed from the run)")
    here = fresh.get("lm_eval_bias")
    release, release_here = _release(claimed.get("lm_eval_bias")), _release(here)
    # a malformed version is the schema's to report (its pattern)
    if release is not None and release_here is not None and release > release_here:
        res.mismatches.append(Mismatch(
            "software.lm_eval_bias", Text(f"at most {here}, the version verifying here"),
            Text(f"{claimed.get('lm_eval_bias')} (upgrade lm-eval-bias to verify it)")))


# ----------------------------------------------------------------------------- data provenance


def expected_effective(n_docs: int, limit: Any) -> int:
    """Documents lm-eval evaluates of a task with `n_docs` under ``--limit`` (its own rule:
    a fraction below 1 is a share, rounded up; otherwise a count)."""
    if limit is None:
        return n_docs
    limit = float(limit)
    return min(n_docs, int(math.ceil(n_docs * limit)) if limit < 1.0 else int(limit))


def _check_doc_counts(run, tasks: dict[str, Any], out: list[Mismatch], side: str) -> None:
    """``n-samples`` of every task: all the installed task's documents (``original``), and as
    many evaluated (``effective``) as ``--limit`` allows. A run on a cut data file has fewer."""
    counts = run.results.get("n-samples") or {}
    for name, task in sorted(tasks.items()):
        n_here = len(task.eval_docs)
        entry = counts.get(name) if isinstance(counts.get(name), dict) else {}
        diff(entry.get("original", _ABSENT), n_here, f"{side}n-samples.{name}.original", out,
             source=" (documents of the installed task)")
        diff(entry.get("effective", _ABSENT), expected_effective(n_here, run.limit),
             f"{side}n-samples.{name}.effective", out,
             source=f" (documents of the installed task under limit {run.limit})")


def _check_data_files(run, read_here: dict, out: list[Mismatch], side: str) -> None:
    """The run's ``data_files`` (sha256 of every benchmark file its tasks read, written by the
    lm_eval command and the sweep; `tasks._data.files_read`) against the files the installed
    tasks read here: the same names with the same SHA-256."""
    recorded = run.results.get("data_files")
    if not isinstance(recorded, dict):
        out.append(Mismatch(
            f"{side}data_files (recomputed from the installed tasks)",
            Text("the SHA-256 of every data file the run read, as lm-eval-bias records it"),
            Text("no record in the results JSON" if recorded is None else "not an object")))
        return
    claimed, here = _shas_by_file(recorded), _shas_by_file(read_here)
    for name in sorted(set(claimed) | set(here)):
        diff(claimed.get(name, _ABSENT), here.get(name, _ABSENT),
             f"{side}data_files[{json.dumps(name)}].sha256", out,
             source=" (read by the installed tasks)")


def check_run_data(run, tasks: dict[str, Any], read_here: dict, *,
                   side: str = "") -> list[Mismatch]:
    """THE data check of a run (verify and export both use it): its recorded documents per task
    (``n-samples``) against `tasks`, the installed tasks built afresh here, and its recorded
    ``data_files`` against `read_here`, the files those tasks read (`tasks._data.files_read`).
    A run on a cut, edited or other data file, or one that recorded no data, gives mismatches;
    a run none of whose tasks is installed here has nothing to check. `side` prefixes each mismatch (``"reference "`` for a reference run)."""
    out: list[Mismatch] = []
    _check_doc_counts(run, tasks, out, side)
    if tasks:  # no installed task of the run here: no data file it should have recorded
        _check_data_files(run, read_here, out, side)
    return out


def _run_metadata(run, task: str) -> dict:
    """The task's ``--metadata`` as the run recorded it, without what building it adds."""
    meta = ((run.results.get("configs") or {}).get(task) or {}).get("metadata")
    return {k: v for k, v in (meta if isinstance(meta, dict) else {}).items()
            if k not in ("version", "config_source")}


@contextlib.contextmanager
def _quiet_lm_eval():
    """Without lm-eval's warnings and progress bars while installed tasks are built and their
    requests made: what a check finds is a mismatch line (a task that fails to build too), and
    `verify` and `export` print one line each, not lm-eval's log."""
    logger = logging.getLogger("lm_eval")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def _fresh_tasks(build) -> tuple[dict[str, Any], dict]:
    """Run ``build()`` (which builds installed tasks and returns them by name) with the record of
    files read and the task cache emptied first, so that the files those tasks read are
    recorded: (the tasks, the files they read)."""
    from lm_eval_bias.tasks import _data

    _data.forget_files_read()
    _TASKS.clear()
    with _quiet_lm_eval():
        built = build()
    return built, _data.files_read()


def installed_data_check(run, *, side: str = "") -> tuple[list[Mismatch], list[str]]:
    """`check_run_data` of `run` against its lm-eval-bias tasks as installed here, built afresh
    with the run's task metadata: (mismatches, tasks left unchecked). Tasks whose records were
    rebuilt from lm-eval built-in logs (`Run.rebuilt`) read their data through lm-eval, which
    records no data files, and are not checked; nor are tasks that are not lm-eval-bias tasks
    installed here (they are returned)."""
    names = [t for t in run.tasks if t not in run.rebuilt]
    unchecked: list[str] = []

    def build() -> dict[str, Any]:
        built = {}
        for name in names:
            meta = _run_metadata(run, name)
            tm, _ = _task_manager(meta, defaults=False)
            if name not in tm.all_subtasks:
                unchecked.append(name)
                continue
            built[name] = _installed_task(name, meta)
        return built

    tasks, read_here = _fresh_tasks(build)
    return check_run_data(run, tasks, read_here, side=side), unchecked


def _shas_by_file(files: dict) -> dict[str, Any]:
    """file name (without the " [sample]" mark) -> its sha256 (a sorted list when one name was
    read as two different files, e.g. a packaged sample and the full file)."""
    out: dict[str, set] = {}
    for key, entry in files.items():
        sha = entry.get("sha256") if isinstance(entry, dict) else None
        out.setdefault(str(key).removesuffix(" [sample]"), set()).add(str(sha))
    return {k: (next(iter(v)) if len(v) == 1 else sorted(v)) for k, v in out.items()}


def _check_installed_tasks(sub: dict, run, reference, scans: dict, res: Verification) -> None:
    """Every task of the run against the installed task (`_check_installed`), then the run's
    (and the reference run's) documents: their number and the data files they came from (`check_run_data`). The tasks are
    built afresh, so that the files they read here are recorded (`tasks._data.files_read`)."""

    def build() -> dict[str, Any]:
        built = {}
        for name in sorted(set(sub["tasks"]) & set(scans)):
            task = _check_installed(name, sub, sub.get("generation") or {}, scans[name], res)
            if task is not None:
                built[name] = task
        return built

    built, read_here = _fresh_tasks(build)
    if len(built) < len(scans):
        res.notes.append("data provenance not checked: some tasks are not installed here")
        return
    res.mismatches.extend(check_run_data(run, built, read_here))
    if reference is not None:
        found, unchecked = installed_data_check(reference, side="reference ")
        res.mismatches.extend(found)
        if unchecked:
            res.notes.append("reference data provenance not checked for tasks not installed "
                             f"here: {', '.join(unchecked)}")


# ----------------------------------------------------------------------------- entry point


def verify_submission(path: str | Path, runs: list[str | Path], *, weights: str | Path | None = None,
                      reference_weights: str | Path | None = None,
                      installed: bool = True,
                      allow_different_backends: bool = False) -> Verification:
    """Check submission file `path` against run folder ``runs[0]`` (and the reference run
    ``runs[1]`` when the submission has one). See the module docstring for what is checked."""
    path = Path(path)
    res = Verification(path=path)
    try:
        sub, problem = read_submission_text(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BiasEvalError(f"submission not found: {path}; give the file export wrote") from None
    except IsADirectoryError:
        raise BiasEvalError(f"{path} is a folder; give the submission file export wrote") from None
    except UnicodeDecodeError as exc:
        sub, problem = None, f"invalid JSON ({exc})"
    if problem is not None:
        res.mismatches.append(Mismatch("submission file", Text("valid JSON"), Text(problem)))
        return res
    res.submission = sub if isinstance(sub, dict) else None
    for where, msg in validate_schema(sub):
        res.mismatches.append(Mismatch(f"schema at {where}",
                                       Text("valid per submission.schema.json"), Text(msg)))
    if res.mismatches:
        return res
    has_ref = sub.get("reference") is not None
    if not runs:
        raise BiasEvalError("give the run folder(s) the submission was made from: --runs RUN "
                            "[REFERENCE]")
    if has_ref and len(runs) < 2:
        raise BiasEvalError(f"{path} was made against a reference run; give it too: --runs RUN "
                            "REFERENCE")
    if not has_ref and len(runs) > 1:
        raise BiasEvalError(f"{path} has no reference run, but --runs names {len(runs)} folders; "
                            "give only RUN")
    if len(runs) > 2:
        raise BiasEvalError(f"--runs takes RUN and at most one REFERENCE, got {len(runs)} folders")
    run = read_run(runs[0])
    reference = read_run(runs[1]) if has_ref else None
    scans = scan_run(run)
    ref_scans = scan_run(reference) if reference is not None else None
    fresh = build_submission(run, reference, weights=weights, reference_weights=reference_weights,
                             scans=scans, reference_scans=ref_scans, require_weights=False,
                             allow_different_backends=allow_different_backends)
    res.tasks = sorted(fresh["tasks"])
    res.n_files = len(scans) + 1 + (len(ref_scans) + 1 if ref_scans is not None else 0)
    for side, m in (("model", fresh["model"]),
                    ("reference.model", (fresh.get("reference") or {}).get("model"))):
        if m and m.get("local") and m.get("weights") is None:
            claimed = sub.get("model") if side == "model" else sub["reference"].get("model")
            m["weights"] = claimed.get("weights")
            res.notes.append(f"{side}: local weights {m.get('name')} not here, not checked "
                             "(give --weights FOLDER)")
    for section in ("model", "quantization", "generation", "scorers", "files", "tasks",
                    "headline", "reference", "change"):
        res.n_values += diff(sub.get(section), fresh.get(section), section, res.mismatches,
                             source=" (recomputed from the run)")
    _check_software(sub["software"], fresh["software"], res)
    for side, sc, claimed_tasks in (("tasks", scans, sub.get("tasks") or {}),
                                    ("reference.tasks", ref_scans or {},
                                     (sub.get("reference") or {}).get("tasks") or {})):
        for task, scan in sorted(sc.items()):
            if task in claimed_tasks:
                diff(claimed_tasks[task].get("task_hash"), scan.task_hash,
                     f"{side}.{task}.task_hash", res.mismatches,
                     source=" (recomputed from the samples lines)")
    here = fresh["software"].get("lm_eval")
    if here and here != sub["software"].get("run_lm_eval"):
        res.notes.append(f"the run used lm-eval {sub['software'].get('run_lm_eval')}, this machine "
                         f"has {here}: task hashes are compared across versions")
    if installed:
        _check_installed_tasks(sub, run, reference, scans, res)
    else:
        res.notes.append("installed tasks not checked (--no-installed)")
    return res


def verify_files(path: str | Path, runs: list[str | Path], **kwargs) -> Verification:
    """`verify_submission`, with a user error (unreadable run, wrong --runs) turned into one
    mismatch line, for callers that verify many submissions (the leaderboard)."""
    try:
        return verify_submission(path, runs, **kwargs)
    except BiasEvalError as exc:
        res = Verification(path=Path(path))
        res.mismatches.append(Mismatch("runs", Text("readable run folders matching the submission"),
                                       Text(str(exc))))
        return res
