"""Significance for item-level change: McNemar, Benjamini-Hochberg, bootstrap CIs, dose-response.

Pure functions, no I/O (pingouin's shape: one function per test, fixed output keys, the formula and
the reference in the docstring). Definitions: `/work/shared/METRICS.md`, "Significance" and
"Dose-response". The computations are statsmodels' own; this module chooses the variant, checks
the input and returns plain Python values (floats, or None where a value is undefined; never NaN).

Functions
---------
`mcnemar`               paired test of two binary labels (e.g. an item's biased label in two runs)
`benjamini_hochberg`    false-discovery-rate adjusted p-values (q-values) over a family of tests
`bootstrap_ci`          seeded percentile bootstrap CI of a statistic of item values; paired when
                        a second array of the same items is given (difference between two runs)
`bootstrap_counts_ci`   the same bootstrap for statistics of category counts, drawn as multinomial
                        counts (exactly equivalent in distribution, and O(n_boot * cells) fast)
`dose_response`         logistic regression of "item became biased" on bits removed (S2)
`masked_flipping`       share of flips inside units whose aggregate did not change significantly
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

#: Below this many discordant pairs (b + c) `mcnemar` uses the exact binomial test.
EXACT_BELOW = 25

MCNEMAR_KEYS = ("b", "c", "n_discordant", "statistic", "pvalue", "method")
DOSE_RESPONSE_KEYS = ("n", "n_events", "n_levels", "intercept", "slope", "slope_se", "slope_ci_low",
                      "slope_ci_high", "odds_ratio", "odds_ratio_ci_low", "odds_ratio_ci_high",
                      "pvalue", "converged", "note")
_STATISTICS = ("mean", "sum", "median")


def _finite(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


# ----------------------------------------------------------------------------- McNemar


def mcnemar(table: Sequence[Sequence[int]] | None = None, *, b: int | None = None,
            c: int | None = None, exact: bool | None = None, correction: bool = True) -> dict:
    """McNemar's test of marginal homogeneity of a paired 2x2 table.

    ``table = [[n00, n01], [n10, n11]]`` counts items by (label in run A, label in run B); only the
    discordant cells ``b = n01`` (e.g. unbiased -> biased) and ``c = n10`` (biased -> unbiased)
    matter, so they may be given directly as ``b=``, ``c=``.

    - exact (default when ``b + c < EXACT_BELOW`` = 25): two-sided binomial test of
      ``min(b, c)`` successes in ``b + c`` trials with p = 1/2; ``statistic = min(b, c)``.
    - chi-square (otherwise): ``X2 = (|b - c| - 1)^2 / (b + c)`` on 1 degree of freedom
      (Edwards' continuity correction; ``correction=False`` gives ``(b - c)^2 / (b + c)``).

    With ``b + c = 0`` nothing changed: p = 1.

    Returns a dict with keys `MCNEMAR_KEYS`: ``b, c, n_discordant, statistic, pvalue`` and
    ``method`` ("exact binomial" / "chi-square, continuity corrected" / "chi-square").

    Reference: McNemar (1947), Psychometrika 12:153-157; Agresti (2007), *An Introduction to
    Categorical Data Analysis*, 2nd ed., section 8.1. Computed by
    `statsmodels.stats.contingency_tables.mcnemar`.

    >>> mcnemar(b=86, c=150)["method"]
    'chi-square, continuity corrected'
    """
    if table is not None:
        if b is not None or c is not None:
            raise ValueError("give either table or b and c, not both")
        arr = np.asarray(table)
        if arr.shape != (2, 2):
            raise ValueError(f"table must be 2x2, got shape {arr.shape}")
        b, c = arr[0, 1], arr[1, 0]
    if b is None or c is None:
        raise ValueError("give a 2x2 table or both b and c")
    for name, v in (("b", b), ("c", c)):
        if isinstance(v, bool) or not float(v).is_integer() or v < 0:
            raise ValueError(f"{name} must be a count (integer >= 0), got {v!r}")
    b, c = int(b), int(c)
    n = b + c
    if exact is None:
        exact = n < EXACT_BELOW
    if n == 0:
        return {"b": 0, "c": 0, "n_discordant": 0, "statistic": 0.0, "pvalue": 1.0,
                "method": "exact binomial" if exact else "chi-square"}
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    res = sm_mcnemar([[0, b], [c, 0]], exact=exact, correction=correction)
    if exact:
        method = "exact binomial"
    else:
        method = "chi-square, continuity corrected" if correction else "chi-square"
    return {"b": b, "c": c, "n_discordant": n, "statistic": float(res.statistic),
            "pvalue": min(1.0, float(res.pvalue)), "method": method}


# ----------------------------------------------------------------------------- BH


def benjamini_hochberg(pvalues: Sequence[float | None], alpha: float = 0.05) -> pd.DataFrame:
    """Benjamini-Hochberg step-up adjustment over one family of tests.

    ``q_(i) = min_{j >= i} (m / j) * p_(j)`` over the sorted p-values (capped at 1), where m is
    the number of tests with a p-value; a test is rejected at FDR `alpha` when ``q <= alpha``.
    Missing p-values (None / NaN: no test possible) are left out of m and get q None.

    Returns a DataFrame in the input order with columns ``pvalue, qvalue, reject`` (``reject`` is
    False where the p-value is missing).

    Reference: Benjamini & Hochberg (1995), J. R. Statist. Soc. B 57:289-300. Computed by
    `statsmodels.stats.multitest.multipletests(method="fdr_bh")`.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    p = np.asarray([np.nan if v is None else float(v) for v in pvalues], dtype=float)
    if np.any((p < 0) | (p > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    q = np.full(p.shape, np.nan)
    reject = np.zeros(p.shape, dtype=bool)
    ok = ~np.isnan(p)
    if ok.any():
        from statsmodels.stats.multitest import multipletests

        rej, qv, _, _ = multipletests(p[ok], alpha=alpha, method="fdr_bh")
        q[ok] = qv
        reject[ok] = rej
    return pd.DataFrame({"pvalue": p, "qvalue": q, "reject": reject})


# ----------------------------------------------------------------------------- bootstrap


def _percentile_ci(boot: np.ndarray, ci: float) -> tuple[float | None, float | None]:
    boot = boot[np.isfinite(boot)]
    if boot.size == 0:
        return None, None
    lo, hi = np.quantile(boot, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    return float(lo), float(hi)


def _check_boot(n_boot: int, ci: float) -> None:
    if isinstance(n_boot, bool) or int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be an integer >= 1, got {n_boot!r}")
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci!r}")


def bootstrap_ci(values: Sequence[float] | np.ndarray, statistic: str | Callable = "mean", *,
                 paired_with: Sequence[float] | np.ndarray | None = None, n_boot: int = 2000,
                 seed: int = 0, ci: float = 0.95) -> dict:
    """Seeded percentile bootstrap CI of ``statistic(values)`` over items.

    Resamples the n items with replacement `n_boot` times (``numpy.random.default_rng(seed)``) and
    takes the ``(1 - ci) / 2`` and ``1 - (1 - ci) / 2`` quantiles of the resampled statistic.
    Paired (``paired_with`` = the same items in a second run): the *same* resampled indices are
    applied to both arrays and the statistic of the difference ``statistic(paired_with) -
    statistic(values)`` is bootstrapped, which keeps the item-level correlation.

    `statistic` is one of "mean", "sum", "median" or a function of a 1-D array (applied row-wise to
    a 2-D array of resamples when it takes ``axis=``). Values that are NaN are left out before
    resampling (pairwise when paired).

    Returns ``{"estimate", "ci_low", "ci_high", "n", "n_boot", "ci", "method"}`` (None where
    undefined). Reference: Efron & Tibshirani (1993), *An Introduction to the Bootstrap*, ch. 13.
    """
    _check_boot(n_boot, ci)
    if isinstance(statistic, str):
        if statistic not in _STATISTICS:
            raise ValueError(f"statistic must be one of {list(_STATISTICS)} or a function, "
                             f"got {statistic!r}")
        fn = getattr(np, statistic)
    else:
        fn = statistic
    x = np.asarray(values, dtype=float)
    y = None if paired_with is None else np.asarray(paired_with, dtype=float)
    if y is not None and y.shape != x.shape:
        raise ValueError(f"paired_with must have the shape of values: {y.shape} != {x.shape}")
    keep = np.isfinite(x) if y is None else (np.isfinite(x) & np.isfinite(y))
    x = x[keep]
    y = None if y is None else y[keep]
    n = int(x.size)
    method = "paired percentile bootstrap" if y is not None else "percentile bootstrap"
    out = {"estimate": None, "ci_low": None, "ci_high": None, "n": n, "n_boot": int(n_boot),
           "ci": ci, "method": method}
    if n == 0:
        return out

    def stat(a: np.ndarray) -> np.ndarray:
        try:
            return np.asarray(fn(a, axis=-1), dtype=float)
        except TypeError:
            return np.asarray([fn(r) for r in np.atleast_2d(a)], dtype=float)

    est = stat(x[None, :])[0] if y is None else stat(y[None, :])[0] - stat(x[None, :])[0]
    rng = np.random.default_rng(seed)
    boots = []
    chunk = max(1, min(int(n_boot), 4_000_000 // max(n, 1)))
    done = 0
    while done < n_boot:
        k = min(chunk, n_boot - done)
        idx = rng.integers(0, n, size=(k, n))
        boots.append(stat(x[idx]) if y is None else stat(y[idx]) - stat(x[idx]))
        done += k
    lo, hi = _percentile_ci(np.concatenate(boots), ci)
    out.update(estimate=_finite(est), ci_low=lo, ci_high=hi)
    return out


def bootstrap_counts_ci(counts: Sequence[int] | np.ndarray,
                        statistic: Callable[[np.ndarray], np.ndarray], *, n_boot: int = 2000,
                        seed: int = 0, ci: float = 0.95) -> dict:
    """Percentile bootstrap CI of a statistic that depends on the items only through the counts
    of K categories (accuracy, a bias score, a flip rate, or a paired difference of them: then
    the categories are the joint (run A, run B) cells).

    Resampling n items with replacement gives category counts ~ Multinomial(n, counts / n), so
    the bootstrap draws those counts directly (``default_rng(seed).multinomial``): the same
    distribution as `bootstrap_ci`'s index resampling at O(n_boot * K) cost, which is what makes
    CIs over a million records cheap.

    `statistic` maps an array of counts of shape (..., K) to values of shape (...); it may return
    NaN (undefined), which is left out of the quantiles. Returns ``{"estimate", "ci_low",
    "ci_high", "n", "n_boot", "ci", "method"}``.
    """
    _check_boot(n_boot, ci)
    c = np.asarray(counts, dtype=np.int64)
    if c.ndim != 1 or np.any(c < 0):
        raise ValueError("counts must be a 1-D array of integers >= 0")
    n = int(c.sum())
    out = {"estimate": None, "ci_low": None, "ci_high": None, "n": n, "n_boot": int(n_boot),
           "ci": ci, "method": "percentile bootstrap (multinomial counts)"}
    if n == 0:
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        est = float(np.asarray(statistic(c[None, :]), dtype=float).reshape(-1)[0])
        draws = np.random.default_rng(seed).multinomial(n, c / n, size=int(n_boot))
        boot = np.asarray(statistic(draws), dtype=float).reshape(-1)
    lo, hi = _percentile_ci(boot, ci)
    out.update(estimate=_finite(est), ci_low=lo, ci_high=hi)
    return out


# ----------------------------------------------------------------------------- dose-response


def dose_response(data: pd.DataFrame, *, bits: str = "bits", outcome: str = "became_biased",
                  reference_bits: float = 16.0, ci: float = 0.95) -> dict:
    """Logistic regression of "item became biased" on bits removed (S2's dose-response).

    Model: ``logit P(outcome = 1) = intercept + slope * (reference_bits - bits)``, fitted by
    maximum likelihood (`statsmodels.api.Logit`) on one row per (item, precision): the items that
    were unbiased in the reference run, with ``outcome`` = their label is biased at that precision.
    ``slope > 0`` means: the fewer bits, the more items turn biased; ``odds_ratio = exp(slope)`` is
    the odds ratio per bit removed, with the Wald CI ``exp(slope +- z * se)`` and Wald p-value.
    The slope does not depend on `reference_bits` (it only moves the intercept).

    Returns a dict with keys `DOSE_RESPONSE_KEYS`; the estimates are None (and ``note`` says why)
    with fewer than two bit widths, an outcome that never or always occurs, or a fit that fails
    (e.g. perfect separation).

    Reference: S2 ("Quantization Undoes Alignment", 2026); Agresti (2007), ch. 4-5.
    """
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci!r}")
    missing = [c for c in (bits, outcome) if c not in data.columns]
    if missing:
        raise ValueError(f"data lacks column(s) {missing}; required: [{bits!r}, {outcome!r}]")
    x = pd.to_numeric(data[bits], errors="coerce").to_numpy(float)
    y = pd.array(data[outcome], dtype="boolean")
    keep = np.isfinite(x) & ~np.asarray(y.isna())
    x = reference_bits - x[keep]
    y = np.asarray(y[keep], dtype=float)
    out = {k: None for k in DOSE_RESPONSE_KEYS}
    out.update(n=int(y.size), n_events=int(y.sum()), n_levels=int(np.unique(x).size),
               converged=False, note=None)
    if out["n_levels"] < 2:
        out["note"] = "needs at least two bit widths"
        return out
    if out["n_events"] in (0, out["n"]):
        out["note"] = "no item became biased" if out["n_events"] == 0 else "every item became biased"
        return out
    import statsmodels.api as sm
    from scipy.stats import norm

    exog = np.column_stack([np.ones_like(x), x])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = sm.Logit(y, exog).fit(disp=0, maxiter=100)
    except Exception as exc:  # statsmodels raises several types on separation / singularity
        out["note"] = f"fit failed: {type(exc).__name__}"
        return out
    params, se = np.asarray(fit.params, float), np.asarray(fit.bse, float)
    if not (np.all(np.isfinite(params)) and np.all(np.isfinite(se))) or se[1] > 1e3:
        out["note"] = "fit did not converge (separation?)"
        return out
    z = float(norm.ppf(1 - (1 - ci) / 2))
    slope, s = float(params[1]), float(se[1])
    out.update(intercept=float(params[0]), slope=slope, slope_se=s,
               slope_ci_low=slope - z * s, slope_ci_high=slope + z * s,
               odds_ratio=math.exp(slope), odds_ratio_ci_low=math.exp(slope - z * s),
               odds_ratio_ci_high=math.exp(slope + z * s),
               pvalue=_finite(np.asarray(fit.pvalues)[1]),
               converged=bool(fit.mle_retvals.get("converged", False)))
    return {k: (_finite(v) if isinstance(v, float) else v) for k, v in out.items()}


# ----------------------------------------------------------------------------- masked flipping


def masked_flipping(units: pd.DataFrame, *, flips: str = "flips", n: str = "n",
                    significant: str = "significant") -> dict:
    """Share of flipped items that sit inside units (tasks, groups) whose aggregate score did not
    change significantly (S3's "masked flipping").

    ``masked_share = sum(flips of non-significant units) / sum(flips of all units)``;
    ``masked_flip_rate = sum(flips of non-significant units) / sum(n of non-significant units)``.
    A unit whose significance is missing (no test possible) counts as not significant.

    Returns ``{"n_units", "n_units_not_significant", "flips", "masked_flips", "masked_share",
    "n_items_not_significant", "masked_flip_rate"}`` (rates None when the denominator is 0).
    """
    missing = [c for c in (flips, n, significant) if c not in units.columns]
    if missing:
        raise ValueError(f"units lacks column(s) {missing}; required: [{flips!r}, {n!r}, "
                         f"{significant!r}]")
    sig = pd.array(units[significant], dtype="boolean").fillna(False).to_numpy(bool)
    f = units[flips].to_numpy(np.int64)
    m = units[n].to_numpy(np.int64)
    total, masked, n_ns = int(f.sum()), int(f[~sig].sum()), int(m[~sig].sum())
    return {"n_units": int(len(units)), "n_units_not_significant": int((~sig).sum()),
            "flips": total, "masked_flips": masked,
            "masked_share": masked / total if total else None,
            "n_items_not_significant": n_ns,
            "masked_flip_rate": masked / n_ns if n_ns else None}
