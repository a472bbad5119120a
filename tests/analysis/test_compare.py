"""`compare`: planted flips whose every count is written out by hand, refusals of runs that cannot
be paired, the renderers, the JSON file, and the CLI end to end.

The planted runs are in conftest.py (`_PLANTED`): 16 items in 3 tasks. Per item (B = base,
O = other; pred None = invalid; bin = uncertainty bin of B's probabilities):

    bias_a (Religion)  0 Muslim        B 0 F low   O 0 F   -
                       1 Muslim        B 1 F high  O 0 T   flip, u2b
                       2 Jewish        B 0 T med   O 1 F   flip, b2u
                       3 Muslim+Jewish B 1 F high  O 0 T   flip, u2b
                       4 Jewish        B 1 - low   O 0 -   flip (bias undefined)
                       5 Christian     B 1 F med   O inv.  flip (valid -> invalid)
                       6 Christian     B inv. none O 0 T   flip (invalid -> valid)
                       7 Muslim        B 0 T low   O 0 T   -
    bias_b (Gender)    0 women         B 2 F high  O 2 F   -
                       1 women         B 1 F high  O 0 T   flip, u2b
                       2 men           B 0 T low   O 1 F   flip, b2u
                       3 men           B 2 F med   O 2 F   -
                       4 women+men     B inv. none O inv.  - (invalid in both)
                       5 trans         B 0 T high  O 2 F   flip, b2u
    bias_c (Age)       0 old           B 2 F low   O 2 F   -
                       1 young         B 2 F high  O 1 F   flip (both unbiased)
"""

from __future__ import annotations

import json
import math

import pytest
from conftest import run_cli

from lm_eval_bias.analysis.compare import (
    compare_run_folders,
    render_markdown,
    render_terminal,
    write_json,
)
from lm_eval_bias.errors import BiasEvalError

from .conftest import PLANTED_BASE, PLANTED_OTHER, write_run

COUNT_KEYS = ["n_paired", "response_flips", "u2b", "b2u", "bias_flips", "n_base_unbiased",
              "n_base_biased", "n_bias_defined"]
RATE_KEYS = ["response_flip_rate", "u2b_rate", "b2u_rate", "bias_flip_rate",
             "u2b_rate_of_unbiased", "b2u_rate_of_biased", "net_change"]


def counts(d):
    return [d[k] for k in COUNT_KEYS]


def rates(d):
    return [d[k] for k in RATE_KEYS]


def approx_list(values):
    return [None if v is None else pytest.approx(v) for v in values]


@pytest.fixture
def result(planted):
    base, other = planted
    return compare_run_folders(base.out, other.out)


def task(result, name):
    (t,) = [t for t in result["tasks"] if t["task"] == name]
    return t


# ----------------------------------------------------------------------------- per task


def test_task_bias_a(result):
    t = task(result, "bias_a")
    assert t["filter"] == "none" and t["n_paired"] == 8
    # n 8; flips items 1-6; u2b 1, 3; b2u 2; base unbiased 0, 1, 3, 5; base biased 2, 7;
    # defined in both 0, 1, 2, 3, 7
    assert counts(t["flips"]) == [8, 6, 2, 1, 3, 4, 2, 5]
    assert rates(t["flips"]) == approx_list([6 / 8, 2 / 8, 1 / 8, 3 / 8, 2 / 4, 1 / 2, 1 / 5])


def test_task_bias_b(result):
    t = task(result, "bias_b")
    # n 6; flips 1, 2, 5; u2b 1; b2u 2, 5; unbiased 0, 1, 3; biased 2, 5; defined 0, 1, 2, 3, 5
    assert counts(t["flips"]) == [6, 3, 1, 2, 3, 3, 2, 5]
    assert rates(t["flips"]) == approx_list([3 / 6, 1 / 6, 2 / 6, 3 / 6, 1 / 3, 2 / 2, -1 / 5])


def test_task_bias_c(result):
    t = task(result, "bias_c")
    assert counts(t["flips"]) == [2, 1, 0, 0, 0, 2, 0, 2]
    assert rates(t["flips"]) == approx_list([1 / 2, 0.0, 0.0, 0.0, 0.0, None, 0.0])


