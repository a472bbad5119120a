"""Read one lm-eval output folder into a `Run`: run info plus an item table (one row per item).

What lm-eval 0.4.13 writes for ``lm_eval ... --output_path OUT --log_samples``
(`lm_eval/loggers/evaluation_tracker.py`):

- ``OUT/<model_name_sanitized>/results_<ts>.json`` with ``results``, ``configs``, ``versions``,
  ``n-shot``, ``n-samples``, ``config`` (model, model_args, limit, ...), ``task_hashes``,
  ``model_name``, ``date``, ... where ``<ts>`` is ``datetime.now().isoformat()`` with ``:``
  replaced by ``-``;
- next to it one ``samples_<task>_<ts>.jsonl`` per task, opened in *append* mode, one JSON object
  per line (``doc_id``, ``doc``, ``target``, ``arguments``, ``resps``, ``filtered_resps`` (strings),
  ``filter``, ``metrics``, ``doc_hash``, ``prompt_hash``, ``target_hash`` and every metric value,
  so our ``bias_item`` too). Floats that are NaN are written as a bare ``NaN``.

The reader takes the newest ``results_*.json`` under the folder (searched recursively) and the
samples files of the same timestamp in the same folder. It streams the samples line by line into
columns and refuses, with a one-line `BiasEvalError`, anything it cannot read faithfully.

Item table columns (`ITEM_COLUMNS`, in order): the sample line's ``task, filter, doc_id,
doc_hash, prompt_hash, target_hash``; the record's core fields (``benchmark, pred, invalid, probs,
gold, biased, groups, axis``); ``entropy_norm, uncertainty`` derived from ``probs``; then the
benchmark-specific extras the schema lists (``label, scores``; BBQ's ``context_condition``, ...).
Which record fields are read, and how each is typed, is `lm_eval_bias.record_schema`'s table.

Integer fields are nullable ``Int64``, booleans nullable ``boolean``, ``groups`` a list of str,
``probs`` a list of float or None, ``entropy_norm`` float (NaN without probs), ``uncertainty``
"low"/"medium"/"high"/None. ``invalid`` is the record's flag, also set when the record has neither
``pred`` nor ``label``. ``pred`` and ``gold`` must index the record's ``choices``, ``probs`` must
have one finite, non-negative value per choice summing to 1 (within `PROBS_SUM_TOL`), and
``groups`` must be a flat list of strings; a record that breaks any of these is refused.
"""

from __future__ import annotations

import functools
import gc
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

try:  # optional: 2-3x faster parsing of the (large) sample lines; json is the fallback
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

from lm_eval_bias.analysis import builtin, details_repo
from lm_eval_bias.analysis.quantization import (
    UnknownQuantization,
    looks_like_a_folder,
    read_checkpoint_config,
    run_quantization,
)
from lm_eval_bias.analysis.quantization import backend as run_backend
from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.metrics.uncertainty import normalized_entropies, uncertainty_bins
from lm_eval_bias.record_schema import (
    CORE_FIELDS,
    DERIVED_COLUMNS,
    EXTRA_FIELDS,
    SAMPLE_COLUMNS,
    RecordField,
    read_fields,
)

#: `bias_item` versions this reader understands.
KNOWN_BIAS_ITEM_VERSIONS = (1,)

#: The item table's record columns and how each is coerced: `lm_eval_bias.record_schema`.
_READ_FIELDS = read_fields()
ITEM_COLUMNS = (SAMPLE_COLUMNS + tuple(f.name for f in CORE_FIELDS if f.reader)
                + DERIVED_COLUMNS + tuple(f.name for f in EXTRA_FIELDS if f.reader))
_INT_COLUMNS = tuple(f.name for f in _READ_FIELDS if f.reader == "int")
_BOOL_COLUMNS = tuple(f.name for f in _READ_FIELDS if f.reader == "bool")
_OBJECT_COLUMNS = tuple(f.name for f in _READ_FIELDS if f.reader in ("groups", "probs", "object"))
#: tolerance of the check that `probs` sums to 1
PROBS_SUM_TOL = 1e-6

