"""Dose-response (S2) and the Firth fit behind it, pinned to figures from R (logistf 1.26.1,
sandwich 3.0-2) computed on the inputs in tests/reference/stats/ (README there: versions and the
exact script), and to hand-computed degenerate cases."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lm_eval_bias.metrics.stats import DOSE_RESPONSE_KEYS, FIRTH_KEYS, dose_response, firth_logit

REF = Path(__file__).resolve().parents[1] / "reference" / "stats"
EXPECTED = json.loads((REF / "expected.json").read_text())
SEX2_TERMS = ["age", "oc", "vic", "vicl", "vis", "dia"]


def _sex2():
    d = pd.read_csv(REF / "sex2.csv")
    X = np.column_stack([np.ones(len(d)), d[SEX2_TERMS].to_numpy(float)])
    return d, X


def test_firth_reproduces_logistf_on_sex2():
    d, X = _sex2()
    r = firth_logit(d["case"].to_numpy(float), X)
    e = EXPECTED["sex2"]
    assert set(r) == set(FIRTH_KEYS) and r["converged"]
    np.testing.assert_allclose(r["params"], e["coef"], rtol=1e-6)
    np.testing.assert_allclose(r["bse"], e["se"], rtol=1e-6)
    np.testing.assert_allclose(r["ci_low"], e["ci_lower"], rtol=1e-6)
    np.testing.assert_allclose(r["ci_high"], e["ci_upper"], rtol=1e-6)
    np.testing.assert_allclose(r["chi2"], e["chisq"], rtol=1e-6)
    np.testing.assert_allclose(r["pvalue"], e["p"], rtol=1e-6)
    assert r["loglik"] == pytest.approx(e["loglik_full"], rel=1e-9)
    # logistf's own test file (tests/testthat/test-basic.R) prints dia = 3.09601263 with
    # tolerance 0.1; both are within logistf's convergence tolerance of each other
    assert r["params"][-1] == pytest.approx(3.09601263, abs=1e-5)


def test_firth_frequency_weights_equal_expanded_rows():
    d, X = _sex2()
    full = firth_logit(d["case"].to_numpy(float), X)
    cells = d.value_counts().reset_index(name="f")
    Xc = np.column_stack([np.ones(len(cells)), cells[SEX2_TERMS].to_numpy(float)])
    agg = firth_logit(cells["case"].to_numpy(float), Xc, weights=cells["f"].to_numpy(float))
    for key in ("params", "bse", "ci_low", "ci_high", "chi2"):
        np.testing.assert_allclose(agg[key], full[key], rtol=1e-8, atol=1e-10)


def test_firth_two_by_two_is_the_half_count_correction():
    """With one binary covariate the model is saturated and Firth's estimate is the log odds
    ratio with 1/2 added to every cell (Firth 1993; Heinze & Schemper 2002, section 2). Table:
    x = 1: 0 events of 22; x = 0: 7 events of 363. By hand: intercept = log(7.5 / 356.5),
    slope = log((0.5 / 22.5) / (7.5 / 356.5))."""
    y = np.r_[np.zeros(22), np.ones(7), np.zeros(356)]
    x = np.r_[np.ones(22), np.zeros(363)]
    r = firth_logit(y, np.column_stack([np.ones_like(x), x]))
    assert r["params"][0] == pytest.approx(math.log(7.5 / 356.5), rel=1e-8)
    assert r["params"][1] == pytest.approx(math.log((0.5 / 22.5) / (7.5 / 356.5)), rel=1e-8)
    assert np.all(np.isfinite(r["ci_low"])) and np.all(np.isfinite(r["ci_high"]))


def _case(name: str) -> pd.DataFrame:
    d = pd.read_csv(REF / "dose_response_inputs.csv")
    return d[d["case"] == name].drop(columns="case")


@pytest.mark.parametrize("name", ["ml_nested", "ml_item_effect"])
def test_dose_response_clustered_matches_r_sandwich(name):
    r = dose_response(_case(name))
    e = EXPECTED[name]
    assert r["separation"] is None and r["estimable"] and r["converged"]
    assert "item-clustered" in r["method"]
    # R's glm keeps the IRLS weights of its last-but-one iterate, which moves the bread of the
    # sandwich (and so the SE) by about 1e-6 relative; p amplifies that by about z^2
    for key in ("intercept", "slope", "slope_se", "slope_ci_low", "slope_ci_high"):
        assert r[key] == pytest.approx(e[key], rel=1e-5), key
    assert r["pvalue"] == pytest.approx(e["pvalue"], rel=1e-4)
    assert r["odds_ratio"] == pytest.approx(math.exp(e["slope"]), rel=1e-5)
    assert r["odds_ratio_ci_low"] == pytest.approx(math.exp(e["slope_ci_low"]), rel=1e-5)


def test_clustering_widens_the_nested_case():
    # items that change at 4 bits also change at 3: rows of one item are correlated, and the
    # clustered SE (0.2092) exceeds the independent-rows SE (0.1816, R's vcov(glm))
    e = EXPECTED["ml_nested"]
    assert e["slope_se"] > 1.1 * e["independent_rows_se"]


def test_duplicated_rows_of_an_item_add_no_information():
    """Copying every row of every item three times (same item ids) leaves the clustered SE as it
    was, up to the small-sample factor (N-1)/(N-2); an independent-rows SE would shrink by
    sqrt(3)."""
    one = _case("ml_nested")
    three = pd.concat([one] * 3, ignore_index=True)
    a, b = dose_response(one), dose_response(three)
    assert b["slope"] == pytest.approx(a["slope"], rel=1e-6)
    n1, n3 = len(one), len(three)
    factor = math.sqrt(((n3 - 1) / (n3 - 2)) / ((n1 - 1) / (n1 - 2)))
    assert b["slope_se"] == pytest.approx(a["slope_se"] * factor, rel=1e-5)
    assert (b["n_rows"], b["n_items"]) == (3 * n1, a["n_items"])


@pytest.mark.parametrize("name, separation", [("firth_complete", "complete"),
                                              ("firth_quasi", "quasi-complete"),
                                              ("firth_quasi_one", "quasi-complete")])
def test_dose_response_separated_matches_logistf(name, separation):
    from scipy.stats import chi2

    r = dose_response(_case(name))
    e = EXPECTED[name]
    assert r["separation"] == separation and r["estimable"] and "Firth" in r["method"]
    assert "separation" in r["note"]
    for key in ("intercept", "slope", "slope_se", "slope_ci_low", "slope_ci_high"):
        assert r[key] == pytest.approx(e[key], rel=1e-6), key
    # R prints p < 2.2e-16 as 0: compare through the likelihood-ratio statistic
    assert r["pvalue"] == pytest.approx(chi2.sf(e["chisq"], 1), rel=1e-6)


def _two_widths(n_items: int, changed_low: int, changed_high: int) -> pd.DataFrame:
    rows = [(f"i{i}", bits, i < k) for bits, k in ((8, changed_low), (3, changed_high))
            for i in range(n_items)]
    return pd.DataFrame(rows, columns=["item", "bits", "became_biased"])


def test_perfect_separation_between_two_bit_widths_by_hand():
    """Nothing changes at 8 bits, every one of 40 items at 3 bits. Two widths make the model
    saturated, so Firth = the half-count correction: logit at 8 bits = log(0.5 / 40.5), at 3 bits
    log(40.5 / 0.5); slope per bit removed = log(81^2) / 5, odds ratio per bit 81^(2/5)."""
    r = dose_response(_two_widths(40, 0, 40))
    assert r["separation"] == "complete" and r["estimable"]
    assert r["slope"] == pytest.approx(2 * math.log(81) / 5, rel=1e-8)
    assert r["odds_ratio"] == pytest.approx(81 ** 0.4, rel=1e-8)
    assert r["intercept"] == pytest.approx(math.log(0.5 / 40.5) - 8 * r["slope"], rel=1e-8)
    assert 0 < r["slope_ci_low"] < r["slope"] < r["slope_ci_high"] and r["pvalue"] < 1e-10
    assert all(math.isfinite(v) for v in r.values() if isinstance(v, float))


@pytest.mark.parametrize("low, high, note", [
    (0, 0, "not estimable: no item became biased at any bit width"),
    (40, 40, "not estimable: every item became biased at every bit width"),
])
def test_no_change_and_every_change_are_not_estimable(low, high, note):
    r = dose_response(_two_widths(40, low, high))
    assert set(r) == set(DOSE_RESPONSE_KEYS)
    assert r["note"] == note and r["estimable"] is False and r["method"] is None
    assert r["slope"] is None and r["odds_ratio"] is None and r["pvalue"] is None
    assert (r["n_rows"], r["n_items"], r["n_levels"]) == (80, 40, 2)


def test_other_not_estimable_inputs_and_bad_input():
    one_width = pd.DataFrame({"item": ["a", "b"], "bits": [4, 4], "became_biased": [True, False]})
    assert dose_response(one_width)["note"] == "not estimable: needs at least two bit widths"
    one_item = pd.DataFrame({"item": ["a"] * 4, "bits": [8, 8, 3, 3],
                             "became_biased": [False, True, True, False]})
    assert dose_response(one_item)["note"] == "not estimable: needs at least two items"
    empty = pd.DataFrame({"item": [], "bits": [], "became_biased": []})
    assert dose_response(empty)["note"] == "not estimable: no rows"
    with pytest.raises(ValueError, match="'item'"):
        dose_response(pd.DataFrame({"bits": [8], "became_biased": [True]}))
    with pytest.raises(ValueError, match="missing item ids"):
        dose_response(pd.DataFrame({"item": ["a", None], "bits": [8, 3],
                                    "became_biased": [False, True]}))


def test_recovers_a_known_slope_and_reference_width_only_moves_the_intercept():
    rng = np.random.default_rng(7)
    bits = np.repeat([8, 6, 4, 3], 10_000)
    p = 1 / (1 + np.exp(-(-4.0 + 0.25 * (16 - bits))))
    data = pd.DataFrame({"item": np.tile(np.arange(10_000), 4), "bits": bits,
                         "became_biased": rng.random(bits.size) < p})
    r = dose_response(data)
    assert r["slope"] == pytest.approx(0.25, abs=0.03)
    assert r["slope_ci_low"] < 0.25 < r["slope_ci_high"] and r["pvalue"] < 1e-10
    r32 = dose_response(data, reference_bits=32)
    assert r32["slope"] == pytest.approx(r["slope"], rel=1e-6)
    assert r32["slope_se"] == pytest.approx(r["slope_se"], rel=1e-6)


def test_never_crashes_and_never_returns_inf_or_nan():
    """Small random tables over 2-4 widths, including every degenerate pattern: a finite result
    or an explicit reason, every time."""
    rng = np.random.default_rng(0)
    for _ in range(150):
        widths = rng.choice([8, 6, 4, 3, 2], size=rng.integers(1, 5), replace=False)
        n_items = int(rng.integers(1, 12))
        rates = rng.choice([0.0, 1.0, 0.05, 0.5, 0.95], size=widths.size)
        rows = [(i, b, bool(rng.random() < q)) for b, q in zip(widths, rates)
                for i in range(n_items)]
        r = dose_response(pd.DataFrame(rows, columns=["item", "bits", "became_biased"]))
        floats = [v for v in r.values() if isinstance(v, float)]
        assert all(math.isfinite(v) for v in floats)
        assert r["estimable"] == (r["slope"] is not None)
        assert r["estimable"] or r["note"].startswith("not estimable")
