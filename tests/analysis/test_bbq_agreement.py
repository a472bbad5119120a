"""BBQ's scores are computed in one place (`lm_eval_bias.metrics.bbq`): lm-eval's aggregation of a
real run (its results JSON) and the report's recomputation from the same run's samples agree.

Two real `lm_eval` runs of ``bias_bbq_age`` on the tiny test model (hf-quant at full precision and
RTN 4-bit), so that the report has a reference (c0, read from the reference's samples) and a
compared condition (c1, read through the paired item table).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lm_eval_bias.analysis.report import build_report_from_folders
from lm_eval_bias.analysis.runs import read_run
from lm_eval_bias.tasks import _data

TASK = "bias_bbq_age"
LIMIT = "40"  # the Age file alternates ambiguous and disambiguated items: 20 of each
SCORES = ("acc_amb", "acc_disamb", "bias_amb", "bias_disamb")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_llama_dir: Path, data_dir: Path) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("bbq-agreement")
    exe = Path(sys.executable).parent / "lm_eval"
    env = {**os.environ, _data.DATA_DIR_ENV: str(data_dir)}
    outs, procs = [], []
    for name, quant in (("ref", "quant=none"), ("w4", "quant=rtn,bits=4,group_size=32")):
        out = root / name
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        procs.append(subprocess.Popen(  # both at once: most of the time is start-up
            [str(exe) if exe.exists() else "lm_eval", "--model", "hf-quant", "--model_args",
             f"pretrained={tiny_llama_dir},{quant}", "--tasks", TASK, "--limit", LIMIT,
             "--log_samples", "--output_path", str(out), "--device", "cpu", "--batch_size", "8"],
            stdout=subprocess.DEVNULL, stderr=(out / "stderr.txt").open("w"), env=env))
        outs.append(out)
    for proc, out in zip(procs, outs):
        assert proc.wait(timeout=900) == 0, (out / "stderr.txt").read_text()[-3000:]
    return outs[0], outs[1]


def test_report_recomputes_lm_evals_bbq_aggregates(runs):
    ref, w4 = runs
    report = build_report_from_folders([ref, w4], n_boot=100)
    (task,) = [t for t in report["tasks"] if t["task"] == TASK]
    rows = {r["metric"]: r for r in task["scores"] if r["source"] == "items"}
    assert set(SCORES) <= set(rows)
    n_defined = 0
    for path, cond in ((ref, "c0"), (w4, "c1")):
        results = read_run(path).results["results"][TASK]
        assert results["bias_item,none"] == int(LIMIT)
        for metric in SCORES:
            theirs = results[f"{metric},none"]     # lm-eval's aggregation (metrics.bbq)
            ours = rows[metric]["values"][cond]["estimate"]  # the report, from the samples
            if isinstance(theirs, float) and math.isnan(theirs):
                assert ours is None, (cond, metric, ours)
            else:
                assert ours == theirs, (cond, metric, ours, theirs)
                n_defined += 1
    assert n_defined >= 6  # the comparison is not vacuous: most scores are defined
