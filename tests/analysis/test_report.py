"""The report over planted runs at 16/8/4/3 bits whose flips, asymmetries and dose-response are
known exactly (worked out by hand below), plus rendering, escaping, determinism and the CLI.

Planted data (every comparison is against the bf16 reference, 16 bits):

task bias_a (Religion), 240 items, gold = 2 (unknown), option 0 = the biased option:
  docs   0..99   Muslim, reference answers 2 (unbiased, unknown)
  docs 100..194  Jewish, reference answers 2 (unbiased)
  docs 195..239  Jewish, reference answers 0 (biased)
  reference probabilities: HIGH (uniform) for docs 0..79, LOW otherwise.
  became biased (answer 0):   w8 docs 0..2 (3);  w4 seed 1 docs 0..38 (39);  w4 seed 2 docs 1..39
                              (39);  w3 docs 0..64 (65)
  became unbiased (answer 2): w8 none;  w4 seed 1 docs 195..199 (5);  seed 2 195..201 (7);
                              w3 195..203 (9)
  => emergence 3/195, 78/390, 65/195: odds 1/64, 1/4, 1/2 at 8, 12, 13 bits removed, which is
     exactly logistic with slope ln 2 per bit removed (odds ratio 2), intercept -14 ln 2.

task bias_b (Gender), 40 items, probabilities MED:
  docs 0..19 women, reference unbiased (2); docs 20..39 men, reference biased (0)
  at every precision and seed: docs 0..9 become biased, docs 20..29 become unbiased
  => aggregate biased share unchanged (20/40), McNemar p = 1, but women +50%, men -50%;
     emergence 10/20 at every width: slope exactly 0.

task wikitext: no bias_item, lm-eval's word_perplexity 20.0 / 20.1 / 20.4 & 20.6 / 22.0.
"""

from __future__ import annotations

import json
import math
import re

import pytest

from lm_eval_bias.analysis.report import (
    build_report,
    build_report_from_folders,
    render_html,
    write_report,
)
from lm_eval_bias.analysis.runs import read_run
from lm_eval_bias.errors import BiasEvalError
from tests.analysis.conftest import HIGH, LOW, MED, write_run
from tests.conftest import run_cli

U2B = {"w8": range(0, 3), "w4s1": range(0, 39), "w4s2": range(1, 40), "w3": range(0, 65)}
B2U = {"w8": range(0), "w4s1": range(195, 200), "w4s2": range(195, 202), "w3": range(195, 204)}
PPL = {"bf16": 20.0, "w8": 20.1, "w4s1": 20.4, "w4s2": 20.6, "w3": 22.0}
BITS = {"w8": 8, "w4s1": 4, "w4s2": 4, "w3": 3}


def _items(name: str, *, group_name: str = "Muslim") -> list[dict]:
    items = []
    for d in range(240):
        group = group_name if d < 100 else "Jewish"
        pred = 0 if d >= 195 else 2
        if name != "bf16":
            if d in U2B[name]:
                pred = 0
            if d in B2U[name]:
                pred = 2
        items.append({"task": "bias_a", "doc_id": d, "groups": [group], "axis": "Religion",
                      "pred": pred, "biased": pred == 0,
                      "probs": (HIGH if d < 80 else LOW) if name == "bf16" else LOW})
    for d in range(40):
        pred = 2 if d < 20 else 0
        if name != "bf16":
            if d < 10:
                pred = 0
            if 20 <= d < 30:
                pred = 2
        items.append({"task": "bias_b", "doc_id": d, "groups": ["women" if d < 20 else "men"],
                      "axis": "Gender", "pred": pred, "biased": pred == 0, "probs": MED})
    return items