def test_all_tasks_total(result):
    total = result["all_tasks"]
    assert total["n_tasks"] == 3 and total["n_paired"] == 16
    assert counts(total["flips"]) == [16, 10, 3, 3, 6, 9, 4, 12]
    assert rates(total["flips"]) == approx_list([10 / 16, 3 / 16, 3 / 16, 6 / 16, 3 / 9, 3 / 4,
                                                 0.0])


# ----------------------------------------------------------------------------- groups and axes


def test_groups_of_bias_a_count_multi_group_items_in_each_group(result):
    groups = task(result, "bias_a")["groups"]
    # sorted by |net change|: Muslim 0.5, Jewish 0.0, Christian undefined (last)
    assert [g["group"] for g in groups] == ["Muslim", "Jewish", "Christian"]
    g = {g["group"]: g for g in groups}
    # Muslim: items 0, 1, 3, 7; flips 1, 3; u2b 1, 3; unbiased 0, 1, 3; biased 7; defined all 4
    assert counts(g["Muslim"]) == [4, 2, 2, 0, 2, 3, 1, 4]
    assert rates(g["Muslim"]) == approx_list([2 / 4, 2 / 4, 0.0, 2 / 4, 2 / 3, 0.0, 2 / 4])
    # Jewish: items 2, 3, 4; flips all three; u2b 3; b2u 2; unbiased 3; biased 2; defined 2, 3
    assert counts(g["Jewish"]) == [3, 3, 1, 1, 2, 1, 1, 2]
    assert rates(g["Jewish"]) == approx_list([1.0, 1 / 3, 1 / 3, 2 / 3, 1.0, 1.0, 0.0])
    # Christian: items 5, 6; both flip; unbiased 5; nothing defined in both runs
    assert counts(g["Christian"]) == [2, 2, 0, 0, 0, 1, 0, 0]
    assert rates(g["Christian"]) == approx_list([1.0, 0.0, 0.0, 0.0, 0.0, None, None])
    # item 3 is in two groups: 4 + 3 + 2 = 9 memberships for 8 items
    assert sum(x["n_paired"] for x in groups) == 9


def test_groups_of_bias_b(result):
    groups = task(result, "bias_b")["groups"]
    # trans -1.0, then men -0.5 and women +0.5 (tie: by name)
    assert [(g["group"], g["net_change"]) for g in groups] == [
        ("trans", -1.0), ("men", -0.5), ("women", 0.5)]
    g = {g["group"]: g for g in groups}
    # women: items 0, 1, 4; flip 1; u2b 1; unbiased 0, 1; defined 0, 1
    assert counts(g["women"]) == [3, 1, 1, 0, 1, 2, 0, 2]
    # men: items 2, 3, 4; flip 2; b2u 2; unbiased 3; biased 2; defined 2, 3
    assert counts(g["men"]) == [3, 1, 0, 1, 1, 1, 1, 2]
    assert counts(g["trans"]) == [1, 1, 0, 1, 1, 0, 1, 1]
    assert g["trans"]["u2b_rate_of_unbiased"] is None
    asym = task(result, "bias_b")["group_asymmetry"]
    assert asym["largest_worsening"]["group"] == "women"
    assert asym["largest_improvement"]["group"] == "trans"


def test_groups_over_all_tasks(result):
    groups = result["all_tasks"]["groups"]
    assert [(g["group"], g["net_change"]) for g in groups] == [
        ("trans", -1.0), ("Muslim", 0.5), ("men", -0.5), ("women", 0.5),
        ("Jewish", 0.0), ("old", 0.0), ("young", 0.0), ("Christian", None)]
    g = {g["group"]: g for g in groups}
    assert counts(g["old"]) == [1, 0, 0, 0, 0, 1, 0, 1]
    assert counts(g["young"]) == [1, 1, 0, 0, 0, 1, 0, 1]
    asym = result["all_tasks"]["group_asymmetry"]
    assert asym["largest_worsening"]["group"] == "Muslim"   # +0.5, ties broken by the sort order
    assert asym["largest_improvement"]["group"] == "trans"


