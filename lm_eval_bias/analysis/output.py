"""Writing analysis results: plain-JSON conversion and atomic files, shared by compare, report,
export (submission) and the leaderboard."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lm_eval_bias._files import write_atomic
from lm_eval_bias.errors import BiasEvalError


def jsonable(obj: Any) -> Any:
    """Plain JSON types only: NaN/inf/NA -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in obj]
    if obj is None or obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, (str, Path)):
        return str(obj)
    return str(obj)


def records(table: pd.DataFrame) -> list[dict]:
    """The rows of `table` as `jsonable` dicts."""
    return [jsonable(r) for r in table.to_dict(orient="records")]


def refuse_output_inside_inputs(outputs, inputs) -> None:
    """Refuse (`BiasEvalError`) an output path that is, or lies inside, a folder the command reads
    (a run's --output_path, or the folder of a results file or submission given as input): a
    write there would overwrite or add to a finished run. Called before any work."""
    folders = []
    for item in inputs:
        if item is None:
            continue
        path = Path(item).resolve()
        if path.exists():  # a missing input is its reader's error, with its own message
            folders.append(path if path.is_dir() else path.parent)
    for out in outputs:
        if out is None:
            continue
        target = Path(out).resolve()
        for folder in folders:
            if target == folder or folder in target.parents:
                raise BiasEvalError(f"{out} is inside {folder}, which this command reads; "
                                    "write the output outside every run and submission it reads")


def check_output_file(path: str | Path) -> Path:
    """Refuse (`BiasEvalError`) an output file that cannot be written: its folder is missing or
    not writable, or the path is a folder. Called before any work, so that a bad ``--output-*``
    fails at once and nothing is written half-way."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise BiasEvalError(
            f"cannot write {path}: folder {folder} does not exist; create it or choose another path"
        )
    if path.is_dir():
        raise BiasEvalError(f"cannot write {path}: it is a folder; give a file name")
    if not os.access(folder, os.W_OK):
        raise BiasEvalError(
            f"cannot write {path}: folder {folder} is not writable; choose another path"
        )
    return path


def json_text(result: dict) -> str:
    """`result` as the text of our JSON files: `jsonable`, sorted keys, indented, no NaN."""
    return json.dumps(jsonable(result), sort_keys=True, indent=2, allow_nan=False,
                      ensure_ascii=False) + "\n"


def write_json(result: dict, path: str | Path) -> None:
    """Write `result` as JSON (sorted keys, no NaN) atomically: a temporary file in the same folder,
    then a rename."""
    path = check_output_file(path)
    write_atomic(path, json_text(result))