def _write(tmp, name, *, model_name="org/tiny", group_name="Muslim", dtype="torch.bfloat16"):
    seed = {"w4s1": 1, "w4s2": 2}.get(name, 0)
    if name == "bf16":
        quant = {"method": "none", "model_bytes_before": 10, "model_bytes_after": 10}
    else:
        quant = {"method": "rtn", "bits": BITS[name], "group_size": 128, "sym": False,
                 "model_bytes_before": 10, "model_bytes_after": 3,
                 # measurements, not settings: must not split the seeds into two conditions
                 "quantize_seconds": 1.0 + seed, "load_seconds": 2.0 + seed,
                 "kl_fixed_text": 0.01 * (1 + seed)}
    files = write_run(tmp / name, _items(name, group_name=group_name), model_name=model_name,
                      quantization=quant, tasks=["wikitext"],
                      scores={"wikitext": {"word_perplexity,none": PPL[name]}},
                      ts=f"2025-06-01T12-00-0{len(name)}.00000{seed}")
    doc = json.loads(files.results.read_text())
    doc["config"]["random_seed"] = seed
    doc["config"]["model_dtype"] = dtype
    files.results.write_text(json.dumps(doc))
    return files.out


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    return [_write(tmp, n) for n in ("w3", "bf16", "w8", "w4s1", "w4s2")]


@pytest.fixture(scope="module")
def report(sweep):
    return build_report_from_folders(sweep, n_boot=400, seed=0)


def _cmp(report, bits):
    return next(c for c in report["comparisons"] if c["bits"] == bits)


def _task(rows, task):
    return next(t for t in rows if t["task"] == task)


def _group(cmp, task, group):
    return next(g for g in cmp["groups"] if g["task"] == task and g["group"] == group)


def test_conditions_reference_and_seeds(report):
    assert [c["bits"] for c in report["conditions"]] == [16, 8, 4, 3]
    ref = report["reference"]
    assert ref["chosen_by"] == "unquantized" and ref["bits"] == 16
    assert ref["runs"] == ["r1"]
    w4 = next(c for c in report["conditions"] if c["bits"] == 4)
    assert w4["runs"] == ["r3", "r4"] and w4["n_seeds"] == 2
    assert w4["varying_seeds"] == ["random_seed"]
    # traceability: every run with its files, model, quantization and task versions
    assert [r["id"] for r in report["runs"]] == ["r0", "r1", "r2", "r3", "r4"]
    for r in report["runs"]:
        assert set(r["samples_files"]) == {"bias_a", "bias_b"}
        assert r["versions"] == {"bias_a": 1.0, "bias_b": 1.0, "wikitext": 1.0}
        assert r["model_name"] == "org/tiny" and r["results_file"].endswith(".json")
    assert report["runs"][0]["quantization"]["bits"] == 3


def test_item_level_change_w3(report):
    c = _cmp(report, 3)
    f = c["flips"]
    assert (f["n_paired"], f["response_flips"], f["u2b"], f["b2u"]) == (280, 94, 75, 19)
    assert f["u2b_rate_of_unbiased"] == pytest.approx(75 / 215)
    assert f["net_change"] == pytest.approx(56 / 280)
    a, b = _task(c["tasks"], "bias_a"), _task(c["tasks"], "bias_b")
    assert (a["u2b"], a["b2u"], a["test"]) == (65, 9, "chi-square, continuity corrected")
    assert a["mcnemar_statistic"] == pytest.approx(55 ** 2 / 74)
    assert (b["u2b"], b["b2u"], b["pvalue"], b["significant"]) == (10, 10, 1.0, False)
    # BH over the 6 tests (2 tasks + 4 groups), by hand in the module docstring's numbers:
    # p(Jewish: 0 vs 9) = 2/2^9, p(women), p(men) = 2/2^10; q(Jewish) = 6/5 * 2/2^9,
    # q(women) = q(men) = 6/4 * 2/2^10.
    assert c["mcnemar"]["n_tests_in_family"] == 6
    jew = _group(c, "bias_a", "Jewish")
    assert jew["pvalue"] == pytest.approx(2 / 2 ** 9)
    assert jew["qvalue"] == pytest.approx(6 / 5 * 2 / 2 ** 9)
    assert _group(c, "bias_b", "women")["qvalue"] == pytest.approx(6 / 4 * 2 / 2 ** 10)
    assert all(g["significant"] for g in c["groups"])


