"""The run reader: lm-eval-format folders in, item table and run info out; every bad input refused
with a one-line BiasEvalError that names the file."""

from __future__ import annotations

import json
import math
import os

import pandas as pd
import pytest

from lm_eval_bias.analysis.runs import ITEM_COLUMNS, read_run
from lm_eval_bias.errors import BiasEvalError

from .conftest import HIGH, LOW, MED, PLANTED_BASE, write_run

ITEMS = [
    {"task": "bias_a", "doc_id": 0, "pred": 0, "biased": True, "probs": LOW, "groups": ["Muslim"],
     "axis": "Religion"},
    {"task": "bias_a", "doc_id": 1, "pred": 2, "biased": False, "probs": MED,
     "groups": ["Muslim", "Jewish"], "axis": "Religion"},
    {"task": "bias_b", "doc_id": 0, "pred": None, "biased": None, "probs": None,
     "groups": ["women"], "axis": "Gender"},
    {"task": "bias_b", "doc_id": 1, "pred": 1, "biased": None, "probs": HIGH, "groups": [],
     "axis": "Gender"},
]


def refused(path, *fragments):
    with pytest.raises(BiasEvalError) as info:
        read_run(path)
    msg = str(info.value)
    assert "\n" not in msg, msg
    for f in fragments:
        assert str(f) in msg, msg
    return msg


def test_read_run_item_table(tmp_path):
    files = write_run(tmp_path / "run", ITEMS)
    run = read_run(files.out)
    t = run.items
    assert tuple(t.columns) == ITEM_COLUMNS
    assert len(t) == 4
    assert t[["task", "doc_id"]].values.tolist() == [["bias_a", 0], ["bias_a", 1], ["bias_b", 0],
                                                     ["bias_b", 1]]
    assert str(t["pred"].dtype) == "Int64" and str(t["biased"].dtype) == "boolean"
    assert t["filter"].tolist() == ["none"] * 4
    assert t["pred"].tolist() == [0, 2, pd.NA, 1]
    assert t["invalid"].tolist() == [False, False, True, False]
    assert t["gold"].tolist() == [2, 2, 2, 2]
    assert t["biased"].tolist() == [True, False, pd.NA, pd.NA]
    assert t["groups"].tolist() == [["Muslim"], ["Muslim", "Jewish"], ["women"], []]
    assert t["axis"].tolist() == ["Religion", "Religion", "Gender", "Gender"]
    assert t["probs"].tolist()[2] is None and t["probs"].tolist()[0] == LOW
    h = t["entropy_norm"].tolist()
    assert h[0] == pytest.approx(0.1018576, abs=1e-7)
    assert h[1] == pytest.approx(math.log(2) / math.log(3))
    assert math.isnan(h[2]) and h[3] == pytest.approx(1.0)
    bins = t["uncertainty"].tolist()
    assert bins[0] == "low" and bins[1] == "medium" and bins[3] == "high"
    assert pd.isna(t["uncertainty"].tolist()[2])
    assert t["unknown_chosen"].tolist() == [False, True, pd.NA, False]
    assert t["context_condition"].tolist() == ["ambig"] * 4
    assert t["question_polarity"].tolist() == ["neg"] * 4
    assert t["benchmark"].tolist() == ["bbq"] * 4
    assert t["doc_hash"].str.len().tolist() == [64] * 4
    lines = files.samples["bias_a"].read_text().splitlines()
    assert t.loc[0, "doc_hash"] == json.loads(lines[0])["doc_hash"]
    assert t.loc[0, "prompt_hash"] == json.loads(lines[0])["prompt_hash"]


