"""Statistics pinned to published or independently computed values (sources quoted per test)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lm_eval_bias.metrics.stats import (
    EXACT_BELOW,
    MCNEMAR_KEYS,
    benjamini_hochberg,
    bootstrap_ci,
    bootstrap_counts_ci,
    masked_flipping,
    mcnemar,
)

# Agresti (2007), An Introduction to Categorical Data Analysis, 2nd ed., Table 8.1: approval of
# the President's performance in two surveys a month apart, 1600 Americans:
#   first yes / second yes 794, yes/no 150, no/yes 86, no/no 570.
# Section 8.1.1: "z = (86 - 150) / (86 + 150)^1/2 = -4.17", z^2 = 17.4 on 1 df, P < 0.0001.
AGRESTI = [[794, 150], [86, 570]]


def test_mcnemar_agresti_table_8_1_uncorrected():
    r = mcnemar(AGRESTI, correction=False)
    assert set(r) == set(MCNEMAR_KEYS)
    assert r["method"] == "chi-square"
    assert math.sqrt(r["statistic"]) == pytest.approx(4.17, abs=0.005)
    assert r["statistic"] == pytest.approx(64 ** 2 / 236)          # 17.3559
    assert r["pvalue"] < 1e-4
    assert (r["b"], r["c"], r["n_discordant"]) == (150, 86, 236)


def test_mcnemar_agresti_continuity_corrected_by_hand():
    # Edwards' correction, by hand: (|150 - 86| - 1)^2 / 236 = 3969 / 236 = 16.8178;
    # P(chi2_1 > 16.8178) = 4.1146e-05 (scipy.stats.chi2.sf(3969/236, 1)).
    r = mcnemar(b=150, c=86)
    assert r["method"] == "chi-square, continuity corrected"
    assert r["statistic"] == pytest.approx(3969 / 236)
    assert r["pvalue"] == pytest.approx(4.1146e-05, rel=1e-3)


def test_mcnemar_exact_for_small_counts():
    # b=1, c=9: two-sided binomial, by hand 2 * (C(10,0) + C(10,1)) / 2^10 = 22/1024.
    r = mcnemar(b=1, c=9)
    assert r["method"] == "exact binomial"
    assert r["statistic"] == 1
    assert r["pvalue"] == pytest.approx(22 / 1024)
    # symmetric, and capped at 1 when balanced
    assert mcnemar(b=9, c=1)["pvalue"] == pytest.approx(22 / 1024)
    assert mcnemar(b=3, c=3)["pvalue"] == 1.0
    assert mcnemar(b=0, c=0) == {"b": 0, "c": 0, "n_discordant": 0, "statistic": 0.0,
                                 "pvalue": 1.0, "method": "exact binomial"}


@pytest.mark.parametrize("kwargs, match", [
    ({"b": -1, "c": 2}, "count"),
    ({"b": 1.5, "c": 2}, "count"),
    ({"table": [[1, 2, 3]]}, "2x2"),
    ({"table": [[1, 2], [3, 4]], "b": 1}, "not both"),
    ({"b": 1}, "both b and c"),
])
def test_mcnemar_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mcnemar(**kwargs)


# Benjamini & Hochberg (1995), J. R. Statist. Soc. B 57:289-300, section 4.1: the 15 p-values of
# the myocardial infarction study; at q* = 0.05 "the first four hypotheses are rejected"
# (p <= 0.0095), whereas Bonferroni rejects three.
BH_1995 = [0.0201, 0.7590, 0.0001, 0.0278, 0.0004, 0.4262, 0.0019, 0.0298, 0.0344, 0.5719,
           0.0095, 0.6528, 0.0459, 1.0000, 0.3240]


def test_bh_published_example():
    out = benjamini_hochberg(BH_1995, alpha=0.05)
    assert list(out.columns) == ["pvalue", "qvalue", "reject"]
    rejected = sorted(p for p, r in zip(BH_1995, out["reject"]) if r)
    assert rejected == [0.0001, 0.0004, 0.0019, 0.0095]
    # q of the 4th smallest: min over j >= 4 of 15/j * p_(j) = 15/4 * 0.0095 = 0.035625
    assert out.loc[BH_1995.index(0.0095), "qvalue"] == pytest.approx(0.035625)
    # q of the largest is the p itself
    assert out.loc[BH_1995.index(1.0), "qvalue"] == pytest.approx(1.0)


def test_bh_missing_values_left_out():
    out = benjamini_hochberg([0.01, None, 0.04, float("nan")])
    assert out["qvalue"].isna().tolist() == [False, True, False, True]
    assert out["qvalue"][0] == pytest.approx(0.02)   # m = 2: 2/1 * 0.01
    assert out["qvalue"][2] == pytest.approx(0.04)
    assert out["reject"].tolist() == [True, False, True, False]
    with pytest.raises(ValueError, match="alpha"):
        benjamini_hochberg([0.1], alpha=1.5)


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    x = np.arange(100) % 7
    a = bootstrap_ci(x, "mean", n_boot=500, seed=3)
    b = bootstrap_ci(x, "mean", n_boot=500, seed=3)
    assert a == b
    assert a["estimate"] == pytest.approx(x.mean())
    assert a["ci_low"] < a["estimate"] < a["ci_high"]
    with pytest.raises(ValueError, match=r"\['mean', 'sum', 'median'\]"):
        bootstrap_ci(x, "mode")


def test_bootstrap_coverage_sanity():
    """95% percentile CIs of a Bernoulli(0.3) mean (n = 300) cover the truth in about 95% of 300
    simulated data sets (binomial sd of the coverage at 300 reps: 1.3 points)."""
    rng = np.random.default_rng(11)
    hits = hits_counts = 0
    reps = 300
    for i in range(reps):
        x = (rng.random(300) < 0.3).astype(float)
        r = bootstrap_ci(x, "mean", n_boot=400, seed=i)
        hits += r["ci_low"] <= 0.3 <= r["ci_high"]
        k = int(x.sum())
        rc = bootstrap_counts_ci([300 - k, k], lambda c: c[..., 1] / c.sum(-1), n_boot=400,
                                 seed=i)
        hits_counts += rc["ci_low"] <= 0.3 <= rc["ci_high"]
    assert 0.90 <= hits / reps <= 0.99
    assert 0.90 <= hits_counts / reps <= 0.99


def test_paired_bootstrap_uses_the_pairing():
    rng = np.random.default_rng(5)
    base = rng.normal(size=400)
    other = base + 0.1 + rng.normal(scale=0.05, size=400)   # strongly correlated pairs
    paired = bootstrap_ci(base, "mean", paired_with=other, n_boot=1000, seed=1)
    assert paired["method"] == "paired percentile bootstrap"
    assert paired["estimate"] == pytest.approx((other - base).mean())
    assert 0.09 < paired["ci_low"] < paired["estimate"] < paired["ci_high"] < 0.11
    # unpaired resampling of the two means would give a CI about 20x wider
    sd_unpaired = math.sqrt(base.var() / 400 + other.var() / 400)
    assert paired["ci_high"] - paired["ci_low"] < 0.2 * 2 * 1.96 * sd_unpaired


def test_counts_bootstrap_matches_index_bootstrap():
    x = np.array([1.0] * 120 + [0.0] * 280)
    a = bootstrap_ci(x, "mean", n_boot=4000, seed=0)
    b = bootstrap_counts_ci([280, 120], lambda c: c[..., 1] / c.sum(-1), n_boot=4000, seed=0)
    assert b["estimate"] == pytest.approx(0.3)
    assert b["ci_low"] == pytest.approx(a["ci_low"], abs=0.01)
    assert b["ci_high"] == pytest.approx(a["ci_high"], abs=0.01)
    # undefined statistic -> None, never NaN
    empty = bootstrap_counts_ci([5, 0], lambda c: c[..., 1] / c[..., 1])
    assert empty["estimate"] is None and empty["ci_low"] is None


def test_masked_flipping():
    units = pd.DataFrame({"flips": [10, 5, 3], "n": [100, 50, 30],
                          "significant": [True, False, None]})
    r = masked_flipping(units)
    assert r["masked_flips"] == 8 and r["flips"] == 18
    assert r["masked_share"] == pytest.approx(8 / 18)
    assert r["masked_flip_rate"] == pytest.approx(8 / 80)
    assert r["n_units_not_significant"] == 2


# McNemar against R 4.2.2's stats::mcnemar.test (chi-square, with and without correction) and
# stats::binom.test (exact), run on the same tables (R printed these with 15 digits):
#   Rscript -e 'mcnemar.test(matrix(c(794, 86, 150, 570), nrow = 2))' ...
R_MCNEMAR = [  # b, c, chi2 corrected, p corrected, chi2, p, exact binomial p
    (150, 86, 16.8177966101695, 4.11456228134594e-05, 17.3559322033898, 3.09929344104522e-05,
     3.71593613957143e-05),
    (1, 9, 4.9, 0.0268566955075243, 6.4, 0.0114120363860017, 0.021484375),
    (30, 0, 28.0333333333333, 1.19243668544168e-07, 30.0, 4.3204630578275e-08,
     1.86264514923096e-09),
    (40, 10, 16.82, 4.10978780994588e-05, 18.0, 2.20904969985854e-05, 2.38613316767556e-05),
]


@pytest.mark.parametrize("b, c, x2c, pc, x2, p, p_exact", R_MCNEMAR)
def test_mcnemar_matches_r(b, c, x2c, pc, x2, p, p_exact):
    corrected = mcnemar(b=b, c=c, exact=False)
    assert corrected["statistic"] == pytest.approx(x2c, rel=1e-12)
    assert corrected["pvalue"] == pytest.approx(pc, rel=1e-9)
    plain = mcnemar(b=b, c=c, exact=False, correction=False)
    assert plain["statistic"] == pytest.approx(x2, rel=1e-12)
    assert plain["pvalue"] == pytest.approx(p, rel=1e-9)
    exact = mcnemar(b=b, c=c, exact=True)
    assert exact["pvalue"] == pytest.approx(p_exact, rel=1e-9)
    assert exact["statistic"] == min(b, c)


def test_mcnemar_matches_scipy_binomtest_on_a_grid():
    """The exact branch against scipy's binomial test (independent of statsmodels)."""
    from scipy.stats import binomtest

    for n in range(1, EXACT_BELOW):
        for b in range(n + 1):
            expected = binomtest(min(b, n - b), n, 0.5).pvalue
            assert mcnemar(b=b, c=n - b)["pvalue"] == pytest.approx(min(1.0, expected),
                                                                      rel=1e-12)