def test_group_asymmetry_ranked(report):
    c = _cmp(report, 3)
    # ranked by |net change| (as compare ranks them), ties by task, then group name
    assert [(g["group"], round(g["net_change"], 6)) for g in c["groups"]] == [
        ("Muslim", 0.65), ("men", -0.5), ("women", 0.5), ("Jewish", round(-9 / 140, 6))]
    ga = c["group_asymmetry"]
    assert ga["largest_worsening"]["group"] == "Muslim"
    assert ga["largest_improvement"]["group"] == "men"
    assert ga["largest_improvement"]["net_change"] == pytest.approx(-0.5)


def test_masked_flipping(report):
    m = _cmp(report, 3)["masked_flipping"]
    # bias_b's biased share did not change (10 vs 10): its 20 response flips are masked
    assert m["tasks"]["response_flips"]["masked_flips"] == 20
    assert m["tasks"]["response_flips"]["masked_share"] == pytest.approx(20 / 94)
    assert m["tasks"]["response_flips"]["masked_flip_rate"] == pytest.approx(20 / 40)
    # every (task, group) cell changed significantly: nothing masked at group level
    assert m["groups"]["response_flips"]["masked_flips"] == 0


def test_uncertainty_bins(report):
    a = _task(_cmp(report, 3)["tasks"], "bias_a")["uncertainty"]
    bins = {b["bin"]: b for b in a["bins"]}
    assert (bins["high"]["n_paired"], bins["high"]["response_flips"]) == (80, 65)
    assert (bins["low"]["n_paired"], bins["low"]["response_flips"]) == (160, 9)
    assert a["high_low_ratio"] == pytest.approx((65 / 80) / (9 / 160))


def test_dose_response_exact(report):
    dr = report["dose_response"]
    assert dr["reference_bits"] == 16 and dr["levels"] == [3, 4, 8]
    a = _task(dr["tasks"], "bias_a")
    assert a["n_rows"] == 195 * 4 and a["n_items"] == 195 and a["n_events"] == 3 + 78 + 65
    assert "item-clustered" in a["method"] and not a["separation"]
    assert a["slope"] == pytest.approx(math.log(2), abs=1e-6)
    assert a["odds_ratio"] == pytest.approx(2.0, abs=1e-5)
    assert a["intercept"] == pytest.approx(-14 * math.log(2), abs=1e-5)
    assert a["odds_ratio_ci_low"] < 2 < a["odds_ratio_ci_high"]
    # Cluster-robust SE by hand (clusters = the 195 items, each seen at 4 runs):
    # V = G/(G-1) * (N-1)/(N-K) * B M B, B = [X'WX]^-1, M = sum over items of s s',
    # s = sum over the item's rows of (y - p) [1, x]; the fit is saturated, so p is the observed
    # emergence rate at each bit width.
    import numpy as np
    x_of = {run: 16.0 - bits for run, bits in BITS.items()}
    p_of = {8.0: 3 / 195, 12.0: 78 / 390, 13.0: 65 / 195}
    info, meat = np.zeros((2, 2)), np.zeros((2, 2))
    for doc in range(195):
        score = np.zeros(2)
        for run, x in x_of.items():
            p, y = p_of[x], float(doc in U2B[run])
            info += p * (1 - p) * np.outer([1, x], [1, x])
            score += (y - p) * np.array([1.0, x])
        meat += np.outer(score, score)
    bread = np.linalg.inv(info)
    groups, rows = 195, 780
    cov = groups / (groups - 1) * (rows - 1) / (rows - 2) * bread @ meat @ bread
    se = math.sqrt(cov[1, 1])
    assert a["slope_se"] == pytest.approx(se, rel=1e-5)
    assert a["odds_ratio_ci_low"] == pytest.approx(math.exp(math.log(2) - 1.959964 * se), rel=1e-5)
    assert a["pvalue"] < 1e-6
    b = _task(dr["tasks"], "bias_b")
    assert b["slope"] == pytest.approx(0.0, abs=1e-8) and b["pvalue"] == pytest.approx(1.0)
    em = {(e["task"], e["bits"]): e["rate"] for e in dr["emergence"]}
    assert em[("bias_a", 8)] == pytest.approx(3 / 195)
    assert em[("bias_a", 4)] == pytest.approx(78 / 390)
    assert em[("bias_a", 3)] == pytest.approx(65 / 195)
    assert dr["all_tasks"]["slope"] > 0


