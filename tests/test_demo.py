"""`lm-eval-bias demo` end to end on the real SmolLM2-135M-Instruct, on a few items per category."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli


@pytest.mark.slow
def test_demo_runs_end_to_end_offline(tmp_path):
    out = tmp_path / "demo"
    proc = run_cli(["lm-eval-bias", "demo", "--output", str(out), "--per-category", "2"], timeout=1200)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    assert "report:" in proc.stdout
    result = json.loads((out / "compare.json").read_text())
    assert result["other"]["quantization"]["method"] == "rtn"
    assert result["other"]["quantization"]["bits"] == 4
    assert result["base"]["quantization"]["method"] == "none"
    # 15 BBQ tasks (11 categories, 4 of them split into label / names items) x --limit 2
    assert result["all_tasks"]["n_paired"] == 30
    assert (out / "compare.md").read_text().count("|") > 20
    # the lm_eval command recorded which bytes each run read: the packaged sample, declared so
    for run in ("fp32", "rtn_w4_g64"):
        results = json.loads(next((out / "runs" / run).rglob("results_*.json")).read_text())
        files = results["data_files"]
        assert "bbq/data/Age.jsonl [sample]" in files, sorted(files)
        assert all(entry["origin"] == "sample" and len(entry["sha256"]) == 64
                   for entry in files.values())