_RESULTS_RE = re.compile(r"^results_(?P<ts>.+)\.json$")


@dataclass
class Run:
    """One lm-eval run: what the results JSON says, which files were read, and the item table."""

    path: Path
    results_file: Path
    timestamp: str
    results: dict
    samples_files: dict[str, Path]
    items: pd.DataFrame
    ignored_results_files: list[Path] = field(default_factory=list)
    skipped_tasks: dict[str, str] = field(default_factory=dict)
    #: tasks of lm-eval's built-in bias tasks whose records were rebuilt -> family
    #: (`lm_eval_bias.analysis.builtin`)
    rebuilt: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> dict:
        cfg = self.results.get("config")
        return cfg if isinstance(cfg, dict) else {}

    @property
    def model(self) -> str | None:
        """The ``--model`` name (e.g. ``hf``, ``hf-quant``)."""
        return self.config.get("model")

    @property
    def model_args(self) -> Any:
        return self.config.get("model_args")

    @property
    def model_name(self) -> str | None:
        """The checkpoint (lm-eval's ``model_name``: ``pretrained=`` of the model args)."""
        return self.results.get("model_name") or model_args_dict(self.model_args).get("pretrained")

    @property
    def backend(self) -> str | None:
        """The backend that ran it, from ``config.model``: ``hf``, ``hf-quant``, ``vllm``, ...
        (`analysis.quantization.backend`)."""
        return run_backend(self.model)

    @functools.cached_property
    def quantization(self) -> Any:
        """The quantization record, in the fields hf-quant writes to ``config.quantization``
        (None: not quantized): hf-quant's own record, else read from the checkpoint's
        ``quantization_config`` and the model args of ``hf`` / ``vllm``
        (`analysis.quantization`). Refuses a run that is, or may be, quantized with bits that
        cannot be determined."""
        args = model_args_dict(self.model_args)
        recorded = self.config.get("quantization")
        ckpt = None
        if recorded is None and run_backend(self.model) in ("hf", "vllm"):
            ckpt = read_checkpoint_config(args)
        try:
            return run_quantization(self.model, args, recorded, ckpt)
        except UnknownQuantization as exc:
            name = str(args.get("pretrained", "?"))
            hint = exc.hint or (
                f"run the analysis where the checkpoint folder {name} is, with its config.json"
                if looks_like_a_folder(name) else f"put its config.json in the Hugging Face "
                f"cache: hf download {name} config.json")
            raise BiasEvalError(
                f"cannot tell the bits of run {self.results_file} (--model {self.model}, "
                f"pretrained={name}): {exc}; {hint}"
            ) from None

    @property
    def versions(self) -> dict:
        return dict(self.results.get("versions") or {})

    @property
    def n_shot(self) -> dict:
        return dict(self.results.get("n-shot") or {})

    @property
    def task_hashes(self) -> dict:
        return dict(self.results.get("task_hashes") or {})

    @property
    def limit(self) -> Any:
        return self.config.get("limit")

    @property
    def tasks(self) -> list[str]:
        """Tasks with `bias_item` records, sorted."""
        return sorted(self.items["task"].unique().tolist()) if len(self.items) else []

    def info(self) -> dict:
        """JSON-serialisable description of the run (what the renderers print)."""
        return {
            "path": str(self.path),
            "results_file": str(self.results_file),
            "ignored_results_files": [str(p) for p in self.ignored_results_files],
            "samples_files": {t: str(p) for t, p in sorted(self.samples_files.items())},
            "timestamp": self.timestamp,
            "date": self.results.get("date"),
            "model": self.model,
            "model_name": self.model_name,
            "model_args": self.model_args,
            "model_dtype": self.config.get("model_dtype"),
            "quantization": self.quantization,
            "limit": self.limit,
            "versions": self.versions,
            "n_shot": self.n_shot,
            "task_hashes": self.task_hashes,
            "lm_eval_version": self.results.get("lm_eval_version"),
            "tasks": self.tasks,
            "skipped_tasks": dict(sorted(self.skipped_tasks.items())),
        } | ({"rebuilt": dict(sorted(self.rebuilt.items()))} if self.rebuilt else {})