def test_seeds_pooled_with_spread(report):
    c = _cmp(report, 4)
    assert c["n_paired"] == 560 and [p["reference_run"] for p in c["pairs"]] == ["r1", "r1"]
    per = {s["run"]: s for s in c["seeds"]["per_seed"]}
    assert per["r3"]["net_change"] == pytest.approx((49 - 15) / 280)
    assert per["r4"]["net_change"] == pytest.approx((49 - 17) / 280)
    sp = c["seeds"]["spread"]["net_change"]
    assert sp["mean"] == pytest.approx(33 / 280)
    assert sp["sd"] == pytest.approx((2 / 280) / math.sqrt(2))
    assert c["flips"]["u2b"] == 98 and c["flips"]["b2u"] == 32


def test_scores_with_cis_and_significance(report):
    a = _task(report["tasks"], "bias_a")
    assert a["n_items"] == 240
    rows = {s["metric"]: s for s in a["scores"]}
    assert {"accuracy", "biased_rate", "unknown_rate", "acc_amb", "bias_amb",
            "net_change"} <= set(rows)
    br = rows["biased_rate"]["values"]
    assert br["c0"]["estimate"] == pytest.approx(45 / 240)
    assert br["c0"]["ci_low"] < 45 / 240 < br["c0"]["ci_high"]
    w3 = next(c["id"] for c in report["conditions"] if c["bits"] == 3)
    assert br[w3]["estimate"] == pytest.approx(101 / 240)
    assert br[w3]["difference"] == pytest.approx(56 / 240) and br[w3]["significant"] is True
    b = {s["metric"]: s for s in _task(report["tasks"], "bias_b")["scores"]}
    assert b["biased_rate"]["values"][w3]["difference"] == pytest.approx(0.0)
    assert b["biased_rate"]["values"][w3]["significant"] is False
    assert b["response_flip_rate"]["values"][w3]["estimate"] == pytest.approx(0.5)
    lm = {r["metric"]: r["values"] for r in a["lm_eval"]}
    assert lm["acc"]["c0"] == pytest.approx(195 / 240)


def test_quality_column(report):
    q = report["quality"]
    assert q["available"]
    row = q["rows"][0]
    assert (row["task"], row["metric"]) == ("wikitext", "word_perplexity")
    w4 = next(c["id"] for c in report["conditions"] if c["bits"] == 4)
    assert row["values"][w4] == pytest.approx(20.5)
    w3 = next(c["id"] for c in report["conditions"] if c["bits"] == 3)
    assert row["relative_change"][w3] == pytest.approx(0.1)
    s = next(r for r in report["summary"]["conditions"] if r["bits"] == 3)
    assert s["quality"]["wikitext/word_perplexity"] == pytest.approx(0.1)