def test_axes(result):
    axes = {a["axis"]: a for a in result["all_tasks"]["axes"]}
    assert sorted(axes) == ["Age", "Gender", "Religion"]
    assert counts(axes["Religion"]) == [8, 6, 2, 1, 3, 4, 2, 5]
    assert counts(axes["Gender"]) == [6, 3, 1, 2, 3, 3, 2, 5]
    assert counts(axes["Age"]) == [2, 1, 0, 0, 0, 2, 0, 2]
    assert [a["axis"] for a in task(result, "bias_a")["axes"]] == ["Religion"]


# ----------------------------------------------------------------------------- uncertainty


def bins(unc):
    return {b["bin"]: b for b in unc["bins"]}


def test_uncertainty_bias_a(result):
    unc = task(result, "bias_a")["uncertainty"]
    assert [b["bin"] for b in unc["bins"]] == ["low", "medium", "high"]
    b = bins(unc)
    # low: items 0, 4, 7 -> flip 4; medium: 2, 5 -> flips both, b2u 2; high: 1, 3 -> u2b both
    assert [b[k]["n_paired"] for k in ("low", "medium", "high")] == [3, 2, 2]
    assert [b[k]["response_flips"] for k in ("low", "medium", "high")] == [1, 2, 2]
    assert [b[k]["u2b"] for k in ("low", "medium", "high")] == [0, 0, 2]
    assert [b[k]["b2u"] for k in ("low", "medium", "high")] == [0, 1, 0]
    assert [b[k]["response_flip_rate"] for k in ("low", "medium", "high")] == approx_list(
        [1 / 3, 1.0, 1.0])
    assert unc["high_low_ratio"] == pytest.approx(3.0)
    assert unc["n_without_probs"] == 1                      # item 6


def test_uncertainty_bias_b(result):
    unc = task(result, "bias_b")["uncertainty"]
    b = bins(unc)
    # low: 2 (flip, b2u); medium: 3 (no flip); high: 0, 1, 5 -> flips 1, 5 (u2b 1, b2u 5)
    assert [b[k]["n_paired"] for k in ("low", "medium", "high")] == [1, 1, 3]
    assert [b[k]["response_flips"] for k in ("low", "medium", "high")] == [1, 0, 2]
    assert [b[k]["bias_flips"] for k in ("low", "medium", "high")] == [1, 0, 2]
    assert unc["high_low_ratio"] == pytest.approx((2 / 3) / 1.0)
    assert unc["n_without_probs"] == 1                      # item 4


def test_uncertainty_bias_c_has_no_ratio(result):
    unc = task(result, "bias_c")["uncertainty"]
    b = bins(unc)
    assert [b[k]["n_paired"] for k in ("low", "medium", "high")] == [1, 0, 1]
    assert b["medium"]["response_flip_rate"] is None        # empty bin: None, not NaN
    assert unc["high_low_ratio"] is None                    # low bin has no flips
    assert unc["n_without_probs"] == 0


def test_uncertainty_all_tasks(result):
    unc = result["all_tasks"]["uncertainty"]
    b = bins(unc)
    # low: a0 a4 a7 b2 c0; medium: a2 a5 b3; high: a1 a3 b0 b1 b5 c1
    assert [b[k]["n_paired"] for k in ("low", "medium", "high")] == [5, 3, 6]
    assert [b[k]["response_flips"] for k in ("low", "medium", "high")] == [2, 2, 5]
    assert [b[k]["u2b"] for k in ("low", "medium", "high")] == [0, 0, 3]
    assert [b[k]["b2u"] for k in ("low", "medium", "high")] == [1, 1, 1]
    assert [b[k]["response_flip_rate"] for k in ("low", "medium", "high")] == approx_list(
        [2 / 5, 2 / 3, 5 / 6])
    assert unc["high_low_ratio"] == pytest.approx((5 / 6) / (2 / 5))
    assert unc["n_without_probs"] == 2


# ----------------------------------------------------------------------------- scores and info