def model_args_dict(model_args: Any) -> dict:
    """`config.model_args` as a dict, whether lm-eval wrote the parsed dict or the string."""
    if isinstance(model_args, dict):
        return {str(k): v for k, v in model_args.items()}
    if isinstance(model_args, str):
        out = {}
        for part in model_args.split(","):
            if "=" in part:
                k, v = part.split("=", 1)
                out[k.strip()] = v.strip()
        return out
    return {}


# ----------------------------------------------------------------------------- locating files


def _results_timestamp(path: Path) -> str:
    m = _RESULTS_RE.match(path.name)
    return m.group("ts") if m else ""


def find_results_files(folder: str | Path) -> list[Path]:
    """All ``results_*.json`` under `folder` (recursively), oldest first (by the timestamp in the
    name, then modification time)."""
    folder = Path(folder)
    found = [p for p in folder.rglob("results_*.json") if p.is_file() and _RESULTS_RE.match(p.name)]
    return sorted(found, key=lambda p: (_results_timestamp(p), p.stat().st_mtime, str(p)))


def _locate(path: Path) -> tuple[Path, list[Path]]:
    if not path.exists():
        raise BiasEvalError(
            f"run folder not found: {path}; give the --output_path folder of an lm_eval run"
        )
    if path.is_file():
        if _RESULTS_RE.match(path.name):
            return path, []
        raise BiasEvalError(
            f"{path} is a file, not a run folder; give the --output_path folder of an lm_eval run "
            "(or one of its results_*.json files)"
        )
    found = find_results_files(path)
    if not found:
        raise BiasEvalError(
            f"no results_*.json under {path}; give the --output_path folder of a finished "
            "lm_eval run"
        )
    return details_repo.locate_run(path, found)


def _samples_files(results_file: Path, timestamp: str) -> dict[str, Path]:
    suffix = f"_{timestamp}.jsonl"
    out = {}
    for p in sorted(details_repo.samples_folder(results_file).iterdir()):
        name = p.name
        if p.is_file() and name.startswith("samples_") and name.endswith(suffix):
            task = name[len("samples_"):-len(suffix)]
            if task:
                out[task] = p
    return out


# ----------------------------------------------------------------------------- value coercion


class _BadValue(ValueError):
    pass


def _short(x: Any) -> str:
    """repr of a bad value, cut so that the error stays one readable line."""
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


_INT64 = 2 ** 63


def _as_int(x: Any, key: str) -> int | None:
    if x is None or _is_nan(x):
        return None
    if isinstance(x, bool):
        raise _BadValue(f"{key} must be an integer or null, got {_short(x)}")
    out = None
    if isinstance(x, int):
        out = x
    elif (isinstance(x, float) and x.is_integer()) or (
            isinstance(x, str) and re.fullmatch(r"-?\d+", x.strip())):
        out = int(x)
    # the item table stores 64-bit integers; a larger value is damage, not an id
    if out is None or not -_INT64 <= out < _INT64:
        raise _BadValue(f"{key} must be an integer or null, got {_short(x)}")
    return out


def _as_bool(x: Any, key: str) -> bool | None:
    if x is None or _is_nan(x):
        return None
    if isinstance(x, bool):
        return x
    if isinstance(x, str) and x.strip().lower() in ("true", "false"):
        return x.strip().lower() == "true"
    if isinstance(x, (int, float)) and x in (0, 1):
        return bool(x)
    raise _BadValue(f"{key} must be true, false or null, got {_short(x)}")


