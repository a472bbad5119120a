"""`verify --rerun N`: re-evaluating random items with the declared model and quantization.

On the two real tiny-model runs of test_submission.py (hf-quant RTN 4-bit against quant=none): an
honest submission passes the rerun; a samples file fabricated consistently (answers changed
with their log-likelihoods, every per-item metric recomputed with the installed task's own
`process_results`, every aggregate with its own aggregation, then exported, so that every hash,
digest and figure agrees) passes plain `verify`, and the rerun names every fabricated item.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

from lm_eval_bias.analysis.runs import read_run
from lm_eval_bias.analysis.submission import export_submission
from lm_eval_bias.analysis.verify import verify_submission
from lm_eval_bias.rerun import choose_items, compare_line, rerun_submission, verdict

from .test_submission import real_runs

pytest.importorskip("jsonschema", reason="pip install 'lm-eval-bias[leaderboard]'")

N_ITEMS = 3
SEED = 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_llama_dir):
    return real_runs(tmp_path_factory, tiny_llama_dir)


def test_honest_submission_passes_the_rerun(runs, tmp_path):
    ref, w4 = runs
    sub = tmp_path / "submission.json"
    export_submission(w4, sub, reference_path=ref)
    proc = run_cli(["lm-eval-bias", "verify", str(sub), "--runs", str(w4), str(ref),
                    "--rerun", str(N_ITEMS), "--seed", str(SEED)])
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2 and "verified" in lines[0]
    assert lines[1].startswith(f"rerun: {N_ITEMS} items agree with the samples files "
                               f"({2 * N_ITEMS} lines of run (hf-quant ")
    assert "quant=rtn,bits=4,group_size=32" in lines[1]
    assert lines[1].endswith(f"tolerance 0.001, seed {SEED})")


def _installed(task_name: str):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_defaults=False).load_task_or_group([task_name])[task_name]


def _fabricate(line: dict, task) -> None:
    """Give the line another answer: the best option's log-likelihood swapped with the
    runner-up's, and every per-item metric recomputed from them by the task's own code."""
    lls = [float(r[0]) for r in line["filtered_resps"]]
    order = sorted(range(len(lls)), key=lambda i: -lls[i])
    lls[order[0]], lls[order[1]] = lls[order[1]], lls[order[0]]
    line["resps"] = [[[str(ll), "False"]] for ll in lls]
    line["filtered_resps"] = [[str(ll), "False"] for ll in lls]
    metrics = task.process_results(line["doc"], [(ll, False) for ll in lls])
    for name in line["metrics"]:
        line[name] = metrics[name]


def _fabricated_run(w4: Path, dst: Path, chosen: dict[str, list[int]]) -> Path:
    copy = Path(shutil.copytree(w4, dst))
    run = read_run(copy)
    results = json.loads(run.results_file.read_text())
    for task_name, doc_ids in chosen.items():
        task = _installed(task_name)
        path = run.samples_files[task_name]
        lines = [json.loads(x) for x in path.read_text().splitlines()]
        for line in lines:
            if line["doc_id"] in doc_ids:
                _fabricate(line, task)
        path.write_text("".join(json.dumps(x) + "\n" for x in lines))
        aggs = task.aggregation()
        for key in list(results["results"][task_name]):
            metric, _, filt = key.partition(",")
            if filt == "none" and metric in aggs:
                results["results"][task_name][key] = aggs[metric]([x[metric] for x in lines])
    run.results_file.write_text(json.dumps(results))
    return copy


def test_consistently_fabricated_samples_are_caught(runs, tmp_path):
    ref, w4 = runs
    chosen = choose_items(read_run(w4), N_ITEMS, SEED)
    fake = _fabricated_run(w4, tmp_path / "w4", chosen)
    sub = tmp_path / "submission.json"
    export_submission(fake, sub, reference_path=ref)
    plain = verify_submission(sub, [fake, ref])
    assert plain.ok, [m.line() for m in plain.mismatches]  # every digest and figure agrees
    reports = rerun_submission(json.loads(sub.read_text()), [fake, ref], N_ITEMS, seed=SEED)
    run_side, ref_side = reports
    assert ref_side.mismatches == []  # the reference run was not touched
    fabricated = sorted(f"{t} doc {d} filter none" for t, ds in chosen.items() for d in ds)
    assert sorted(m.split(":")[0] for m in run_side.mismatches) == fabricated
    for m in run_side.mismatches:
        # which fields show it depends on the item (a near tie keeps CrowS-Pairs' pred and shows
        # in its probabilities), but the swapped scores always do
        assert re.search(r": (pred|log-likelihood\[\d+\]|probs\[\d+\]) claimed .*, rerun ", m), m
    assert verdict(reports, 1e-3, SEED).startswith(
        f"rerun: {N_ITEMS} of {2 * N_ITEMS} sample lines differ from the samples files")


def test_compare_line_tolerance_and_inputs():
    base = {"doc_hash": "d", "prompt_hash": "p", "target_hash": "t",
            "filtered_resps": [["-1.0", "False"], ["-2.0", "False"]],
            "bias_item": {"pred": 0, "invalid": False, "probs": [0.7311, 0.2689]}}
    near = json.loads(json.dumps(base))
    near["filtered_resps"][0][0] = "-1.0004"
    assert compare_line(base, near, 1e-3) == ([], None)
    diffs, _ = compare_line(base, near, 1e-5)
    assert diffs == ["log-likelihood[0] claimed -1.0, rerun -1.0004 (1 of 2 differ)"]
    tie = json.loads(json.dumps(base))
    tie["bias_item"]["pred"] = 1
    assert compare_line(base, tie, 1e-3) == ([], "answer 0 vs 1: a tie within the tolerance")
    other = json.loads(json.dumps(base))
    other["prompt_hash"] = "q"
    diffs, _ = compare_line(base, other, 1e-3)
    assert diffs[0].startswith("prompt differs")
    text = {"doc_hash": "d", "prompt_hash": "p", "target_hash": "t", "filtered_resps": ["a b"],
            "bias_item": {"pred": 1, "invalid": False, "probs": None, "scores": {"tox": 0.2}}}
    changed = json.loads(json.dumps(text))
    changed["filtered_resps"] = ["a c"]
    changed["bias_item"]["scores"]["tox"] = 0.9
    diffs, _ = compare_line(text, changed, 1e-3)
    assert diffs == ["generated text differs", "scores.tox claimed 0.2, rerun 0.9"]