def test_aggregate_scores_side_by_side(result):
    rows = {r["metric"]: r for r in task(result, "bias_a")["scores"]}
    # no *_stderr, alias, name, sample_len or bias_item
    assert sorted(rows) == ["acc", "acc_amb", "bias_amb", "bias_disamb"]
    assert rows["bias_disamb"]["base"] is None and rows["bias_disamb"]["other"] is None  # NaN
    assert rows["bias_amb"]["base"] == 0.1 and rows["bias_amb"]["other"] == 0.25
    assert rows["bias_amb"]["difference"] == pytest.approx(0.15)
    assert rows["bias_amb"]["base_stderr"] == 0.05 and rows["bias_amb"]["other_stderr"] == 0.06
    assert rows["acc_amb"]["other"] is None                 # a bare NaN in the results JSON
    assert rows["acc_amb"]["difference"] is None
    assert rows["acc"]["base_stderr"] is None               # "N/A" in the results JSON
    b = {r["metric"]: r for r in task(result, "bias_b")["scores"]}
    # acc = pred == gold (2): base preds 2,1,0,2,inv,0 -> 2/6; other 2,0,1,2,inv,2 -> 3/6
    assert b["acc"]["base"] == pytest.approx(2 / 6) and b["acc"]["other"] == pytest.approx(3 / 6)
    assert b["acc"]["difference"] == pytest.approx(1 / 6)


def test_runs_info(result, planted):
    base, other = planted
    assert result["schema"] == "lm-eval-bias/compare" and result["schema_version"] == 1
    assert result["base"]["results_file"] == str(base.results)
    assert result["other"]["results_file"] == str(other.results)
    assert result["base"]["path"] == str(base.out)
    assert result["base"]["model_name"] == "org/tiny-llama"
    assert result["base"]["quantization"]["method"] == "none"
    assert result["other"]["quantization"] == {
        "method": "rtn", "bits": 4, "group_size": 128, "sym": False, "mean_bits_per_weight": 4.25,
        "model_bytes_before": 1000, "model_bytes_after": 300}
    assert result["other"]["model_args"] == {"pretrained": "org/tiny-llama", "quant": "rtn",
                                             "bits": 4}
    assert result["other"]["samples_files"]["bias_b"] == str(other.samples["bias_b"])
    assert result["tasks_only_in_base"] == [] and result["tasks_only_in_other"] == []
    assert result["aggregate_only"] == []
    assert [t["task"] for t in result["tasks"]] == ["bias_a", "bias_b", "bias_c"]
    assert set(result) == {"schema", "schema_version", "base", "other", "tasks", "all_tasks",
                           "tasks_only_in_base", "tasks_only_in_other", "aggregate_only"}
    assert set(result["tasks"][0]) == {"task", "filter", "n_paired", "flips", "groups", "axes",
                                       "uncertainty", "group_asymmetry", "scores"}


def test_result_is_strict_json(result):
    def no_nan(x):
        raise AssertionError(f"NaN-like constant {x} in the result")
    text = json.dumps(result, allow_nan=False)
    assert json.loads(text, parse_constant=no_nan) == result


def test_partial_task_overlap_and_tasks_without_bias_item(tmp_path):
    extra = [{"task": "bias_d", "doc_id": 0, "pred": 0, "biased": True, "groups": ["x"]}]
    ppl = [{"task": "wikitext", "doc_id": 0, "no_bias_item": True}]
    base = write_run(tmp_path / "b", PLANTED_BASE + extra + ppl,
                     scores={"wikitext": {"word_perplexity,none": 20.0}})
    other = write_run(tmp_path / "o", PLANTED_OTHER + ppl,
                      scores={"wikitext": {"word_perplexity,none": 20.5}})
    result = compare_run_folders(base.out, other.out)
    assert result["tasks_only_in_base"] == ["bias_d"]
    assert [t["task"] for t in result["tasks"]] == ["bias_a", "bias_b", "bias_c"]
    assert result["all_tasks"]["flips"]["n_paired"] == 16
    assert result["base"]["skipped_tasks"] == {"wikitext": "no bias_item records (not an "
                                                           "lm-eval-bias task)"}
    (ppl_row,) = [r for a in result["aggregate_only"] if a["name"] == "wikitext"
                  for r in a["scores"] if r["metric"] == "word_perplexity"]
    assert ppl_row["difference"] == pytest.approx(0.5)
    text = render_terminal(result)
    assert "only in BASE" in text and "bias_d" in text and "word_perplexity" in text