def _as_str(x: Any) -> str | None:
    if x is None or _is_nan(x):
        return None
    return str(x)


def _as_groups(x: Any) -> list[str]:
    if type(x) is list and all(type(g) is str for g in x):
        return x
    raise _BadValue(f"groups must be a flat list of strings, got {_short(x)}")


def _as_choices(x: Any) -> int:
    """The number of options of a record; its `choices` must be a list of >= 2 strings."""
    if type(x) is list and len(x) >= 2 and all(type(c) is str for c in x):
        return len(x)
    raise _BadValue(f"choices must be a list of at least 2 strings, got {_short(x)}")


def _as_option(x: Any, key: str, n: int) -> int | None:
    """An option index (pred, gold): null or an integer in [0, n)."""
    out = _opt_int(x, key)
    if out is not None and not 0 <= out < n:
        raise _BadValue(f"{key} must index the {n} choices (0 to {n - 1}), got {out}")
    return out


def _as_probs(x: Any, n: int) -> list[float] | None:
    """Null, or one finite, non-negative float per choice, summing to 1."""
    if x is None:
        return None
    if (type(x) is list and len(x) == n and all(type(v) is float and 0.0 <= v <= 1.0 for v in x)
            and abs(sum(x) - 1.0) <= PROBS_SUM_TOL):
        return x  # the common case, checked once
    if type(x) is not list or len(x) != n:
        raise _BadValue(f"probs must be null or a list of {n} numbers (one per choice), "
                        f"got {_short(x)}")
    out = x
    if not all(type(v) is float for v in x):
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in x):
            raise _BadValue(f"probs must be a list of numbers, got {_short(x)}")
        out = [float(v) for v in x]
    if not all(0.0 <= v <= 1.0 for v in out):  # False for NaN too
        raise _BadValue(f"probs must be finite and >= 0, got {_short(x)}")
    if abs(math.fsum(out) - 1.0) > PROBS_SUM_TOL:
        raise _BadValue(f"probs must sum to 1 (within {PROBS_SUM_TOL}), got {_short(x)}")
    return out


# ----------------------------------------------------------------------------- reading


def _loads(line: bytes) -> Any:
    """`json.loads` of one raw line, through orjson when it is installed. orjson refuses what
    lm-eval may write but strict JSON forbids (bare NaN), and those lines, like every invalid
    line, go to `json`, whose error messages the reader reports. Raises UnicodeDecodeError for
    bytes that are not UTF-8."""
    if _orjson is not None:
        try:
            return _orjson.loads(line)
        except _orjson.JSONDecodeError:
            pass
    text = line.decode("utf-8")
    obj = json.loads(text)
    if "\\u" in text:
        # json (unlike orjson) lets an unpaired \ud800-style escape through; such a string
        # could not be written back as UTF-8 (report, compare JSON), so refuse it here.
        try:
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise json.JSONDecodeError("unpaired UTF-16 surrogate escape", text, 0) from None
    return obj


_ROW_KEYS = SAMPLE_COLUMNS + tuple(f.name for f in _READ_FIELDS)


def _opt_int(x: Any, key: str) -> int | None:
    if x is None or (type(x) is int and -_INT64 <= x < _INT64):
        return x
    return _as_int(x, key)


def _opt_bool(x: Any, key: str) -> bool | None:
    return x if x is None or type(x) is bool else _as_bool(x, key)


def _opt_str(x: Any) -> str | None:
    return x if x is None or type(x) is str else _as_str(x)


