"""Significance for item-level change: McNemar, Benjamini-Hochberg, bootstrap CIs, dose-response.

Pure functions, no I/O (pingouin's shape: one function per test, fixed output keys, the formula and
the reference in the docstring). Definitions: docs/metrics.md, "Statistics". McNemar, BH and the
ML logistic fit are statsmodels' own; this module chooses the variant, checks the input and
returns plain Python values (floats, or None where a value is undefined; never NaN or inf). The
Firth fit is ours (statsmodels has none), pinned to R's logistf.

Functions
---------
`mcnemar`               paired test of two binary labels (e.g. an item's biased label in two runs)
`benjamini_hochberg`    false-discovery-rate adjusted p-values (q-values) over a family of tests;
                        the package's one BH implementation
`bootstrap_ci`          seeded percentile bootstrap CI of a statistic of item values; paired when
                        a second array of the same items is given (difference between two runs)
`bootstrap_counts_ci`   the same bootstrap for statistics of category counts, drawn as multinomial
                        counts (exactly equivalent in distribution, and O(n_boot * cells) fast)
`firth_logit`           Firth's penalised logistic regression with profile-likelihood CIs
`dose_response`         logistic regression of "item became biased" on bits removed (S2), with
                        item-clustered errors; Firth's fit under separation
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
DOSE_RESPONSE_KEYS = ("estimable", "method", "separation", "note", "n_rows", "n_items", "n_events",
                      "n_levels", "intercept", "slope", "slope_se", "slope_ci_low", "slope_ci_high",
                      "odds_ratio", "odds_ratio_ci_low", "odds_ratio_ci_high", "pvalue",
                      "converged")
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


# ----------------------------------------------------------------------------- Firth
#
# Why our own code: statsmodels (0.14, 0.15) has no Firth-penalised logistic regression, and a
# dose-response over few bit widths is often separated (nothing changes at 8 bits, most items
# change at 3), where the maximum-likelihood slope is infinite. The implementation below follows
# the published method (Firth 1993; Heinze & Schemper 2002, the algorithm of R's logistf) and is
# pinned to logistf's figures (its sex2 data set) in tests/metrics/test_dose_response.py.

FIRTH_KEYS = ("params", "bse", "ci_low", "ci_high", "chi2", "pvalue", "loglik", "converged",
              "n_iter")
_MAX_STEP = 5.0          # logistf's default maxstep: no Newton step moves a coefficient further


def _firth_state(beta: np.ndarray, X: np.ndarray, y: np.ndarray, f: np.ndarray,
                 augmented: bool = False):
    """Penalised log-likelihood, its gradient (the modified score) and the Fisher information
    (`augmented`: of logistf's augmented data, weights ``(f + h) p (1 - p)``)."""
    from scipy.special import expit

    eta = X @ beta
    p = expit(eta)
    w = f * p * expit(-eta)              # p (1 - p) without cancellation for large |eta|
    info = (X * w[:, None]).T @ X
    sign, logdet = np.linalg.slogdet(info)
    if sign <= 0:
        return -math.inf, None, info
    ll = float(np.sum(f * (y * eta - np.logaddexp(0.0, eta)))) + 0.5 * float(logdet)
    h = w * np.einsum("ij,jk,ik->i", X, np.linalg.inv(info), X)     # hat-matrix diagonal
    score = X.T @ (f * (y - p) + h * (0.5 - p))
    if augmented:
        info = (X * (w + h * p * (1.0 - p))[:, None]).T @ X
    return ll, score, info


def _firth_maximise(X, y, f, beta, free, maxiter=200, tol=1e-10):
    """Newton-Raphson with step halving on the penalised log-likelihood over the `free`
    coefficients (the others stay fixed: that is the profile likelihood). Converged when the full
    Newton step is below ``tol * max(1, max |beta|)``."""
    ll, score, info = _firth_state(beta, X, y, f)
    if not free.any():
        return beta, ll, score is not None, 0
    for it in range(1, maxiter + 1):
        if score is None:
            return beta, ll, False, it
        step = np.zeros_like(beta)
        step[free] = np.linalg.solve(info[np.ix_(free, free)], score[free])
        biggest = np.max(np.abs(step))
        if biggest <= tol * max(1.0, float(np.max(np.abs(beta)))):
            c_ll, c_score, _ = _firth_state(beta + step, X, y, f)
            if c_score is not None:          # the last, tiny Newton step
                beta, ll = beta + step, c_ll
            return beta, ll, True, it
        if biggest > _MAX_STEP:
            step *= _MAX_STEP / biggest
        for _ in range(30):
            cand = beta + step
            c_ll, c_score, c_info = _firth_state(cand, X, y, f)
            if c_ll >= ll - 1e-12:
                break
            step /= 2.0
        else:
            return beta, ll, False, it
        beta, ll, score, info = cand, c_ll, c_score, c_info
    return beta, ll, False, maxiter


def _profile_loglik(X, y, f, beta_hat, j, b):
    """max over the other coefficients of the penalised log-likelihood with coefficient j = b.

    The fit starts at the estimate with b_j moved and, where a free column is constant (the
    intercept), the linear predictor kept at the weighted mean of x_j: from there Newton needs
    few steps and never starts on fitted probabilities of exactly 0 or 1."""
    free = np.ones(beta_hat.size, dtype=bool)
    free[j] = False
    beta = beta_hat.copy()
    beta[j] = b
    const = [c for c in np.flatnonzero(free) if np.ptp(X[:, c]) == 0 and X[0, c] != 0]
    if const and f.sum() > 0:
        beta[const[0]] += (beta_hat[j] - b) * float(np.average(X[:, j], weights=f)) / X[0, const[0]]
    return _firth_maximise(X, y, f, beta, free)[1]


def _profile_bound(X, y, f, beta_hat, j, target, direction, scale):
    """Where the profile penalised log-likelihood of coefficient j falls to `target`, searching
    from the estimate in `direction` (+1 / -1); None when not found within 2^30 * scale."""
    from scipy.optimize import brentq

    def gap(b: float) -> float:
        return _profile_loglik(X, y, f, beta_hat, j, b) - target

    inner = float(beta_hat[j])
    for k in range(31):
        outer = float(beta_hat[j]) + direction * scale * 2.0 ** k
        if gap(outer) < 0:
            try:
                return float(brentq(gap, min(inner, outer), max(inner, outer), xtol=1e-10))
            except ValueError:         # the profile was not monotone between the two points
                return None
        inner = outer
    return None


def firth_logit(y: Sequence[float] | np.ndarray, X: np.ndarray, *,
                weights: Sequence[float] | np.ndarray | None = None, ci: float = 0.95,
                profile: Sequence[int] | None = None) -> dict:
    """Firth's penalised-likelihood logistic regression, with profile penalised-likelihood CIs
    and penalised likelihood-ratio tests (as R's logistf does by default).

    Maximises ``l*(b) = l(b) + 1/2 log det I(b)``, the log-likelihood plus Jeffreys' prior, where
    ``I(b) = X' W X``, ``W = diag(f p (1 - p))``. Its gradient is the modified score
    ``U*(b) = X' (f (y - p) + h (1/2 - p))`` with ``h`` the diagonal of the weighted hat matrix
    ``W^1/2 X I^-1 X' W^1/2``. The estimate is finite even under complete separation.

    - ``bse``: logistf's "se(coef)", ``sqrt(diag((X' W+ X)^-1))`` with ``W+ = diag((f + h) p
      (1 - p))``, the information of the augmented data whose plain ML fit is the Firth fit
      (Heinze & Schemper 2002, section 2); only informational: CIs and p are profile-based.
    - ``ci_low, ci_high``: where ``2 (l*(b_hat) - max_{b_-j} l*(b_j, b_-j))`` equals the
      chi-square(1) quantile `ci`; NaN where it is not reached within 2^30 standard errors.
    - ``chi2, pvalue``: the same statistic at ``b_j = 0`` and its chi-square(1) tail.
    - ``loglik``: the maximised penalised log-likelihood.

    `X` includes the intercept column; `weights` are frequency weights (rows that stand for
    several identical observations), so aggregated data give the results of the expanded data.
    `profile`: the column indices that get CIs and tests (default all; the others get NaN).
    Returns a dict with keys `FIRTH_KEYS` (arrays in the column order of `X`).

    References: Firth (1993), Biometrika 80:27-38; Heinze & Schemper (2002), Statistics in
    Medicine 21:2409-2419; R package logistf (Heinze et al.).
    """
    from scipy.stats import chi2 as chi2_dist

    y = np.asarray(y, dtype=float)
    X = np.atleast_2d(np.asarray(X, dtype=float))
    f = np.ones_like(y) if weights is None else np.asarray(weights, dtype=float)
    if X.shape[0] != y.size or f.shape != y.shape:
        raise ValueError(f"X, y and weights must have one row per observation: {X.shape}, "
                         f"{y.shape}, {f.shape}")
    if not np.all(np.isin(y, (0.0, 1.0))) or np.any(f < 0):
        raise ValueError("y must be 0/1 and weights >= 0")
    k = X.shape[1]
    beta, ll, converged, n_iter = _firth_maximise(X, y, f, np.zeros(k), np.ones(k, dtype=bool))
    _, _, info = _firth_state(beta, X, y, f, augmented=True)
    bse = np.sqrt(np.diag(np.linalg.inv(info)))
    crit = float(chi2_dist.ppf(ci, 1))
    lo, hi, stat = np.full(k, np.nan), np.full(k, np.nan), np.full(k, np.nan)
    for j in range(k) if profile is None else profile:
        scale = max(float(bse[j]), 0.1)
        for arr, direction in ((lo, -1), (hi, 1)):
            bound = _profile_bound(X, y, f, beta, j, ll - crit / 2, direction, scale)
            arr[j] = np.nan if bound is None else bound
        ll0 = _profile_loglik(X, y, f, beta, j, 0.0)
        stat[j] = max(0.0, 2.0 * (ll - ll0))
    return {"params": beta, "bse": bse, "ci_low": lo, "ci_high": hi, "chi2": stat,
            "pvalue": chi2_dist.sf(stat, 1), "loglik": ll, "converged": converged,
            "n_iter": n_iter}


# ----------------------------------------------------------------------------- dose-response


def _separation(x: np.ndarray, y: np.ndarray) -> str | None:
    """Separation of a 0/1 outcome by one covariate (with an intercept): the ML estimate exists
    iff no threshold of x splits the outcomes. "complete": a strict split; "quasi-complete": a
    split that shares one x value. None: the ML estimate exists."""
    x1, x0 = x[y == 1], x[y == 0]
    for low, high in ((x0, x1), (x1, x0)):
        if high.min() > low.max():
            return "complete"
        if high.min() == low.max():
            return "quasi-complete"
    return None


def _dose_input(data: pd.DataFrame, bits: str, outcome: str, item: str,
                reference_bits: float):
    missing = [c for c in (bits, outcome, item) if c not in data.columns]
    if missing:
        raise ValueError(f"data lacks column(s) {missing}; required: [{bits!r}, {outcome!r}, "
                         f"{item!r}]")
    x = pd.to_numeric(data[bits], errors="coerce").to_numpy(float)
    y = pd.array(data[outcome], dtype="boolean")
    keep = np.isfinite(x) & ~np.asarray(y.isna())
    items = data[item].to_numpy(object)[keep]
    if pd.isna(pd.Series(items, dtype=object)).any():
        raise ValueError(f"column {item!r} has missing item ids")
    codes = pd.factorize(pd.Series(items, dtype=object))[0]
    return reference_bits - x[keep], np.asarray(y[keep], dtype=float), codes


def _fill_estimates(out: dict, slope: float, se: float, lo: float | None, hi: float | None,
                    pvalue: float | None) -> dict:
    out.update(slope=slope, slope_se=se, slope_ci_low=lo, slope_ci_high=hi,
               odds_ratio=math.exp(slope),
               odds_ratio_ci_low=None if lo is None else math.exp(lo),
               odds_ratio_ci_high=None if hi is None else math.exp(hi), pvalue=pvalue)
    return out


def _dose_cluster_ml(out: dict, x: np.ndarray, y: np.ndarray, codes: np.ndarray, z: float):
    """ML logistic fit with item-clustered (CRV1) covariance; None when statsmodels fails."""
    import statsmodels.api as sm

    exog = np.column_stack([np.ones_like(x), x])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = sm.Logit(y, exog).fit(disp=0, maxiter=100, cov_type="cluster",
                                        cov_kwds={"groups": codes})
    except Exception as exc:  # noqa: BLE001 - statsmodels raises several types; reported below
        return f"maximum likelihood failed ({type(exc).__name__}: {exc})"
    params, se = np.asarray(fit.params, float), np.asarray(fit.bse, float)
    if not (fit.mle_retvals.get("converged", False) and np.all(np.isfinite(params))
            and np.all(np.isfinite(se))):
        return "maximum likelihood did not converge"
    slope, s = float(params[1]), float(se[1])
    out.update(intercept=float(params[0]), converged=True,
               method="logistic regression (maximum likelihood); Wald CI and p with "
                      "item-clustered (CRV1) standard errors")
    _fill_estimates(out, slope, s, slope - z * s, slope + z * s,
                    _finite(np.asarray(fit.pvalues)[1]))
    return None


def _dose_firth(out: dict, x: np.ndarray, y: np.ndarray, ci: float) -> dict:
    """Firth fit on the (bits removed, outcome) cells; rows are independent in this method."""
    cells = pd.DataFrame({"x": x, "y": y}).value_counts().reset_index(name="f")
    # centred covariate: the same fit (Firth's estimate is invariant to shifting x), with an
    # intercept of moderate size, which keeps the profile fits accurate
    centre = float(np.average(cells["x"], weights=cells["f"]))
    exog = np.column_stack([np.ones(len(cells)), cells["x"].to_numpy(float) - centre])
    r = firth_logit(cells["y"].to_numpy(float), exog, weights=cells["f"].to_numpy(float), ci=ci,
                    profile=[1])
    r["params"][0] -= r["params"][1] * centre
    lo, hi = _finite(r["ci_low"][1]), _finite(r["ci_high"][1])
    out.update(intercept=float(r["params"][0]), converged=bool(r["converged"]),
               method="Firth penalised logistic regression; profile penalised-likelihood CI "
                      "and likelihood-ratio p (rows treated as independent: no item "
                      "clustering under separation)")
    return _fill_estimates(out, float(r["params"][1]), float(r["bse"][1]), lo, hi,
                           _finite(r["pvalue"][1]))


def dose_response(data: pd.DataFrame, *, bits: str = "bits", outcome: str = "became_biased",
                  item: str = "item", reference_bits: float = 16.0, ci: float = 0.95) -> dict:
    """Logistic regression of "item became biased" on bits removed (S2's dose-response).

    Model: ``logit P(outcome = 1) = intercept + slope * (reference_bits - bits)`` on one row per
    (item, precision[, seed]): the items unbiased in the reference run, ``outcome`` = their label
    is biased at that precision. ``slope`` is the change in log-odds per bit removed (> 0: the
    fewer bits, the more items turn biased), ``odds_ratio = exp(slope)`` the odds ratio per bit
    removed. The slope does not depend on `reference_bits` (only the intercept does).

    Rows of one item are not independent (the same item at 8, 4 and 3 bits), so the fit is
    maximum likelihood with **item-clustered standard errors** (statsmodels ``cov_type="cluster"``,
    CRV1 with the factor ``G/(G-1) (N-1)/(N-K)``, G items, N rows, K = 2): Wald CI
    ``slope +- z se`` and Wald p. Why not GEE with exchangeable correlation: the clustered fit
    keeps S2's point estimate (the marginal slope of the plain logistic regression) and corrects
    only its uncertainty; GEE-exchangeable would re-weight the rows and change the estimate, and
    GEE with independence working correlation is this same estimator. It also shares its
    likelihood with the Firth fit used under separation.

    Separation (checked exactly: a bit width that splits "changed" from "unchanged" rows, e.g.
    nothing changes at 8 bits and everything at 3) makes the ML slope infinite; then the fit is
    Firth's penalised likelihood (`firth_logit`), with a profile penalised-likelihood CI and
    likelihood-ratio p-value, and ``separation`` says "complete" or "quasi-complete". That method
    treats rows as independent (no clustered version exists), so ``method`` says so.

    Not estimable (estimates None, ``estimable`` False, ``note`` gives the reason): no rows,
    fewer than two bit widths, an outcome that never or always occurs, fewer than two items.

    Returns a dict with keys `DOSE_RESPONSE_KEYS`; no value is ever inf or NaN.
    Reference: S2 ("Quantization Undoes Alignment", 2026); Agresti (2007), ch. 4-5; Cameron &
    Miller (2015), J. Human Resources 50:317-372 (cluster-robust inference).
    """
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci!r}")
    x, y, codes = _dose_input(data, bits, outcome, item, reference_bits)
    out = {k: None for k in DOSE_RESPONSE_KEYS}
    out.update(estimable=False, n_rows=int(y.size), n_items=int(np.unique(codes).size),
               n_events=int(y.sum()), n_levels=int(np.unique(x).size), converged=False)
    if out["n_rows"] == 0:
        out["note"] = "not estimable: no rows"
    elif out["n_levels"] < 2:
        out["note"] = "not estimable: needs at least two bit widths"
    elif out["n_events"] == 0:
        out["note"] = "not estimable: no item became biased at any bit width"
    elif out["n_events"] == out["n_rows"]:
        out["note"] = "not estimable: every item became biased at every bit width"
    elif out["n_items"] < 2:
        out["note"] = "not estimable: needs at least two items"
    if out["note"] is not None:
        return out
    from scipy.stats import norm

    z = float(norm.ppf(1 - (1 - ci) / 2))
    out["estimable"] = True
    out["separation"] = _separation(x, y)
    failure = None if out["separation"] else _dose_cluster_ml(out, x, y, codes, z)
    if out["separation"] or failure:
        _dose_firth(out, x, y, ci)
        notes = [f"{out['separation']} separation: the ML slope is infinite"
                 if out["separation"] else f"{failure}; Firth estimate instead"]
        if not out["converged"]:
            notes.append("the Firth fit did not converge")
        if out["slope_ci_low"] is None or out["slope_ci_high"] is None:
            notes.append("a profile confidence limit was not found (flat penalised likelihood)")
        out["note"] = "; ".join(notes)
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
    return {"n_units": len(units), "n_units_not_significant": int((~sig).sum()),
            "flips": total, "masked_flips": masked,
            "masked_share": masked / total if total else None,
            "n_items_not_significant": n_ns,
            "masked_flip_rate": masked / n_ns if n_ns else None}