def test_written_files_deterministic(sweep, tmp_path):
    a = write_report(build_report_from_folders(sweep, n_boot=200, seed=3), tmp_path / "a")
    b = write_report(build_report_from_folders(sweep, n_boot=200, seed=3), tmp_path / "b")
    for key in ("json", "md", "html", "plot:uncertainty_flip_rate", "plot:group_net_change",
                "plot:emergence_by_bits"):
        assert a[key].read_bytes() == b[key].read_bytes(), key
    text = a["json"].read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["schema"] == "lm-eval-bias/report"
    assert a["plot:group_net_change"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = a["md"].read_text()
    assert "## Dose-response" in md and "Largest worsening: Muslim" in md


def test_html_escapes_data_strings(tmp_path):
    evil = "<script>alert(1)</script>"
    runs = [read_run(_write(tmp_path, n, model_name=evil, group_name=evil))
            for n in ("bf16", "w3")]
    report = build_report(runs, n_boot=100)
    files = write_report(report, tmp_path / "out")
    page = files["html"].read_text()
    assert evil not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page.lower()
    # self-contained: no external resources
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", page)
    assert "@import" not in page and "url(" not in page
    assert page.count('src="data:image/png;base64,') == 3
    assert render_html(report) == render_html(report)


def test_reference_rules(tmp_path):
    runs = [read_run(_write(tmp_path, n)) for n in ("bf16", "w8", "w3")]
    r = build_report(runs, reference=1, n_boot=100)
    assert r["reference"]["chosen_by"] == "--reference" and r["reference"]["bits"] == 8
    with pytest.raises(BiasEvalError, match="no unquantized run"):
        build_report(runs[1:], n_boot=100)
    other = read_run(_write(tmp_path / "m2", "bf16", model_name="org/other"))
    with pytest.raises(BiasEvalError, match="ambiguous.*--reference"):
        build_report([runs[0], other, runs[2]], n_boot=100)
    with pytest.raises(BiasEvalError, match="same model, quantization, tasks and seeds"):
        build_report([runs[0], runs[2], read_run(_write(tmp_path / "dup", "w3"))], n_boot=100)


def test_cli_report(sweep, tmp_path):
    out = tmp_path / "rep"
    res = run_cli(["lm-eval-bias", "report", *map(str, sweep), "--output", str(out),
                   "--n-boot", "200"], timeout=120)
    assert res.returncode == 0, res.stderr
    assert "dose-response: odds ratio" in res.stdout
    assert (out / "report.html").is_file() and (out / "plots" / "emergence_by_bits.png").is_file()
    bad = run_cli(["lm-eval-bias", "report", str(sweep[0]), str(tmp_path / "missing"),
                   "--output", str(out)], timeout=60)
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lm-eval-bias: error: run folder not found")


# ---- degenerate inputs: finite numbers or an explicit note, never a crash

def _degenerate_runs(tmp, became_biased) -> list:
    """A reference run (16 bits, 60 items all unbiased) and runs at 8 and 3 bits whose items turn
    biased as `became_biased(bits, doc)` says."""
    folders = []
    for name, bits in (("ref", None), ("w8", 8), ("w3", 3)):
        items = [{"task": "bias_d", "doc_id": d, "groups": ["g1" if d < 30 else "g2"],
                  "axis": "x", "probs": MED,
                  "pred": 0 if bits and became_biased(bits, d) else 2}
                 for d in range(60)]
        for item in items:
            item["biased"] = item["pred"] == 0
        quant = ({"method": "none"} if bits is None else
                 {"method": "rtn", "bits": bits, "group_size": 128, "sym": False})
        folders.append(write_run(tmp / name, items, quantization=quant,
                                 ts=f"2025-06-01T12-00-0{len(folders)}.000000").out)
    return folders


@pytest.mark.parametrize("case, became_biased, estimable, separation", [
    ("no change at all", lambda bits, d: False, False, None),
    ("every item changing", lambda bits, d: True, False, None),
    ("perfect separation between two bit widths", lambda bits, d: bits == 3, True, "complete"),
])
def test_report_survives_degenerate_inputs(tmp_path, case, became_biased, estimable, separation):
    folders = _degenerate_runs(tmp_path, became_biased)
    report = build_report_from_folders(folders, n_boot=100, seed=0)
    dose = report["dose_response"]["all_tasks"]
    assert dose["estimable"] is estimable, (case, dose)
    if estimable:
        assert dose["separation"] == separation and "Firth" in dose["method"]
        assert all(math.isfinite(dose[k]) for k in ("slope", "odds_ratio", "pvalue"))
    else:
        assert dose["slope"] is None and dose["note"], dose  # the reason, in words
    # every number in the report is finite or absent (JSON has no NaN/inf), and it renders
    text = json.dumps(report, allow_nan=False, default=str)
    assert "Infinity" not in text and "NaN" not in text
    out = write_report(report, tmp_path / "out", plots=False)
    assert out["json"].is_file() and "Dose-response" in out["md"].read_text()