def _parse_line(line: bytes, where: str) -> dict:
    """One sample line as a dict; refuses bytes that are not UTF-8, bad JSON (a truncated last
    line named as such) and lines that are not JSON objects."""
    try:
        rec = _loads(line)
    except UnicodeDecodeError:
        raise BiasEvalError(
            f"{where}: not UTF-8 text; the samples file is damaged, rerun lm_eval with "
            "--log_samples"
        ) from None
    except (json.JSONDecodeError, RecursionError) as exc:
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        if not line.endswith(b"\n"):
            raise BiasEvalError(
                f"{where}: truncated last line ({msg}); the run was interrupted while "
                "writing samples, rerun lm_eval with --log_samples"
            ) from None
        raise BiasEvalError(
            f"{where}: not valid JSON ({msg}); the samples file is damaged, rerun "
            "lm_eval with --log_samples"
        ) from None
    if not isinstance(rec, dict):
        raise BiasEvalError(
            f"{where}: a sample line must be a JSON object; the samples file is damaged, "
            "rerun lm_eval with --log_samples"
        )
    return rec


def _check_item(item: Any, where: str) -> None:
    if not isinstance(item, dict):
        raise BiasEvalError(
            f"{where}: bias_item must be a JSON object, got {type(item).__name__}; "
            "rerun with a current lm-eval-bias"
        )
    version = item.get("v")
    if isinstance(version, bool) or version not in KNOWN_BIAS_ITEM_VERSIONS:
        known = ", ".join(str(v) for v in KNOWN_BIAS_ITEM_VERSIONS)
        raise BiasEvalError(
            f"{where}: bias_item version v={_short(version)} is not known to this "
            f"lm-eval-bias (reads v={known}); upgrade lm-eval-bias "
            "(pip install -U lm-eval-bias)"
        )


def _opt_object(x: Any, key: str) -> dict | None:
    return x if isinstance(x, dict) else None


def _coercer(f: RecordField):
    """fn(value, number of choices) -> the table value of record field `f`, by its reader kind;
    option indexes (pred, gold) and probs are checked against the record's choices."""
    key = f"bias_item.{f.name}"
    if f.name in ("pred", "gold"):
        return lambda x, n: _as_option(x, key, n)
    if f.reader == "probs":
        return lambda x, n: None if x is None else _as_probs(x, n)
    if f.reader == "groups":
        return lambda x, n: _as_groups(x)
    if f.reader == "int":
        return lambda x, n: _opt_int(x, key)
    if f.reader == "bool":
        return lambda x, n: _opt_bool(x, key)
    if f.reader == "str":
        return lambda x, n: _opt_str(x)
    return lambda x, n: x if isinstance(x, dict) else None


_COERCERS = tuple((f.name, _coercer(f)) for f in _READ_FIELDS)
_I_INVALID, _I_PRED, _I_LABEL = (
    [f.name for f in _READ_FIELDS].index(k) for k in ("invalid", "pred", "label"))


def _row(rec: dict, item: dict, task: str) -> tuple:
    """The values of `_ROW_KEYS` of one sample line; raises `_BadValue` on a badly typed one."""
    doc_id = _opt_int(rec.get("doc_id"), "doc_id")
    if doc_id is None:
        raise _BadValue("doc_id is missing")
    filt = rec.get("filter")
    if type(filt) is not str or not filt:
        filt = _as_str(filt) or "none"
    n = _as_choices(item.get("choices"))
    values = [fn(item.get(name), n) for name, fn in _COERCERS]
    values[_I_INVALID] = bool(values[_I_INVALID]) or (
        values[_I_PRED] is None and values[_I_LABEL] is None)
    return (task, filt, doc_id, _opt_str(rec.get("doc_hash")), _opt_str(rec.get("prompt_hash")),
            _opt_str(rec.get("target_hash")), *values)


def _lines(path: Path):
    """(line number, raw line) of every non-blank line of `path`. Binary lines, decoded one by
    one later: a text-mode reader decodes 8 KiB chunks, so a bad byte would be reported on
    whichever line started that chunk, not on its own line."""
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise BiasEvalError(f"cannot read {path}: {exc.strerror}; check the file's permissions")
    with fh:
        for lineno, line in enumerate(fh, start=1):
            if line.strip():
                yield lineno, line


