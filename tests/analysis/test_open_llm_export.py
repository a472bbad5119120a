"""`export --open-llm-leaderboard FILE`: the results file Hugging Face leaderboard templates read
(``config.model_name / model_sha / model_dtype``, ``results[task][metric]``), on the planted runs
whose figures tests/analysis/test_compare.py states by hand."""

from __future__ import annotations

import json

import pytest

from lm_eval_bias.analysis.runs import read_run
from lm_eval_bias.analysis.submission import build_submission, open_llm_leaderboard_results
from lm_eval_bias.cli import main

pytest.importorskip("jsonschema", reason="pip install 'lm-eval-bias[leaderboard]'")


def test_shape_and_where_each_field_comes_from(planted):
    base, other = planted
    doc = build_submission(read_run(other.out), read_run(base.out))
    oll = open_llm_leaderboard_results(doc)
    assert set(oll) == {"config", "results", "versions", "n-shot", "lm_eval_bias"}
    cfg = oll["config"]
    # the three fields every template reads
    assert cfg["model_name"] == "org/tiny-llama"
    assert cfg["model_sha"] == ""  # lm-eval found no hub commit; revision "main" is no sha
    assert cfg["model_dtype"] == "4bit"  # RTN 4-bit: the templates' notation
    assert cfg["model_revision"] == "main" and cfg["model_num_parameters"] == 1234
    assert cfg["quantization"]["method"] == "rtn" and cfg["lm_eval_model"] == "hf-quant"
    # results per task and metric: lm-eval's "metric,none" values, stderr next to them
    a = oll["results"]["bias_a"]
    assert a["bias_amb"] == 0.25 and a["bias_amb_stderr"] == 0.06
    assert a["acc_amb"] is None and a["bias_disamb"] is None  # NaN in the results JSON
    assert a["acc"] == 0.0  # OTHER never picks the gold option 2 in bias_a (conftest)
    assert "bias_item" not in a and "acc_stderr" in a and a["acc_stderr"] is None
    for task in ("bias_a", "bias_b", "bias_c"):
        assert oll["results"][task]["acc"] == doc["tasks"][task]["scores"]["acc,none"]["value"]
        assert oll["versions"][task] == 1.0 and oll["n-shot"][task] == 0
    # item-level change against the reference: test_compare.py's all-task figures
    change = oll["results"]["bias_change"]
    flips = doc["change"]["all_tasks"]["flips"]
    assert change == {k: flips[k] for k in ("response_flip_rate", "u2b_rate_of_unbiased",
                                            "b2u_rate_of_biased", "net_change")}
    assert change["response_flip_rate"] == pytest.approx(10 / 16)


def test_unquantized_dtype_and_hub_sha(planted):
    base, _ = planted
    doc = build_submission(read_run(base.out))
    doc["model"]["revision"] = "a" * 40
    oll = open_llm_leaderboard_results(doc)
    assert oll["config"]["model_dtype"] == "torch.float32"
    assert oll["config"]["model_sha"] == "a" * 40
    assert "bias_change" not in oll["results"]


def test_cli_writes_both_files(planted, tmp_path, capsys):
    base, other = planted
    sub, board = tmp_path / "sub.json", tmp_path / "results_w4.json"
    assert main(["export", str(other.out), "--reference", str(base.out), "--output", str(sub),
                 "--open-llm-leaderboard", str(board)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"wrote {board}: leaderboard results (config, results per task and metric)"
    assert json.loads(board.read_text()) == open_llm_leaderboard_results(
        json.loads(sub.read_text()))
