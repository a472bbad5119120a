"""Uncertainty of a closed-task answer: normalized entropy of the option probabilities, and its bin.

Pure functions, no I/O. The definitions follow S3 ("Uncertainty Drives Social Bias Changes in
Quantized LLMs"), see docs/metrics.md, "Item-level change between two runs":

    H(p)      = - sum_i p_i * log(p_i)          (natural log, with 0 * log 0 = 0)
    H_norm(p) = H(p) / log(k)                   k = number of options; H_norm = 0 when k = 1

`H_norm` lies in [0, 1]: 0 for a one-hot distribution, 1 for the uniform one. Bins:

    low     H_norm <= 1/3
    medium  1/3 < H_norm <= 2/3
    high    H_norm > 2/3

Examples
--------
>>> round(normalized_entropy([1/3, 1/3, 1/3]), 12)
1.0
>>> normalized_entropy([1.0, 0.0, 0.0])
0.0
>>> round(normalized_entropy([0.5, 0.5, 0.0]), 4)    # log 2 / log 3
0.6309
>>> uncertainty_bin(0.6309)
'medium'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

#: Upper edges of the "low" and "medium" bins (inclusive).
LOW_MAX = 1.0 / 3.0
MEDIUM_MAX = 2.0 / 3.0
#: Bin labels, in order.
BINS = ("low", "medium", "high")
# A value within this distance of a bin edge counts as on the edge (so 1/3 computed with rounding
# error still falls in "low").
_EDGE_TOL = 1e-12


def _is_missing_probs(probs) -> bool:
    return probs is None or (isinstance(probs, float) and math.isnan(probs))


def normalized_entropy(probs: Sequence[float] | None) -> float:
    """Normalized Shannon entropy ``H(p) / log(k)`` of one probability vector.

    Parameters
    ----------
    probs : sequence of float or None
        Probabilities over the k options. They are divided by their sum first (the record stores a
        softmax, so this only removes rounding error).

    Returns
    -------
    float
        In [0, 1]. ``0.0`` when k = 1. ``nan`` when `probs` is None or empty, holds a non-finite
        value (lm-eval writes bare ``NaN``), or sums to 0: the uncertainty is then undefined.

    Raises
    ------
    ValueError
        A probability is negative.

    Formula: ``H_norm = -sum_i p_i log p_i / log k`` with ``0 log 0 = 0``.
    """
    if _is_missing_probs(probs):
        return math.nan
    p = np.asarray(list(probs), dtype=float)
    if p.size == 0 or not np.all(np.isfinite(p)):
        return math.nan
    if np.any(p < 0):
        raise ValueError(f"probabilities must be >= 0, got {p.tolist()}")
    k = p.size
    if k == 1:
        return 0.0
    total = p.sum()
    if total <= 0:
        return math.nan
    p = p / total
    nz = p[p > 0]
    h = float(-(nz * np.log(nz)).sum() / math.log(k))
    return min(max(h, 0.0), 1.0) + 0.0  # + 0.0 turns -0.0 into 0.0


def normalized_entropies(column: Iterable[Sequence[float] | None]) -> np.ndarray:
    """`normalized_entropy` of every vector of a column (e.g. a pandas Series of lists).

    Vectors of equal length are computed together as one 2-D array. Returns a float array of the
    column's length; ``nan`` where the entropy is undefined (see `normalized_entropy`).

    Raises
    ------
    ValueError
        A probability is negative.
    """
    rows = list(column)
    out = np.full(len(rows), np.nan, dtype=float)
    by_len: dict[int, list[int]] = {}
    for i, probs in enumerate(rows):
        if _is_missing_probs(probs):
            continue
        n = len(probs)
        if n:
            by_len.setdefault(n, []).append(i)
    for k, idx in by_len.items():
        p = np.asarray([rows[i] for i in idx], dtype=float)
        finite = np.all(np.isfinite(p), axis=1)
        if np.any(p[finite] < 0):
            bad = p[finite][np.any(p[finite] < 0, axis=1)][0]
            raise ValueError(f"probabilities must be >= 0, got {bad.tolist()}")
        if k == 1:
            h = np.where(finite, 0.0, np.nan)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                total = p.sum(axis=1, keepdims=True)
                q = p / total
                terms = np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0)
                h = -terms.sum(axis=1) / math.log(k)
            h = np.clip(h, 0.0, 1.0) + 0.0
            h[~finite | (total[:, 0] <= 0)] = np.nan
        out[np.asarray(idx)] = h
    return out


def uncertainty_bin(h: float | None) -> str | None:
    """Bin of one normalized entropy: ``"low"`` (h <= 1/3), ``"medium"`` (1/3 < h <= 2/3),
    ``"high"`` (h > 2/3); None when `h` is None or NaN."""
    if h is None or (isinstance(h, float) and math.isnan(h)):
        return None
    h = float(h)
    if math.isnan(h):
        return None
    if h <= LOW_MAX + _EDGE_TOL:
        return "low"
    if h <= MEDIUM_MAX + _EDGE_TOL:
        return "medium"
    return "high"


def uncertainty_bins(values: Iterable[float | None]) -> np.ndarray:
    """`uncertainty_bin` of every value; an object array of "low" / "medium" / "high" / None."""
    h = np.asarray([np.nan if v is None else v for v in values], dtype=float)
    out = np.full(h.shape, None, dtype=object)
    out[h <= LOW_MAX + _EDGE_TOL] = "low"
    out[(h > LOW_MAX + _EDGE_TOL) & (h <= MEDIUM_MAX + _EDGE_TOL)] = "medium"
    out[h > MEDIUM_MAX + _EDGE_TOL] = "high"
    return out