def _read_samples(path: Path, task: str, cols: dict[str, list],
                  rebuilder: builtin.Rebuilder | None = None) -> tuple[int, int]:
    """Append the rows of one samples file to `cols`; return (rows added, non-blank lines).
    0 rows from a non-empty file means: no line has a `bias_item` (not an lm-eval-bias task).
    Refuses mixed files, bad JSON, bytes that are not UTF-8, unknown versions and duplicate
    (doc_id, filter), naming the line. With `rebuilder` (a task of lm-eval's built-in bias
    tasks), each line without a `bias_item` gets the record rebuilt from its log."""
    seen: dict[tuple[int, str], int] = {}
    with_item = without_item = n_lines = first_without = 0
    rows: list[tuple] = []
    for lineno, line in _lines(path):
        n_lines += 1
        where = f"{path}:{lineno}"
        rec = _parse_line(line, where)
        item = rec.get("bias_item")
        if item is None and rebuilder is not None:
            item = builtin.rebuild_sample(rebuilder, task, rec, where)
        if item is None:
            without_item += 1
            first_without = first_without or lineno
            if with_item:
                raise BiasEvalError(
                    f"{where}: sample has no bias_item while earlier lines do; the samples "
                    "file mixes runs, rerun lm_eval into a fresh --output_path"
                )
            continue
        if without_item:
            raise BiasEvalError(
                f"{where}: sample has a bias_item but line {first_without} has none; the "
                "samples file mixes runs, rerun lm_eval into a fresh --output_path"
            )
        with_item += 1
        _check_item(item, where)
        try:
            row = _row(rec, item, task)
        except _BadValue as exc:
            raise BiasEvalError(
                f"{where}: bad bias_item ({exc}); rerun with a current lm-eval-bias"
            ) from None
        key = (row[2], row[1])
        if key in seen:
            raise BiasEvalError(
                f"{where}: duplicate sample for task {task} doc_id {row[2]} filter {row[1]} "
                f"(first on line {seen[key]}); lm-eval appends to samples files, rerun into "
                "a fresh --output_path"
            )
        seen[key] = lineno
        rows.append(row)
    if with_item and rows:
        for c, values in zip(_ROW_KEYS, zip(*rows)):
            cols[c].extend(values)
    return with_item, n_lines


def _build_table(cols: dict[str, list]) -> pd.DataFrame:
    n = len(cols["task"])
    data: dict[str, Any] = {}
    for c in ITEM_COLUMNS:
        if c in ("entropy_norm", "uncertainty"):
            continue
        values = cols[c]
        if c in _INT_COLUMNS:
            data[c] = pd.array(values, dtype="Int64")
        elif c in _BOOL_COLUMNS:
            data[c] = pd.array(values, dtype="boolean")
        elif c == "invalid":
            data[c] = np.asarray(values, dtype=bool)
        elif c == "doc_id":
            data[c] = np.asarray(values, dtype="int64")
        elif c in _OBJECT_COLUMNS:
            arr = np.empty(n, dtype=object)
            arr[:] = values
            data[c] = arr
        else:
            data[c] = pd.array(values, dtype=object)
    h = normalized_entropies(cols["probs"])
    data["entropy_norm"] = h
    data["uncertainty"] = uncertainty_bins(h)
    table = pd.DataFrame(data, columns=list(ITEM_COLUMNS))
    if n:
        table = table.sort_values(["task", "filter", "doc_id"], kind="stable")
        table = table.reset_index(drop=True)
    return table


def _declared_counts(results: dict) -> dict[str, int]:
    """Docs per task as lm-eval counted them (``n-samples[task].effective``, the docs evaluated
    under each filter), where recorded."""
    out = {}
    n_samples = results.get("n-samples")
    if isinstance(n_samples, dict):
        for task, entry in n_samples.items():
            n = entry.get("effective") if isinstance(entry, dict) else None
            if type(n) is int and n >= 0:
                out[str(task)] = n
    return out