def test_bootstrap_of_a_proportion_matches_the_binomial():
    """Golden values without any bootstrap code: resampling n 0/1 values with k ones gives a
    mean distributed exactly as Binomial(n, k/n) / n, so with many resamples the percentile CI
    is the binomial quantiles (scipy.stats.binom.ppf), within one grid step 1/n."""
    from scipy.stats import binom

    n, k = 200, 60
    x = np.r_[np.ones(k), np.zeros(n - k)]
    lo, hi = binom.ppf(0.025, n, k / n) / n, binom.ppf(0.975, n, k / n) / n    # 0.24, 0.365
    for r in (bootstrap_ci(x, "mean", n_boot=40_000, seed=1),
              bootstrap_counts_ci([n - k, k], lambda c: c[..., 1] / c.sum(-1), n_boot=40_000,
                                  seed=1)):
        assert r["estimate"] == pytest.approx(0.3)
        assert r["ci_low"] == pytest.approx(lo, abs=1 / n)
        assert r["ci_high"] == pytest.approx(hi, abs=1 / n)


def test_bootstrap_agrees_with_scipy_percentile_bootstrap():
    """Same data, same percentile method, different random streams: scipy.stats.bootstrap and
    ours agree within Monte-Carlo error (unpaired mean; paired mean difference)."""
    from scipy.stats import bootstrap

    rng = np.random.default_rng(3)
    a = rng.normal(size=300)
    b = a + 0.2 + rng.normal(scale=0.3, size=300)
    ours = bootstrap_ci(a, "mean", n_boot=20_000, seed=0)
    ref = bootstrap((a,), np.mean, n_resamples=20_000, method="percentile",
                    random_state=np.random.default_rng(1)).confidence_interval
    assert ours["ci_low"] == pytest.approx(ref.low, abs=0.005)
    assert ours["ci_high"] == pytest.approx(ref.high, abs=0.005)
    paired = bootstrap_ci(a, "mean", paired_with=b, n_boot=20_000, seed=0)
    ref = bootstrap((a, b), lambda u, v, axis=-1: np.mean(v - u, axis=axis), paired=True,
                    n_resamples=20_000, method="percentile",
                    random_state=np.random.default_rng(1)).confidence_interval
    assert paired["ci_low"] == pytest.approx(ref.low, abs=0.003)
    assert paired["ci_high"] == pytest.approx(ref.high, abs=0.003)


