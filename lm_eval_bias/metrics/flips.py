"""Item-level change between a base run and another run (response flips, bias flips).

Pure functions over a *paired table*: one row per paired item (task, filter, doc_id), with the
base run's values in ``base_*`` columns and the other run's in ``other_*`` columns. No I/O.

Columns read
------------
``base_pred``, ``other_pred``        chosen option index (nullable int)
``base_invalid``, ``other_invalid``  the response could not be mapped to an option (bool)
``base_label``, ``other_label``      label of an open-task output (optional; e.g. "toxic")
``base_biased``, ``other_biased``    item-level bias label (nullable bool: True / False / missing)
``groups``                           list of social groups the item is about (for `flip_counts_by`)
``axis``                             benchmark category / bias type (for `flip_counts_by`)
``base_entropy_norm``                normalized entropy of the base run's probabilities

Definitions (S2, S3; docs/metrics.md, "Item-level change between two runs")
-----------------------------------------------------------------------------
Response flip of an item: the response changed. The response is the triple
(invalid, pred, label); an item invalid in both runs is *not* a flip (nothing to compare), an
item valid in one run and invalid in the other *is* a flip.

Bias flips need the label in both runs (``n_bias_defined`` = both non-missing):

    u2b = #{base_biased = False and other_biased = True}     (bias emergence)
    b2u = #{base_biased = True  and other_biased = False}

Rates (None when the denominator is 0, never NaN in dicts; NaN in the tables):

    response_flip_rate    = response_flips / n_paired
    u2b_rate              = u2b / n_paired
    b2u_rate              = b2u / n_paired
    bias_flip_rate        = (u2b + b2u) / n_paired
    u2b_rate_of_unbiased  = u2b / n_base_unbiased      n_base_unbiased = #{base_biased = False}
    b2u_rate_of_biased    = b2u / n_base_biased        n_base_biased   = #{base_biased = True}
    net_change            = (u2b - b2u) / n_bias_defined   (> 0: the other run is more biased)

``n_base_unbiased`` / ``n_base_biased`` count every base-(un)biased item, also those whose label is
missing in the other run (e.g. invalid there): the S2 "share of previously unbiased items that
became biased". ``net_change`` per social group is S3's group asymmetry.

Example
-------
>>> import pandas as pd
>>> paired = pd.DataFrame({
...     "base_pred": [0, 1, 2], "other_pred": [0, 2, 2],
...     "base_invalid": [False] * 3, "other_invalid": [False] * 3,
...     "base_biased": [False, False, True], "other_biased": [False, True, True]})
>>> c = flip_counts(paired)
>>> c["response_flips"], c["u2b"], c["u2b_rate_of_unbiased"], c["net_change"]
(1, 1, 0.5, 0.3333333333333333)
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lm_eval_bias.metrics.uncertainty import BINS, uncertainty_bins

#: Keys of `flip_counts`, and the value columns of the grouped tables, in order.
COUNT_KEYS = (
    "n_paired", "response_flips", "u2b", "b2u", "bias_flips",
    "n_base_unbiased", "n_base_biased", "n_bias_defined",
)
RATE_KEYS = (
    "response_flip_rate", "u2b_rate", "b2u_rate", "bias_flip_rate",
    "u2b_rate_of_unbiased", "b2u_rate_of_biased", "net_change",
)
FLIP_COLUMNS = COUNT_KEYS + RATE_KEYS

_REQUIRED = ("base_pred", "other_pred", "base_invalid", "other_invalid", "base_biased",
             "other_biased")


def _check_columns(paired: pd.DataFrame, extra: tuple[str, ...] = ()) -> None:
    missing = [c for c in (*_REQUIRED, *extra) if c not in paired.columns]
    if missing:
        raise ValueError(
            f"paired table lacks column(s) {missing}; required: {list(_REQUIRED + extra)}"
        )


def _rate(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def _differs(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Element-wise "a != b" where missing == missing and missing != value."""
    a_na = a.isna().to_numpy(bool)
    b_na = b.isna().to_numpy(bool)
    both = ~a_na & ~b_na
    ne = np.zeros(len(a), dtype=bool)
    if both.any():
        av = a.to_numpy(object)[both]
        bv = b.to_numpy(object)[both]
        ne[both] = np.array([x != y for x, y in zip(av, bv)], dtype=bool)
    return ne | (a_na != b_na)


def _bool_mask(s: pd.Series, value: bool) -> np.ndarray:
    """True where the nullable boolean `s` equals `value` (missing -> False)."""
    return s.astype("boolean").eq(value).fillna(False).to_numpy(bool)


def response_flipped(paired: pd.DataFrame) -> np.ndarray:
    """Per row: did the response change? (see the module docstring)

    ``flip = (base_invalid != other_invalid) or (both valid and (pred or label differ))``
    """
    _check_columns(paired)
    bi = paired["base_invalid"].astype(bool).to_numpy(bool)
    oi = paired["other_invalid"].astype(bool).to_numpy(bool)
    changed = _differs(paired["base_pred"], paired["other_pred"])
    if "base_label" in paired.columns and "other_label" in paired.columns:
        changed |= _differs(paired["base_label"], paired["other_label"])
    return (bi != oi) | (~bi & ~oi & changed)


