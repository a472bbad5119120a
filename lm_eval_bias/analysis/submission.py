"""Leaderboard submissions: one JSON file describing a run (and its reference run) that anyone can
check against the samples files it was computed from (`analysis.verify`).

`build_submission(run, reference=None)` reads nothing but the two `Run`s (lm-eval's results JSON and
samples files, through `analysis.runs`) and, for a local checkpoint, its ``*.safetensors`` files.
The structure is pinned by the JSON Schema shipped in the package
(``lm_eval_bias/schemas/submission.schema.json``; `load_schema()`); all numbers are plain JSON
(NaN / inf -> null)::

    {
      "schema": "lm-eval-bias/submission", "schema_version": 2,
      "software": {"lm_eval_bias": str, "lm_eval": str|null,          # here, at export
                   "run_lm_eval": str|null, "run_transformers": str|null},  # in the run
      "model": MODEL, "quantization": dict|null,            # the full hf-quant record
      "generation": GEN,
      "scorers": {spec: {"name", "kind", "version", ...}},  # from bias_item *_scorer records
      "files": FILES,
      "data": DATA,
      "tasks": {task: TASK},
      "headline": {benchmark: STATS},                       # over all items of the benchmark
      "reference": null | {"model": MODEL, "quantization", "files": FILES, "data": DATA,
                           "tasks": {task: {"version", "task_hash", "rebuilt_from"}}},
      "change": null | CHANGE
    }
    MODEL = {"name", "lm_eval_model", "model_args", "dtype", "num_parameters", "revision",
             "sha", "pinned": bool, "local": bool,
             "weights": null | {"sha256": str, "files": {name: sha256}}}
    GEN   = {"gen_kwargs", "limit", "seeds": {...}, "max_length", "system_instruction_sha",
             "chat_template_sha", "fewshot_as_multiturn",
             "tasks": {task: {"output_type", "num_fewshot", "generation_kwargs", "repeats",
                              "target_delimiter", "fewshot_delimiter", "metadata"}}}
    FILES = {"results": {"name", "sha256", "bytes"}, "samples": {task: {"name", "sha256", "bytes"}}}
    DATA  = {"sample": bool,          # the run read a declared sample (`data_section`)
             "sample_files": [str]}   # which data files, as the run's `data_files` names them
    TASK  = {"version", "n_shot", "task_hash", "benchmark",
             "rebuilt_from": str|null,  # "lm-eval:<family>": records rebuilt from lm-eval's
                                        # built-in task log (`analysis.builtin`), else null
             "scores": {"metric,filter": {"value": float|null, "stderr": float|null}},
             "items": {filter: {**STATS, "per_group": {group: STATS}, "per_axis": {axis: STATS}}}}
    STATS = {"n", "n_invalid", "invalid_rate", "n_bias_defined", "n_biased", "biased_rate",
             "n_gold", "n_correct", "accuracy"}
    CHANGE = {"tasks": {task: {filter: FLIPSET}}, "all_tasks": FLIPSET}
    FLIPSET = {"flips": FLIPS, "groups": {group: FLIPS}, "axes": {axis: FLIPS},
               "uncertainty": {"bins": {bin: FLIPS}, "high_low_ratio", "n_without_probs"}}

FLIPS are `metrics.flips.flip_counts` (the same figures `compare` prints). `biased_rate` is
n_biased / n_bias_defined: the share of items whose answer carries the benchmark's item-level bias
label, among those with a label; `accuracy` is over items with a gold answer (invalid = wrong).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from lm_eval_bias import __version__
from lm_eval_bias._versions import package_version
from lm_eval_bias.analysis.compare import compare_runs
from lm_eval_bias.analysis.output import jsonable, write_json
from lm_eval_bias.analysis.runs import Run, model_args_dict, read_run
from lm_eval_bias.checkpoint_info import compare_records, folder_record
from lm_eval_bias.errors import BiasEvalError

SCHEMA = "lm-eval-bias/submission"
SCHEMA_VERSION = 2  # 2: `data` (declared samples) and the tasks' `rebuilt_from`
SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schemas" / "submission.schema.json"

_CHUNK = 1 << 20
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


# ----------------------------------------------------------------------------- small helpers


def load_schema() -> dict:
    """The submission JSON Schema shipped in the package."""
    with SCHEMA_FILE.open("r", encoding="utf-8") as fh:
        return json.load(fh)


def file_digest(path: str | Path) -> dict:
    """``{"name", "sha256", "bytes"}`` of one file, read in 1 MiB chunks."""
    path = Path(path)
    h = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise BiasEvalError(f"cannot read {path}: {exc.strerror}; check the file") from None
    return {"name": path.name, "sha256": h.hexdigest(), "bytes": size}


def weights_digest(folder: str | Path) -> dict:
    """Content hash of a local checkpoint: sha256 of every ``*.safetensors`` file (streamed), and
    one sha256 over the sorted ``name:sha256`` lines."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*.safetensors") if p.is_file())
    if not files:
        raise BiasEvalError(
            f"no *.safetensors files in local model folder {folder}; save the checkpoint with "
            "safe_serialization=True or give --weights FOLDER"
        )
    per_file = {str(p.relative_to(folder)): file_digest(p)["sha256"] for p in files}
    text = "".join(f"{name}:{sha}\n" for name, sha in sorted(per_file.items()))
    return {"sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "files": per_file}


def _unquantized(run: Run) -> bool:
    q = run.quantization
    return q is None or (isinstance(q, dict) and q.get("method") in (None, "none"))


def check_weights_folder(run: Run, folder: str | Path, *, given: bool = True) -> None:
    """Refuse (`BiasEvalError`) a checkpoint folder that is not the one the run evaluated: the
    architecture and sizes of its ``config.json`` and its stored parameter count must equal what
    the run recorded (``config.checkpoint``, written by hf-quant; see `checkpoint_info`). A run
    without that record (lm-eval's own ``hf`` model) is checked on ``model_num_parameters``,
    which equals the stored count only for an unquantized run; a quantized run without the
    record cannot be checked: a folder ``given`` in its place (``--weights``) is refused, while
    the folder at the run's own ``pretrained=`` path (``given=False``; a vLLM run records nothing
    about its checkpoint) is taken as the one it loaded."""
    found = folder_record(folder)
    recorded = run.config.get("checkpoint")
    if isinstance(recorded, dict):
        problems = compare_records(recorded, found)
    elif _unquantized(run) and isinstance(run.config.get("model_num_parameters"), int):
        n_run, n_found = run.config["model_num_parameters"], found["safetensors_parameters"]
        problems = [] if n_run == n_found else [f"parameters: run {n_run}, folder {n_found}"]
    elif not given:
        return
    else:
        raise BiasEvalError(
            f"cannot check {folder} against the run: it recorded neither its checkpoint's config "
            "nor (unquantized) its parameter count; rerun it with lm_eval --model hf-quant")
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BiasEvalError(f"{folder} is not the checkpoint this run evaluated: {problems[0]}"
                            f"{more}; give the folder the run loaded")


# ----------------------------------------------------------------------------- samples scan


class SamplesScan:
    """What one pass over a samples file yields besides the item table: the file digest, the task
    hash the way lm-eval computes it (sha256 of the concatenated doc_hash + prompt_hash +
    target_hash of every line, in file order), each line's hashes, the per-line metric values by
    filter (to recompute lm-eval's aggregates) and the scorers named in the records."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.digest = file_digest(self.path)
        line_hashes: list[str] = []
        self.metric_values: dict[tuple[str, str], list] = {}
        self.scorers: dict[str, dict] = {}
        #: (filter, doc_id, doc_hash, prompt_hash, target_hash) of every line, in file order
        self.lines: list[tuple] = []
        with self.path.open("r", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)  # lm-eval may write bare NaN: json reads it
                except json.JSONDecodeError as exc:
                    raise BiasEvalError(
                        f"{self.path}:{lineno}: not valid JSON ({exc.msg}); the samples file is "
                        "damaged"
                    ) from None
                filt = str(rec.get("filter") or "none")
                hashes = tuple(rec.get(k) for k in ("doc_hash", "prompt_hash", "target_hash"))
                line_hashes.append("".join(str(h or "") for h in hashes))
                self.lines.append((filt, rec.get("doc_id"), *hashes))
                for metric in rec.get("metrics") or []:
                    if metric in rec:
                        self.metric_values.setdefault((str(metric), filt), []).append(rec[metric])
                item = rec.get("bias_item")
                if isinstance(item, dict):
                    for key, value in item.items():
                        if key.endswith("_scorer") and isinstance(value, dict) and value.get("name"):
                            self.scorers.setdefault(str(value["name"]), jsonable(value))
        self.task_hash = hashlib.sha256("".join(line_hashes).encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------- sections


def _model_section(run: Run, weights: str | Path | None, require_weights: bool = True) -> dict:
    cfg = run.config
    args = model_args_dict(run.model_args)
    name = run.model_name
    revision = args.get("revision") or cfg.get("model_revision")
    sha = cfg.get("model_sha") or None
    folder = Path(weights) if weights else (Path(name) if name else None)
    local = bool(name) and (weights is not None or folder.is_dir() or name.startswith(("/", ".")))
    digest = None
    if local:
        if folder is not None and folder.is_dir():
            check_weights_folder(run, folder, given=weights is not None)
            digest = weights_digest(folder)
        elif require_weights:
            raise BiasEvalError(
                f"model {name} is a local path but the folder is not here; give --weights FOLDER "
                "with its *.safetensors files"
            )
    # a local checkpoint is pinned by its content hash (required at export)
    pinned = local or bool(sha) or bool(revision and _SHA_RE.match(str(revision)))
    return jsonable({
        "name": name, "lm_eval_model": run.model, "model_args": args,
        "dtype": cfg.get("model_dtype"), "num_parameters": cfg.get("model_num_parameters"),
        "revision": revision, "sha": sha, "pinned": pinned, "local": local, "weights": digest,
    })


_GEN_TASK_KEYS = ("output_type", "num_fewshot", "generation_kwargs", "repeats",
                  "target_delimiter", "fewshot_delimiter")


def _generation_section(run: Run, tasks: list[str]) -> dict:
    cfg, res = run.config, run.results
    configs = res.get("configs") or {}
    per_task = {}
    for task in tasks:
        c = configs.get(task) or {}
        meta = c.get("metadata") if isinstance(c.get("metadata"), dict) else {}
        per_task[task] = {k: c.get(k) for k in _GEN_TASK_KEYS}
        # the task's --metadata minus where its YAML lives on the machine that ran it
        per_task[task]["metadata"] = {k: v for k, v in meta.items() if k != "config_source"}
    return jsonable({
        "gen_kwargs": cfg.get("gen_kwargs"),
        "limit": cfg.get("limit"),
        "seeds": {k: cfg.get(k) for k in ("random_seed", "numpy_seed", "torch_seed",
                                          "fewshot_seed")},
        "max_length": res.get("max_length"),
        "system_instruction_sha": res.get("system_instruction_sha"),
        "chat_template_sha": res.get("chat_template_sha"),
        "fewshot_as_multiturn": res.get("fewshot_as_multiturn"),
        "tasks": per_task,
    })


def item_stats(items: pd.DataFrame) -> dict:
    """Counts and rates over rows of an item table (`STATS` in the module docstring)."""
    n = len(items)
    invalid = items["invalid"].to_numpy(dtype=bool)
    biased = items["biased"]
    defined = biased.notna().to_numpy()
    n_biased = int(biased.fillna(False).astype(bool).sum())
    gold = items["gold"]
    has_gold = gold.notna().to_numpy()
    pred = items["pred"]
    correct = (pred.notna() & gold.notna()).to_numpy() & (
        pred.fillna(-1).astype("int64").to_numpy() == gold.fillna(-2).astype("int64").to_numpy())
    n_def, n_gold, n_correct = int(defined.sum()), int(has_gold.sum()), int((correct & has_gold).sum())

    def rate(a: int, b: int) -> float | None:
        return a / b if b else None

    return {"n": n, "n_invalid": int(invalid.sum()), "invalid_rate": rate(int(invalid.sum()), n),
            "n_bias_defined": n_def, "n_biased": n_biased, "biased_rate": rate(n_biased, n_def),
            "n_gold": n_gold, "n_correct": n_correct, "accuracy": rate(n_correct, n_gold)}


def _by(items: pd.DataFrame, col: str) -> dict:
    if col == "groups":
        exploded = items.explode("groups")
        exploded = exploded[exploded["groups"].notna()]
    else:
        exploded = items[items[col].notna()]
    return {str(k): item_stats(part) for k, part in exploded.groupby(col, sort=True)}


def _items_section(items: pd.DataFrame) -> dict:
    out = {}
    for filt, part in items.groupby("filter", sort=True):
        out[str(filt)] = {**item_stats(part), "per_group": _by(part, "groups"),
                          "per_axis": _by(part, "axis")}
    return out


def _scores(entry: Any) -> dict:
    """lm-eval's numeric ``metric,filter`` entries of one task (stderr next to each value)."""
    out = {}
    if not isinstance(entry, dict):
        return out
    for key, value in entry.items():
        metric, _, filt = str(key).partition(",")
        if not filt or metric.endswith("_stderr") or metric in ("alias", "samples"):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        stderr = entry.get(f"{metric}_stderr,{filt}")
        out[str(key)] = {"value": value,
                         "stderr": stderr if isinstance(stderr, (int, float)) and
                         not isinstance(stderr, bool) else None}
    return jsonable(out)


def data_section(run: Run) -> dict:
    """``{"sample": bool, "sample_files": [...]}``: the data files the run read from a declared
    sample (a benchmark folder holding a ``SAMPLE`` file, recorded with origin "sample" in the
    results' ``data_files``; `lm_eval_bias.tasks._data`). Such a run is not a run on the
    benchmark: export writes it marked so, and never refuses it for differing from the installed
    data."""
    recorded = run.results.get("data_files")
    files = sorted(str(k).removesuffix(" [sample]") for k, e in (
        recorded.items() if isinstance(recorded, dict) else ())
        if isinstance(e, dict) and e.get("origin") == "sample")
    return {"sample": bool(files), "sample_files": files}


def rebuilt_from(run: Run, task: str) -> str | None:
    """``"lm-eval:<family>"`` when `task`'s records were rebuilt from a log of lm-eval's own
    built-in task (`Run.rebuilt`), as each rebuilt record's ``rebuilt_from`` says; else None."""
    family = run.rebuilt.get(task)
    return None if family is None else f"lm-eval:{family}"


def submission_marks(doc: Any) -> str:
    """What a submission is besides this package's records of a run on the benchmark, for the
    summary lines of export and verify: ``"; data: a declared sample (FILES), not the
    benchmark"``, ``"; records rebuilt from lm-eval built-in task logs: TASKS"`` (the run's or
    the reference's); "" when neither."""
    if not isinstance(doc, dict):
        return ""
    sides = [s for s in (doc, doc.get("reference")) if isinstance(s, dict)]
    samples = sorted({str(f) for s in sides if isinstance(s.get("data"), dict)
                      for f in s["data"].get("sample_files") or ()})
    rebuilt = sorted({str(t) for s in sides if isinstance(s.get("tasks"), dict)
                      for t, v in s["tasks"].items() if isinstance(v, dict) and v.get("rebuilt_from")})
    return ((f"; data: a declared sample ({', '.join(samples)}), not the benchmark"
             if samples else "") +
            (f"; records rebuilt from lm-eval built-in task logs: {', '.join(rebuilt)}"
             if rebuilt else ""))


def _files_section(run: Run, scans: dict[str, SamplesScan]) -> dict:
    return {"results": file_digest(run.results_file),
            "samples": {t: s.digest for t, s in sorted(scans.items())}}


def _flipset(entry: dict) -> dict:
    return {
        "flips": entry["flips"],
        "groups": {str(g["group"]): {k: v for k, v in g.items() if k != "group"}
                   for g in entry["groups"]},
        "axes": {str(a["axis"]): {k: v for k, v in a.items() if k != "axis"}
                 for a in entry["axes"]},
        "uncertainty": {
            "bins": {b["bin"]: {k: v for k, v in b.items() if k != "bin"}
                     for b in entry["uncertainty"]["bins"]},
            "high_low_ratio": entry["uncertainty"]["high_low_ratio"],
            "n_without_probs": entry["uncertainty"]["n_without_probs"],
        },
    }


def change_section(reference: Run, run: Run, allow_different_backends: bool = False) -> dict:
    """Item-level change of `run` against `reference` (`compare.compare_runs`), keyed by name."""
    result = compare_runs(reference, run, allow_different_backends=allow_different_backends)
    tasks: dict[str, dict] = {}
    for t in result["tasks"]:
        tasks.setdefault(t["task"], {})[t["filter"]] = _flipset(t)
    return {"tasks": tasks, "all_tasks": _flipset(result["all_tasks"])}


def scan_run(run: Run) -> dict[str, SamplesScan]:
    return {task: SamplesScan(path) for task, path in sorted(run.samples_files.items())}


def build_submission(run: Run, reference: Run | None = None, *,
                     weights: str | Path | None = None,
                     reference_weights: str | Path | None = None,
                     scans: dict[str, SamplesScan] | None = None,
                     reference_scans: dict[str, SamplesScan] | None = None,
                     require_weights: bool = True,
                     allow_different_backends: bool = False) -> dict:
    """The submission of `run` (and its `reference`, the unquantized model), as a JSON-ready dict
    (structure: module docstring). `weights`: the local checkpoint folder when the run's
    ``pretrained=`` path is not on this machine. A reference run of another engine (vllm against
    hf / hf-quant) is refused unless `allow_different_backends`."""
    scans = scans if scans is not None else scan_run(run)
    tasks_out = {}
    res = run.results.get("results") or {}
    for task in run.tasks:
        part = run.items[run.items["task"] == task]
        bench = part["benchmark"].dropna()
        tasks_out[task] = {
            "version": run.versions.get(task),
            "n_shot": run.n_shot.get(task),
            "task_hash": run.task_hashes.get(task),
            "benchmark": str(bench.iloc[0]) if len(bench) else None,
            "rebuilt_from": rebuilt_from(run, task),
            "scores": _scores(res.get(task)),
            "items": _items_section(part),
        }
    headline = {}
    items = run.items.assign(benchmark=run.items["benchmark"].fillna("unknown"))
    for bench, part in items.groupby("benchmark", sort=True):
        headline[str(bench)] = item_stats(part)
    scorers: dict[str, dict] = {}
    for s in scans.values():
        scorers.update(s.scorers)
    ref_section = change = None
    if reference is not None:
        ref_scans = reference_scans if reference_scans is not None else scan_run(reference)
        ref_section = {
            "model": _model_section(reference, reference_weights, require_weights),
            "quantization": jsonable(reference.quantization),
            "files": _files_section(reference, ref_scans),
            "data": data_section(reference),
            "tasks": {t: {"version": reference.versions.get(t),
                          "task_hash": reference.task_hashes.get(t),
                          "rebuilt_from": rebuilt_from(reference, t)} for t in reference.tasks},
        }
        change = change_section(reference, run, allow_different_backends)
    return jsonable({
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "software": {
            "lm_eval_bias": package_version("lm-eval-bias") or __version__,
            "lm_eval": package_version("lm-eval"),
            "run_lm_eval": run.results.get("lm_eval_version"),
            "run_transformers": run.results.get("transformers_version"),
        },
        "model": _model_section(run, weights, require_weights),
        "quantization": run.quantization,
        "generation": _generation_section(run, run.tasks),
        "scorers": dict(sorted(scorers.items())),
        "files": _files_section(run, scans),
        "data": data_section(run),
        "tasks": tasks_out,
        "headline": headline,
        "reference": ref_section,
        "change": change,
    })


#: deepest nesting a submission may have (its own structure is about 8 levels deep); deeper
#: documents are refused before anything recursive (the JSON Schema check) walks them
MAX_DEPTH = 64


def nesting_depth(doc: Any, stop: int = MAX_DEPTH + 1) -> int:
    """Nesting depth of a JSON value (a scalar is 0), computed without recursion; counting stops
    at `stop`."""
    deepest, stack = 0, [(doc, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            depth += 1
            deepest = max(deepest, depth)
            if depth >= stop:
                return deepest
            stack.extend((v, depth) for v in (value.values() if isinstance(value, dict) else value))
    return deepest


def read_submission_text(text: str) -> tuple[Any, str | None]:
    """Parse a submission file's text: (document, None), or (None, why it is unreadable) for text
    that is not JSON or nests deeper than `MAX_DEPTH` (which Python's parser may refuse with a
    RecursionError)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON ({exc})"
    except RecursionError:
        return None, f"JSON nested deeper than {MAX_DEPTH} levels"
    if nesting_depth(doc) > MAX_DEPTH:
        return None, f"JSON nested deeper than {MAX_DEPTH} levels"
    return doc, None


def validate_schema(doc: Any) -> list[tuple[str, str]]:
    """(JSON path, message) for every place `doc` breaks the shipped schema; [] when valid."""
    try:
        import jsonschema
    except ImportError:
        raise BiasEvalError(
            "checking a submission needs jsonschema: pip install 'lm-eval-bias[leaderboard]'"
        ) from None
    validator = jsonschema.Draft202012Validator(load_schema())
    out = []
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
        out.append(("$" + where, err.message))
    return out


def _open_llm_dtype(doc: dict) -> str | None:
    q = doc.get("quantization")
    if isinstance(q, dict) and q.get("method") not in (None, "none") and \
            isinstance(q.get("bits"), (int, float)) and not isinstance(q.get("bits"), bool):
        return f"{q['bits']:g}bit"
    return doc["model"].get("dtype")


def _open_llm_results(doc: dict) -> dict:
    results: dict[str, dict] = {}
    for task, t in sorted(doc["tasks"].items()):
        entry: dict[str, Any] = {}
        for key, score in sorted(t["scores"].items()):
            metric, _, filt = key.partition(",")
            if metric == "bias_item":  # lm-eval's count of per-item records, not a score
                continue
            name = metric if filt == "none" else key
            entry[name] = score["value"]
            entry[f"{metric}_stderr" if filt == "none" else f"{metric}_stderr,{filt}"] = \
                score["stderr"]
        results[task] = entry
    change = (doc.get("change") or {}).get("all_tasks")
    if change:
        flips = change["flips"]
        results["bias_change"] = {k: flips.get(k) for k in (
            "response_flip_rate", "u2b_rate_of_unbiased", "b2u_rate_of_biased", "net_change")}
    return results


def open_llm_leaderboard_results(doc: dict) -> dict:
    """The results file that the Hugging Face leaderboard templates (Open LLM Leaderboard,
    demo-leaderboard) read, made from a submission: ``config`` with ``model_name``,
    ``model_sha``, ``model_dtype``; ``results`` as ``{task: {metric: value}}``. Where each field
    comes from: docs/leaderboard.md."""
    model = doc["model"]
    revision = model.get("revision")
    sha = model.get("sha") or (revision if revision and _SHA_RE.match(str(revision)) else "")
    return jsonable({
        "config": {
            "model_name": model.get("name"), "model_sha": sha,
            "model_dtype": _open_llm_dtype(doc), "model_revision": revision,
            "model_num_parameters": model.get("num_parameters"),
            "weights_sha256": (model.get("weights") or {}).get("sha256"),
            "lm_eval_model": model.get("lm_eval_model"), "quantization": doc.get("quantization"),
        },
        "results": _open_llm_results(doc),
        "versions": {t: v["version"] for t, v in sorted(doc["tasks"].items())},
        "n-shot": {t: v["n_shot"] for t, v in sorted(doc["tasks"].items())},
        "lm_eval_bias": {"submission_schema": f"{doc['schema']} v{doc['schema_version']}",
                         "software": doc["software"]},
    })


def check_export_data(run: Run, side: str = "") -> list[str]:
    """Refuse (`BiasEvalError`, one line) a run whose recorded data differ from the installed
    tasks' (`analysis.verify.check_run_data`, the check verify makes): a run on a cut or edited
    data file, or one that recorded no data, would otherwise give a submission that looks like a
    run on the whole benchmark. A run on a declared sample (`data_section`) is not refused: its
    submission says so. Returns notes on what could not be checked."""
    from lm_eval_bias.analysis.verify import installed_data_check  # verify imports this module

    if data_section(run)["sample"]:
        return []
    found, unchecked = installed_data_check(run, side=side)
    if found:
        more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
        raise BiasEvalError(
            f"{side}run {run.path} does not match the data of the installed tasks: "
            f"{found[0].line()}{more}; rerun it on the unmodified data, or export a run on a "
            "declared sample (a SAMPLE file in the benchmark's data folder), which the submission "
            "marks as one")
    if not unchecked:
        return []
    tasks = ", ".join(unchecked)
    return [f"{side}data of {tasks} not checked: not lm-eval-bias tasks installed here"]


def export_submission(run_path: str | Path, output: str | Path, *,
                      reference_path: str | Path | None = None,
                      weights: str | Path | None = None,
                      reference_weights: str | Path | None = None,
                      allow_different_backends: bool = False,
                      notes: list[str] | None = None) -> dict:
    """Read the run folder(s), refuse one whose data differ from the installed tasks'
    (`check_export_data`), build the submission, check it against the schema, write it
    (atomically) to `output` and return it. What could not be checked is added to `notes`."""
    run = read_run(run_path)
    reference = read_run(reference_path) if reference_path else None
    unchecked = check_export_data(run)
    if reference is not None:
        unchecked += check_export_data(reference, "reference ")
    if notes is not None:
        notes.extend(unchecked)
    doc = build_submission(run, reference, weights=weights, reference_weights=reference_weights,
                           allow_different_backends=allow_different_backends)
    problems = validate_schema(doc)
    if problems:  # a bug here, not a user error: say where
        where, msg = problems[0]
        raise BiasEvalError(f"the submission breaks its own schema at {where}: {msg}; please "
                            "report this bug")
    write_json(doc, output)
    return doc