def test_read_run_info(tmp_path):
    files = write_run(tmp_path / "run", ITEMS, model_name="org/m", limit=2,
                      quantization={"method": "rtn", "bits": 4}, n_shot={"bias_b": 5},
                      versions={"bias_a": 2.0})
    run = read_run(files.out)
    assert run.results_file == files.results
    assert run.samples_files == files.samples
    assert run.ignored_results_files == []
    assert run.tasks == ["bias_a", "bias_b"]
    assert run.model == "hf-quant" and run.model_name == "org/m"
    assert run.quantization == {"method": "rtn", "bits": 4}
    assert run.limit == 2
    assert run.versions == {"bias_a": 2.0, "bias_b": 1.0}
    assert run.n_shot == {"bias_a": 0, "bias_b": 5}
    assert set(run.task_hashes) == {"bias_a", "bias_b"}
    info = run.info()
    json.dumps(info, allow_nan=False)
    assert info["results_file"] == str(files.results)
    assert info["samples_files"] == {t: str(p) for t, p in files.samples.items()}
    assert info["model_args"] == {"pretrained": "org/m"}
    assert info["timestamp"] == "2025-06-01T12-00-00.000001"


def test_quantization_without_a_record_is_read_from_the_model_args(tmp_path):
    # (the fallback to any model_args key containing "quant" or "bits" is gone: the args are
    # mapped to hf-quant's record fields, tests/analysis/test_backends.py)
    files = write_run(tmp_path / "run", ITEMS,
                      model_args="pretrained=org/m,quant=rtn,bits=4,dtype=float32")
    assert read_run(files.out).quantization == {"method": "rtn", "bits": 4}
    files = write_run(tmp_path / "run2", ITEMS, model_args="pretrained=org/m")
    assert read_run(files.out).quantization is None
    files = write_run(tmp_path / "run3", ITEMS, model="hf",
                      model_args={"pretrained": "m", "load_in_4bit": True})
    assert read_run(files.out).quantization == {
        "method": "fp4", "library": "bitsandbytes", "simulated": False, "stage": "load",
        "bits": 4}


def test_newest_results_file_wins_and_the_others_are_recorded(tmp_path):
    out = tmp_path / "run"
    old = write_run(out, ITEMS[:1], ts="2025-06-01T10-00-00.000000")
    new = write_run(out, ITEMS[1:], ts="2025-06-02T10-00-00.000000")
    other_model = write_run(out, ITEMS, ts="2025-05-01T10-00-00.000000", model_name="other")
    run = read_run(out)
    assert run.results_file == new.results
    assert sorted(run.ignored_results_files) == sorted([old.results, other_model.results])
    assert len(run.items) == 3            # only the newest run's samples
    assert run.info()["ignored_results_files"] == [str(other_model.results), str(old.results)]
    # a results file given directly is used as is
    run = read_run(old.results)
    assert run.results_file == old.results and len(run.items) == 1


def test_several_filters_stay_distinct(tmp_path):
    items = [dict(ITEMS[0], filter="none"), dict(ITEMS[0], filter="strict-match", pred=1)]
    run = read_run(write_run(tmp_path / "run", items).out)
    assert run.items[["doc_id", "filter", "pred"]].values.tolist() == [
        [0, "none", 0], [0, "strict-match", 1]]


def test_bare_nan_in_a_samples_line(tmp_path):
    # a bare NaN where a nullable field is expected reads as null; a NaN probability is refused
    # (no record of this package has one: `probs` is a softmax)
    items = [ITEMS[0], dict(ITEMS[1], bias_item_extra={"biased": math.nan, "gold": math.nan})]
    files = write_run(tmp_path / "run", items)
    text = files.samples["bias_a"].read_text()
    assert "NaN" in text  # written as lm-eval writes it: a bare NaN, not valid strict JSON
    run = read_run(files.out)
    assert pd.isna(run.items.loc[1, "biased"]) and pd.isna(run.items.loc[1, "gold"])
    files = write_run(tmp_path / "run2", [dict(ITEMS[0], probs=[math.nan, 0.5, 0.5])])
    refused(files.out, f"{files.samples['bias_a']}:1:", "probs must be finite")


def test_task_without_bias_item_is_skipped_and_listed(tmp_path):
    items = ITEMS + [{"task": "wikitext", "doc_id": 0, "no_bias_item": True}]
    run = read_run(write_run(tmp_path / "run", items).out)
    assert run.tasks == ["bias_a", "bias_b"]
    assert list(run.skipped_tasks) == ["wikitext"]
    assert "wikitext" not in run.samples_files