def _masks(paired: pd.DataFrame) -> dict[str, np.ndarray]:
    _check_columns(paired)
    b_false = _bool_mask(paired["base_biased"], False)
    b_true = _bool_mask(paired["base_biased"], True)
    o_false = _bool_mask(paired["other_biased"], False)
    o_true = _bool_mask(paired["other_biased"], True)
    return {
        "response_flips": response_flipped(paired),
        "u2b": b_false & o_true,
        "b2u": b_true & o_false,
        "n_base_unbiased": b_false,
        "n_base_biased": b_true,
        "n_bias_defined": (b_false | b_true) & (o_false | o_true),
    }


def _counts(masks: dict[str, np.ndarray], rows: np.ndarray | slice = slice(None)) -> dict:
    c = {k: int(np.count_nonzero(m[rows])) for k, m in masks.items()}
    n = int(len(masks["u2b"][rows]))
    u2b, b2u = c["u2b"], c["b2u"]
    out = {
        "n_paired": n,
        "response_flips": c["response_flips"],
        "u2b": u2b,
        "b2u": b2u,
        "bias_flips": u2b + b2u,
        "n_base_unbiased": c["n_base_unbiased"],
        "n_base_biased": c["n_base_biased"],
        "n_bias_defined": c["n_bias_defined"],
        "response_flip_rate": _rate(c["response_flips"], n),
        "u2b_rate": _rate(u2b, n),
        "b2u_rate": _rate(b2u, n),
        "bias_flip_rate": _rate(u2b + b2u, n),
        "u2b_rate_of_unbiased": _rate(u2b, c["n_base_unbiased"]),
        "b2u_rate_of_biased": _rate(b2u, c["n_base_biased"]),
        "net_change": _rate(u2b - b2u, c["n_bias_defined"]),
    }
    return out


def flip_counts(paired: pd.DataFrame) -> dict:
    """Counts and rates of response and bias flips over all rows of `paired`.

    Returns a dict with the keys `FLIP_COLUMNS`: ``n_paired, response_flips, u2b, b2u,
    bias_flips, n_base_unbiased, n_base_biased, n_bias_defined`` (ints) and
    ``response_flip_rate, u2b_rate, b2u_rate, bias_flip_rate, u2b_rate_of_unbiased,
    b2u_rate_of_biased, net_change`` (float, or None when the denominator is 0).
    Formulas in the module docstring.
    """
    return _counts(_masks(paired))


def _table(rows: list[dict], key: str) -> pd.DataFrame:
    return pd.DataFrame.from_records(rows, columns=[key, *FLIP_COLUMNS]).astype(
        {k: "int64" for k in COUNT_KEYS} | {k: "float64" for k in RATE_KEYS}
    )


def flip_counts_by(paired: pd.DataFrame, by: str = "groups") -> pd.DataFrame:
    """`flip_counts` per value of column `by`, one row per value.

    When the column holds lists (``groups``), an item counts once in *each* of its groups (so the
    rows' ``n_paired`` may add up to more than the number of items) and an item with an empty list
    counts in none. Missing values of a scalar column (e.g. no ``axis``) are left out.

    Returns a DataFrame with columns ``[by, *FLIP_COLUMNS]``, sorted by `by`; rates are NaN where
    the denominator is 0.
    """
    _check_columns(paired, (by,))
    masks = _masks(paired)
    index: dict[object, list[int]] = {}
    for i, value in enumerate(paired[by].to_numpy(object)):
        values = value if isinstance(value, (list, tuple, np.ndarray)) else [value]
        seen = set()
        for v in values:
            if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA or v in seen:
                continue
            seen.add(v)
            index.setdefault(v, []).append(i)
    rows = []
    for value in sorted(index, key=str):
        rows.append({by: value, **_counts(masks, np.asarray(index[value], dtype=int))})
    return _table(rows, by)


def flip_counts_by_uncertainty(paired: pd.DataFrame,
                               entropy: str = "base_entropy_norm") -> pd.DataFrame:
    """`flip_counts` per uncertainty bin of the base run (S3).

    The bin of an item is `uncertainty_bin` of its ``base_entropy_norm``: low (<= 1/3), medium
    (1/3 < h <= 2/3), high (> 2/3). Items without probabilities (NaN entropy) are in no bin.

    Returns a DataFrame with columns ``["bin", *FLIP_COLUMNS]`` and always the three rows low,
    medium, high in that order (``n_paired = 0`` and NaN rates for an empty bin).
    """
    _check_columns(paired, (entropy,))
    masks = _masks(paired)
    bins = uncertainty_bins(paired[entropy].to_numpy(float))
    rows = [{"bin": b, **_counts(masks, np.flatnonzero(bins == b))} for b in BINS]
    return _table(rows, "bin")


def high_low_ratio(by_bin: pd.DataFrame, rate: str = "response_flip_rate") -> float | None:
    """Ratio of the high bin's flip rate to the low bin's (S3: 3-11x for response flips).

    ``ratio = rate[high] / rate[low]``; None when the low bin has no flips (rate 0 or an empty
    bin) or the high bin is empty.
    """
    table = by_bin.set_index("bin")
    if not {"low", "high"} <= set(table.index):
        raise ValueError(f"by_bin must have rows 'low' and 'high', got {list(table.index)}")
    low, high = table.at["low", rate], table.at["high", rate]
    if pd.isna(low) or low == 0 or pd.isna(high):
        return None
    return float(high / low)