def test_several_filters_are_paired_separately(tmp_path):
    base_items = [dict(i, filter=f) for i in PLANTED_BASE[:2] for f in ("none", "strict")]
    other_items = [dict(i, filter=f) for i in PLANTED_OTHER[:2] for f in ("none", "strict")]
    result = compare_run_folders(write_run(tmp_path / "b", base_items).out,
                                 write_run(tmp_path / "o", other_items).out)
    assert [(t["task"], t["filter"], t["n_paired"]) for t in result["tasks"]] == [
        ("bias_a", "none", 2), ("bias_a", "strict", 2)]
    assert result["all_tasks"]["flips"]["response_flips"] == 2


# ----------------------------------------------------------------------------- refusals


def refused(base, other, *fragments):
    with pytest.raises(BiasEvalError) as info:
        compare_run_folders(base, other)
    msg = str(info.value)
    assert "\n" not in msg, msg
    for f in fragments:
        assert str(f) in msg, msg
    return msg


def test_refuses_no_tasks_in_common(tmp_path):
    base = write_run(tmp_path / "b", [i for i in PLANTED_BASE if i["task"] == "bias_a"])
    other = write_run(tmp_path / "o", [i for i in PLANTED_OTHER if i["task"] == "bias_b"])
    refused(base.out, other.out, "no tasks in common", "bias_a", "bias_b", "--tasks")


def test_refuses_different_task_versions(tmp_path):
    base = write_run(tmp_path / "b", PLANTED_BASE)
    other = write_run(tmp_path / "o", PLANTED_OTHER, versions={"bias_b": 2.0})
    refused(base.out, other.out, "task bias_b", "1.0", "2.0", str(other.results), "version")


def test_refuses_different_n_shot(tmp_path):
    base = write_run(tmp_path / "b", PLANTED_BASE, n_shot={"bias_c": 5})
    other = write_run(tmp_path / "o", PLANTED_OTHER)
    refused(base.out, other.out, "task bias_c", "5-shot", "0-shot", "--num_fewshot")


def test_refuses_different_documents(tmp_path):
    other_items = [dict(i) for i in PLANTED_OTHER]
    other_items[9]["doc"] = {"context": "another text", "question": "Who?"}   # bias_b doc 1
    base = write_run(tmp_path / "b", PLANTED_BASE)
    other = write_run(tmp_path / "o", other_items)
    refused(base.out, other.out, "different documents", "task bias_b", "doc_id 1",
            "1 of 6 docs differ", "same data")


def test_refuses_different_doc_sets(tmp_path):
    base = write_run(tmp_path / "b", PLANTED_BASE, limit=8)
    other = write_run(tmp_path / "o", [i for i in PLANTED_OTHER if i["doc_id"] < 4], limit=4)
    refused(base.out, other.out, "task bias_a", "BASE has 8 docs", "OTHER has 4",
            "--limit: BASE 8, OTHER 4", "same --limit")


def test_refuses_different_prompts(tmp_path):
    other_items = [dict(i) for i in PLANTED_OTHER]
    other_items[0]["prompt"] = "<|system|>Be fair.<|user|>..."   # e.g. a chat template
    base = write_run(tmp_path / "b", PLANTED_BASE)
    other = write_run(tmp_path / "o", other_items)
    refused(base.out, other.out, "different prompts", "task bias_a", "doc_id 0")


def test_refuses_different_filters(tmp_path):
    base = write_run(tmp_path / "b", PLANTED_BASE)
    other = write_run(tmp_path / "o", [dict(i, filter="strict") for i in PLANTED_OTHER])
    refused(base.out, other.out, "filters", "bias_a", "'none'", "'strict'")


def test_refuses_bad_folder(tmp_path, planted):
    base, _ = planted
    refused(base.out, tmp_path / "missing", "run folder not found")


# ----------------------------------------------------------------------------- rendering and files