# Degenerate inputs a report meets, by hand.


def test_nothing_changed():
    assert mcnemar(b=0, c=0)["pvalue"] == 1.0
    r = bootstrap_counts_ci([500, 0], lambda c: c[..., 1] / c.sum(-1), n_boot=200)
    assert (r["estimate"], r["ci_low"], r["ci_high"]) == (0.0, 0.0, 0.0)
    bh = benjamini_hochberg([1.0, 1.0, 1.0])
    assert bh["qvalue"].tolist() == [1.0, 1.0, 1.0] and not bh["reject"].any()


def test_every_item_changed():
    # 20 items all flip one way (< EXACT_BELOW): exact binomial 2 * 0.5^20;
    # 40 items: chi-square (|40 - 0| - 1)^2 / 40 = 38.025
    assert mcnemar(b=20, c=0)["pvalue"] == pytest.approx(2 * 0.5 ** 20)
    assert mcnemar(b=40, c=0)["statistic"] == pytest.approx(39 ** 2 / 40)
    r = bootstrap_counts_ci([0, 500], lambda c: c[..., 1] / c.sum(-1), n_boot=200)
    assert (r["estimate"], r["ci_low"], r["ci_high"]) == (1.0, 1.0, 1.0)
    x = np.ones(50)
    r = bootstrap_ci(x, "mean", n_boot=200)
    assert (r["estimate"], r["ci_low"], r["ci_high"]) == (1.0, 1.0, 1.0)


def test_bh_equals_scipy_false_discovery_control():
    """The one BH of the package (statsmodels fdr_bh) against scipy's independent implementation,
    with ties and p = 1 included; missing values are left out of m in both."""
    from scipy.stats import false_discovery_control

    rng = np.random.default_rng(2)
    p = np.r_[rng.uniform(size=40) ** 3, [0.01, 0.01, 1.0, 1.0]]
    np.testing.assert_allclose(benjamini_hochberg(p)["qvalue"], false_discovery_control(p),
                               rtol=1e-12)
    with_missing = benjamini_hochberg([0.03, None, 0.2, 0.01])["qvalue"].to_numpy()
    np.testing.assert_allclose(with_missing[[0, 2, 3]],
                               false_discovery_control([0.03, 0.2, 0.01]), rtol=1e-12)