def _check_counts(items: pd.DataFrame, counts: dict[str, int], samples: dict[str, Path],
                  results_file: Path) -> None:
    """lm-eval writes the results file first, then appends the samples: a crash in between can
    cut a samples file at a line boundary, which no line shows. Each (task, filter) must have the
    docs lm-eval counted."""
    if not len(items) or not counts:
        return
    per = items.groupby(["task", "filter"], sort=True)["doc_id"].nunique()
    for (task, filt), n in per.items():
        expected = counts.get(task)
        if expected is None or n == expected:
            continue
        if n < expected:
            raise BiasEvalError(
                f"{samples[task]} has {n} docs (filter {filt}) but {results_file.name} counted "
                f"{expected}; the samples file is cut short (the run was interrupted while "
                "writing samples), rerun lm_eval with --log_samples"
            )
        raise BiasEvalError(
            f"{samples[task]} has {n} docs (filter {filt}) but {results_file.name} counted only "
            f"{expected}; the samples file mixes runs, rerun lm_eval into a fresh --output_path"
        )


def _load_results(results_file: Path) -> dict:
    try:
        with results_file.open("r", encoding="utf-8") as fh:
            results = json.load(fh)
    except OSError as exc:
        raise BiasEvalError(
            f"cannot read {results_file}: {exc.strerror}; check the file's permissions"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise BiasEvalError(
            f"{results_file} is not valid JSON ({reason}); the run did not finish, rerun lm_eval"
        ) from None
    if not isinstance(results, dict):
        raise BiasEvalError(f"{results_file} is not an lm-eval results file; rerun lm_eval")
    _check_results_types(results, results_file)
    return results


def _scalar(x: Any) -> bool:
    return x is None or isinstance(x, (str, int, float))


# Keys of lm-eval's results JSON that the reader uses: each must be an object, and its values
# of the type lm-eval writes (checked by this function; None: any value).
_RESULTS_KEYS = {
    "results": ("an object per task", lambda v: isinstance(v, dict)),
    "configs": ("an object per task", lambda v: isinstance(v, dict)),
    "versions": ("a number or string per task", _scalar),
    "n-shot": ("an integer per task", lambda v: v is None or type(v) is int),
    "task_hashes": ("a string per task", lambda v: isinstance(v, str)),
    "n-samples": ("an object per task", lambda v: isinstance(v, dict)),
    "config": (None, None),
}


def _check_results_types(results: dict, results_file: Path) -> None:
    """Refuse, naming file and key, a results JSON whose keys are not of lm-eval's types (a list or
    a string where lm-eval writes an object): the file was edited or written by something else."""
    for key, (what, ok) in _RESULTS_KEYS.items():
        value = results.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise BiasEvalError(
                f"{results_file}: key {key!r} is a JSON {_json_type(value)}, lm-eval writes an "
                "object there; the file was edited or damaged, rerun lm_eval")
        bad = next((k for k, v in value.items() if ok is not None and not ok(v)), None)
        if bad is not None:
            raise BiasEvalError(
                f"{results_file}: key {key!r} has {_short(value[bad])} for {bad}, lm-eval writes "
                f"{what} there; the file was edited or damaged, rerun lm_eval")


def _json_type(x: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", int: "number",
            float: "number"}.get(type(x), type(x).__name__)


def _read_all_samples(samples: dict[str, Path]) -> tuple[dict[str, list], dict[str, str],
                                                          list[str]]:
    """(item columns, {skipped task: why}, tasks with an empty samples file)."""
    derived = ("entropy_norm", "uncertainty")
    cols: dict[str, list] = {c: [] for c in ITEM_COLUMNS if c not in derived}
    skipped: dict[str, str] = {}
    empty: list[str] = []
    # The cyclic GC would rescan the growing heap of parsed records again and again (about 40%
    # of the reading time on large files); nothing read here forms cycles, so pause it.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for task, file in sorted(samples.items()):
            n_rows, n_lines = _read_samples(file, task, cols, builtin.rebuilder_for(task))
            if n_lines == 0:
                empty.append(task)
                skipped[task] = "empty samples file (no sample logged)"
            elif n_rows == 0:
                skipped[task] = "no bias_item records (not an lm-eval-bias task)"
    finally:
        if gc_was_enabled:
            gc.enable()
    return cols, skipped, empty


def _check_not_empty(cols: dict[str, list], samples: dict[str, Path], empty: list[str],
                     counts: dict[str, int], results_file: Path) -> None:
    for task in empty:
        if counts.get(task):
            raise BiasEvalError(
                f"{samples[task]} is empty but {results_file.name} counted {counts[task]} docs "
                "for it; the run was interrupted while writing samples, rerun lm_eval with "
                "--log_samples"
            )
    if not cols["task"] and len(empty) == len(samples):
        raise BiasEvalError(
            f"the run in {results_file.parent} is empty: its samples files "
            f"({', '.join(samples[t].name for t in sorted(samples))}) have no lines; the run was "
            "interrupted or evaluated no document (--limit 0?), rerun lm_eval with --log_samples"
        )
    if not cols["task"]:
        raise BiasEvalError(
            f"no sample in {results_file.parent} has a bias_item (tasks "
            f"{', '.join(sorted(t for t in samples if t not in empty))} are not lm-eval-bias "
            "tasks, nor lm-eval built-ins whose records can be rebuilt: "
            f"{builtin.SUPPORTED}); run lm-eval-bias tasks with --log_samples"
        )


def read_run(path: str | Path) -> Run:
    """Read an lm-eval ``--output_path`` folder (or one ``results_*.json`` in it) into a `Run`.

    Refuses (`BiasEvalError`, one line naming the file): a missing folder; no results JSON; no
    samples files of that results file's timestamp (rerun with ``--log_samples``); a results file or
    samples line that is not valid JSON (including a truncated last line) or not UTF-8; a
    ``bias_item`` of an unknown version ``v`` or with badly typed values; an empty run (no sample
    line at all); a run in which no task has ``bias_item`` records; duplicate (task, doc_id,
    filter) lines. Tasks without any ``bias_item`` (e.g. a
    perplexity task run alongside) are left out of the item table and listed in
    ``Run.skipped_tasks``.
    """
    path = Path(path)
    results_file, older = _locate(path)
    results = _load_results(results_file)
    timestamp = _results_timestamp(results_file)
    samples = _samples_files(results_file, timestamp)
    if not samples:
        raise BiasEvalError(
            f"no samples_*_{timestamp}.jsonl next to {results_file}; rerun lm_eval with "
            "--log_samples"
        )
    expected = results.get("configs") or {}
    missing = sorted(t for t in expected if t not in samples)
    if missing:
        raise BiasEvalError(
            f"{results_file} lists task {missing[0]} but samples_{missing[0]}_{timestamp}.jsonl "
            f"is missing in {results_file.parent}; the run was interrupted, rerun lm_eval with "
            "--log_samples"
        )
    cols, skipped, empty = _read_all_samples(samples)
    counts = _declared_counts(results)
    _check_not_empty(cols, samples, empty, counts, results_file)
    items = _build_table(cols)
    _check_counts(items, counts, samples, results_file)
    return Run(
        path=path,
        results_file=results_file,
        timestamp=timestamp,
        results=results,
        samples_files={t: p for t, p in samples.items() if t not in skipped},
        items=items,
        ignored_results_files=older,
        skipped_tasks=skipped,
        rebuilt={t: r.family for t in samples if t not in skipped
                 and (r := builtin.rebuilder_for(t)) is not None},
    )