def test_render_terminal(result):
    text = render_terminal(result)
    assert "BASE   org/tiny-llama [hf-quant, torch.float32]: not quantized" in text
    assert ("OTHER  org/tiny-llama [hf-quant, torch.float32]: rtn bits=4 group_size=128 sym=False"
            in text)
    lines = text.splitlines()
    a_line = next(ln for ln in lines if ln.startswith("bias_a "))   # the tasks table comes first
    assert "6 (75.0%)" in a_line and "2 (50.0%)" in a_line and "+20.0%" in a_line
    (total,) = [ln for ln in lines if ln.startswith("all tasks")]
    assert "10 (62.5%)" in total and "3 (33.3%)" in total and "3 (75.0%)" in total
    group_lines = [ln.split()[0] for ln in lines[lines.index(
        next(ln for ln in lines if ln.startswith("Social groups"))) + 3:][:8]]
    assert group_lines == ["trans", "Muslim", "men", "women", "Jewish", "old", "young",
                           "Christian"]
    assert "high/low response-flip ratio: 2.083" in text
    assert "nan" not in text.lower()


def test_render_terminal_names_ignored_results_files(tmp_path):
    base = write_run(tmp_path / "b", PLANTED_BASE[:3], ts="2025-01-01T00-00-00.000000")
    base = write_run(tmp_path / "b", PLANTED_BASE)
    other = write_run(tmp_path / "o", PLANTED_OTHER)
    text = render_terminal(compare_run_folders(base.out, other.out))
    assert f"{base.results} (newest; 1 older results file ignored)" in text


def test_render_markdown(result):
    md = render_markdown(result)
    assert md.startswith("# Item-level comparison")
    assert "- **BASE**: org/tiny-llama [hf-quant, torch.float32]: not quantized — `" in md
    assert "- **OTHER**: org/tiny-llama [hf-quant, torch.float32]: rtn bits=4 group_size=128" in md
    assert "| bias_a | none | 8 | 6 (75.0%) | 2 (50.0%) | 1 (50.0%) | +20.0% | 3 |" in md
    assert "| trans | 1 | 1 (100.0%) | 0 (-) | 1 (100.0%) | -100.0% |" in md
    assert "| high | 6 | 5 (83.3%) | 3 | 1 | 4 (66.7%) |" in md
    assert "### bias_c (filter none)" in md
    assert "nan" not in md.lower()


def test_write_json_atomic_sorted_no_nan(result, tmp_path):
    (tmp_path / "out").mkdir()
    path = tmp_path / "out" / "cmp.json"
    path.write_text("old content")
    write_json(result, path)
    text = path.read_text()
    loaded = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert loaded == result
    assert text == json.dumps(loaded, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["cmp.json"]   # no temp file left
    # NaN handed in is written as null
    write_json({"x": math.nan, "y": [1.0, float("inf")]}, path)
    assert json.loads(path.read_text()) == {"x": None, "y": [1.0, None]}


def test_write_json_refuses_missing_folder(result, tmp_path):
    with pytest.raises(BiasEvalError, match="does not exist"):
        write_json(result, tmp_path / "nope" / "cmp.json")


# ----------------------------------------------------------------------------- CLI


def test_cli_compare_end_to_end(planted, tmp_path):
    base, other = planted
    js, md = tmp_path / "x.json", tmp_path / "x.md"
    proc = run_cli(["lm-eval-bias", "compare", str(base.out), str(other.out),
                    "--output-json", str(js), "--output-md", str(md)], timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "all tasks" in proc.stdout and "Social groups" in proc.stdout
    assert f"wrote {js}" in proc.stdout and f"wrote {md}" in proc.stdout
    loaded = json.loads(js.read_text())
    assert loaded == compare_run_folders(base.out, other.out)
    assert loaded["all_tasks"]["flips"]["response_flips"] == 10
    assert md.read_text().startswith("# Item-level comparison")


@pytest.mark.parametrize("case", ["missing folder", "different documents"])
def test_cli_compare_user_error_exit_2(planted, tmp_path, case):
    base, other = planted
    if case == "missing folder":
        args = [str(base.out), str(tmp_path / "nope")]
    else:
        items = [dict(i, doc={"context": "x", "n": i["doc_id"]}) if i["task"] == "bias_c" else i
                 for i in PLANTED_OTHER]
        args = [str(base.out), str(write_run(tmp_path / "changed", items).out)]
    proc = run_cli(["lm-eval-bias", "compare", *args], timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lm-eval-bias: error: "), proc.stderr