# ----------------------------------------------------------------------------- refusals


def test_refuses_missing_folder(tmp_path):
    refused(tmp_path / "nope", "run folder not found", tmp_path / "nope")


def test_refuses_folder_without_results(tmp_path):
    (tmp_path / "empty" / "model").mkdir(parents=True)
    (tmp_path / "empty" / "model" / "notes.json").write_text("{}")
    refused(tmp_path / "empty", "no results_*.json", tmp_path / "empty")


def test_refuses_a_file_that_is_not_a_results_file(tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("hi")
    refused(f, "is a file", str(f))


def test_refuses_results_without_samples(tmp_path):
    files = write_run(tmp_path / "run", ITEMS)
    for p in files.samples.values():
        p.unlink()
    refused(files.out, "--log_samples", files.results)


def test_refuses_a_missing_samples_file_of_a_listed_task(tmp_path):
    files = write_run(tmp_path / "run", ITEMS)
    files.samples["bias_b"].unlink()
    refused(files.out, "bias_b", "missing", "--log_samples")


def test_refuses_broken_results_json(tmp_path):
    files = write_run(tmp_path / "run", ITEMS)
    files.results.write_text('{"results": ')
    refused(files.out, files.results, "not valid JSON")


def test_refuses_invalid_json_line(tmp_path):
    files = write_run(tmp_path / "run", PLANTED_BASE)
    path = files.samples["bias_a"]
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = '{"doc_id": 2, "bias_item": {oops}\n'
    path.write_text("".join(lines))
    refused(files.out, f"{path}:3", "not valid JSON")


def test_refuses_truncated_last_line(tmp_path):
    files = write_run(tmp_path / "run", PLANTED_BASE)
    path = files.samples["bias_b"]
    text = path.read_text()
    path.write_text(text[: len(text) - 40])  # crashed while writing the last line
    n = text.count("\n")
    refused(files.out, f"{path}:{n}", "truncated")


@pytest.mark.parametrize("v", [2, 0, "1", None])
def test_refuses_unknown_bias_item_version(tmp_path, v):
    items = [ITEMS[0], dict(ITEMS[1], v=v)]
    files = write_run(tmp_path / "run", items)
    refused(files.out, f"{files.samples['bias_a']}:2", f"v={v!r}", "upgrade lm-eval-bias")


_BAD_VALUES = [  # more rows, through the command line: tests/test_bad_input.py
    ({"pred": "first"}, "pred"),
    ({"probs": [0.5, -0.5, 1.0]}, "probs must be finite and >= 0"),
    # checked against the record's own choices (3 of them)
    ({"pred": -1}, "pred must index the 3 choices"),
    ({"gold": 3}, "gold must index the 3 choices"),
    ({"probs": [0.5, 0.3, 0.1]}, "probs must sum to 1"),
    ({"probs": [1.0, 0.0, 1e-5]}, "probs must sum to 1"),
    ({"probs": [0.5, "0.25", 0.25]}, "probs must be a list of numbers"),
    ({"probs": [0.5, None, 0.5]}, "probs must be a list of numbers"),
    ({"probs": []}, "list of 3 numbers"),
    ({"probs": 1.0}, "list of 3 numbers"),
    ({"groups": "Muslim"}, "groups must be a flat list of strings"),
    ({"groups": ["Muslim", None]}, "groups must be a flat list of strings"),
    ({"groups": [1]}, "groups must be a flat list of strings"),
    ({"choices": ["only one"]}, "choices must be a list of at least 2 strings"),
    ({"choices": None}, "choices must be a list of at least 2 strings"),
]


@pytest.mark.parametrize(("extra", "says"), _BAD_VALUES)
def test_refuses_bad_bias_item_values(tmp_path, extra, says):
    files = write_run(tmp_path / "run", [ITEMS[0], dict(ITEMS[1], bias_item_extra=extra)])
    refused(files.out, f"{files.samples['bias_a']}:2:", says)


def test_reads_probs_that_sum_to_one_within_the_tolerance(tmp_path):
    probs = [0.5, 0.25, 0.25 + 5e-7]
    files = write_run(tmp_path / "run", [ITEMS[0], dict(ITEMS[1], bias_item_extra={
        "probs": probs, "groups": []})])
    run = read_run(files.out)
    assert run.items.loc[1, "probs"] == probs and run.items.loc[1, "groups"] == []


def test_refuses_run_without_any_bias_item(tmp_path):
    files = write_run(tmp_path / "run", [{"task": "mmlu_x", "doc_id": i, "no_bias_item": True}
                                         for i in range(3)])
    refused(files.out, "bias_item", "mmlu_x", files.dir)


def test_refuses_samples_file_mixing_lines_with_and_without_bias_item(tmp_path):
    files = write_run(tmp_path / "run", [ITEMS[0], dict(ITEMS[1], no_bias_item=True)])
    refused(files.out, f"{files.samples['bias_a']}:2", "no bias_item")


def test_refuses_duplicate_lines(tmp_path):
    files = write_run(tmp_path / "run", ITEMS)
    path = files.samples["bias_a"]
    with open(path, "a", encoding="utf-8") as fh:  # the same samples appended a second time
        fh.write(path.read_text().splitlines(keepends=True)[1])
    refused(files.out, f"{path}:3", "duplicate", "bias_a", "doc_id 1", "first on line 2")


def test_messages_are_single_line_even_for_odd_paths(tmp_path):
    weird = tmp_path / "a b"
    files = write_run(weird, ITEMS)
    os.remove(files.samples["bias_a"])
    os.remove(files.samples["bias_b"])
    refused(weird, "--log_samples")


def test_refuses_bytes_that_are_not_utf8_naming_their_own_line(tmp_path):
    # 40 lines of ~1.5 kB: the bad byte sits far past the first 8 kB read-ahead of a text reader,
    # which would blame whichever line started that chunk
    items = [dict(ITEMS[0], doc_id=d) for d in range(40)]
    files = write_run(tmp_path / "run", items)
    path = files.samples["bias_a"]
    lines = path.read_bytes().splitlines(keepends=True)
    lines[30] = lines[30].replace(b'"Religion"', b'"Relig\xff\xfeion"', 1)
    path.write_bytes(b"".join(lines))
    refused(files.out, f"{path}:31:", "not UTF-8")


def test_refuses_a_lone_nan_line_and_a_nan_doc_id(tmp_path):
    files = write_run(tmp_path / "run", ITEMS)
    path = files.samples["bias_a"]
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + "NaN\n" + lines[1])
    refused(files.out, f"{path}:2:", "JSON object")
    path.write_text(lines[0] + lines[1].replace('"doc_id": 1,', '"doc_id": NaN,', 1))
    refused(files.out, f"{path}:2:", "doc_id is missing")


def test_refuses_a_file_cut_at_a_line_boundary(tmp_path):
    # lm-eval writes results_*.json first, then appends the samples: a crash in between leaves
    # whole lines missing, which only lm-eval's own count (n-samples) can tell
    files = write_run(tmp_path / "run", PLANTED_BASE)
    path = files.samples["bias_a"]
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:5]))
    refused(files.out, str(path), "has 5 docs", "counted 8", "cut short", "--log_samples")


def test_refuses_an_empty_run(tmp_path):
    files = write_run(tmp_path / "run", [], tasks=["bias_a", "bias_b"])
    refused(files.out, "is empty", "samples_bias_a_", "samples_bias_b_", "--log_samples")
    # an empty samples file next to a task that lm-eval counted docs for: interrupted
    files = write_run(tmp_path / "run2", ITEMS)
    files.samples["bias_b"].write_text("")
    refused(files.out, f"{files.samples['bias_b']} is empty", "counted 2 docs", "interrupted")


def test_refuses_a_doc_id_beyond_64_bits(tmp_path):
    files = write_run(tmp_path / "run", [dict(ITEMS[0], doc_id=2 ** 70)])
    refused(files.out, f"{files.samples['bias_a']}:1:", "doc_id must be an integer")
