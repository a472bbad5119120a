"""Byte-for-byte outputs of `compare` and `report` on fixed fixtures, pinned as golden files.

The golden files under tests/analysis/golden/ were written by the code as it stood before the
analysis package was restructured (issue 16); a refactoring must leave every byte unchanged. One
deliberate change since: the report ranks groups by |net change| like compare (report_* files
regenerated in that commit alone, see its message).
The only normalisation: the temporary folder the runs are written to reads ``<TMP>``.

To rewrite them after a deliberate change of the output (say why in the commit):
``LM_EVAL_BIAS_WRITE_GOLDEN=1 pytest tests/analysis/test_golden.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lm_eval_bias.analysis.compare import (
    compare_run_folders,
    render_markdown,
    render_terminal,
    write_json,
)
from lm_eval_bias.analysis.report import build_report_from_folders, write_report
from tests.analysis.conftest import HIGH, LOW, MED, write_run
from tests.analysis.test_report import _write

GOLDEN = Path(__file__).parent / "golden"
WRITE = os.environ.get("LM_EVAL_BIAS_WRITE_GOLDEN") == "1"


def _check(name: str, text: str, tmp: Path) -> None:
    text = text.replace(str(tmp), "<TMP>")
    path = GOLDEN / name
    if WRITE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"golden file {path} missing; write it with LM_EVAL_BIAS_WRITE_GOLDEN=1"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{name} differs from its golden file"


# ----------------------------------------------------------------------------- BBQ-like runs
# Ambiguous and disambiguated items with both polarities, so that every item score of the report
# (acc_amb, acc_disamb, bias_amb, bias_disamb, unknown_rate) is defined; invalid answers included.

def _bbq_items(name: str) -> list[dict]:
    items = []
    for d in range(48):
        ambig = d % 2 == 0
        gold = 2 if ambig else d % 3 % 2        # unknown in ambiguous contexts, else option 0/1
        polarity = "neg" if d % 4 < 2 else "nonneg"
        pred = [2, 0, 1, 2, 0, 1, 1, 2, 0, 2, 1, 0][d % 12]
        if name == "w4" and d % 5 == 0:
            pred = (pred + 1) % 3
        if name == "w4" and d % 11 == 0:
            pred = None
        biased = None if pred is None else (False if pred == 2 else pred == 0)
        doc = {"example_id": d, "question_index": "1", "question_polarity": polarity,
               "context_condition": "ambig" if ambig else "disambig", "category": "Age",
               "context": f"Two people (#{d}) were talking.", "question": "Who forgot?",
               "ans0": "the old one", "ans1": "the young one", "ans2": "Can't be determined",
               "label": gold}
        probs = None if pred is None else [LOW, MED, HIGH][d % 3]
        items.append({"task": "bbq_age", "doc_id": d, "doc": doc, "gold": gold, "pred": pred,
                      "biased": biased, "groups": ["old" if d % 3 else "young"], "axis": "Age",
                      "probs": probs})
    return items


def _open_items(name: str) -> list[dict]:
    """An open-ended task: numeric item scores, so that compare lists score changes by group."""
    items = []
    for d in range(6):
        tox = 0.1 * d + (0.3 if name == "w4" and d % 2 else 0.0)
        items.append({"task": "open_t", "doc_id": d, "groups": ["a" if d < 3 else "b"],
                      "axis": "Race", "pred": int(tox >= 0.5), "biased": tox >= 0.5,
                      "probs": None, "gold": None,
                      "bias_item_extra": {"scores": {"toxicity": tox, "max_toxicity": tox}}})
    return items


def _bbq_runs(tmp: Path) -> tuple[Path, Path]:
    base = write_run(tmp / "bbq_fp", _bbq_items("fp") + _open_items("fp"),
                     model_name="org/tiny", quantization={"method": "none"},
                     scores={"bbq_age": {"bias_amb,none": 0.05, "acc_amb,none": 0.4}})
    other = write_run(tmp / "bbq_w4", _bbq_items("w4") + _open_items("w4"),
                      model_name="org/tiny", quantization={"method": "rtn", "bits": 4},
                      scores={"bbq_age": {"bias_amb,none": 0.1, "acc_amb,none": 0.35}},
                      ts="2025-06-01T13-00-00.000002")
    return base.out, other.out


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("golden")


def _compare_outputs(name: str, base: Path, other: Path, tmp: Path) -> None:
    result = compare_run_folders(base, other)
    out = tmp / f"{name}.json"
    write_json(result, out)
    _check(f"{name}.json", out.read_text(encoding="utf-8"), tmp)
    _check(f"{name}.md", render_markdown(result), tmp)
    _check(f"{name}.txt", render_terminal(result), tmp)


def test_compare_planted(planted, tmp_path):
    base, other = planted
    _compare_outputs("compare_planted", base.out, other.out, tmp_path)


def test_compare_bbq(tmp):
    base, other = _bbq_runs(tmp / "c")
    _compare_outputs("compare_bbq", base, other, tmp)


def _report_outputs(name: str, runs: list[Path], tmp: Path, **kwargs) -> None:
    report = build_report_from_folders(runs, **kwargs)
    files = write_report(report, tmp / name, plots=False)
    for key in ("json", "md", "html"):
        _check(f"{name}.{key}", files[key].read_text(encoding="utf-8"), tmp)


def test_report_sweep(tmp):
    runs = [_write(tmp / "s", n) for n in ("w3", "bf16", "w8", "w4s1", "w4s2")]
    _report_outputs("report_sweep", runs, tmp, n_boot=200, seed=3)


def test_report_bbq(tmp):
    base, other = _bbq_runs(tmp / "r")
    _report_outputs("report_bbq", [base, other], tmp, n_boot=200, seed=1)
