"""Normalized entropy and its bins, on hand-computed values (and scipy as an independent check)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import entropy as scipy_entropy

from lm_eval_bias.metrics.uncertainty import (
    BINS,
    normalized_entropies,
    normalized_entropy,
    uncertainty_bin,
    uncertainty_bins,
)

LOG2_OVER_LOG3 = 0.6309297535714574  # log(2) / log(3)


@pytest.mark.parametrize("probs, expected", [
    ([1 / 3, 1 / 3, 1 / 3], 1.0),                  # uniform over 3
    ([0.25, 0.25, 0.25, 0.25], 1.0),               # uniform over 4
    ([0.5, 0.5], 1.0),                             # uniform over 2
    ([1.0, 0.0, 0.0], 0.0),                        # one-hot: 0 log 0 = 0
    ([0.0, 1.0], 0.0),
    ([0.5, 0.5, 0.0], LOG2_OVER_LOG3),             # H = log 2, k = 3
    ([2.0, 2.0, 0.0], LOG2_OVER_LOG3),             # divided by the sum first
    # H = -(0.98 ln 0.98 + 2 * 0.01 ln 0.01) = 0.0197987 + 0.0921034 = 0.1119021; / ln 3 = 0.1018576
    ([0.98, 0.01, 0.01], 0.1018576),
    ([1.0], 0.0),                                  # k = 1
    ([0.7], 0.0),
])
def test_normalized_entropy_hand_values(probs, expected):
    assert normalized_entropy(probs) == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize("probs", [None, [], [math.nan, 0.5, 0.5], [math.inf, 0.0], [0.0, 0.0],
                                   float("nan")])
def test_normalized_entropy_undefined_is_nan(probs):
    assert math.isnan(normalized_entropy(probs))


def test_normalized_entropy_refuses_negative():
    with pytest.raises(ValueError, match=">= 0"):
        normalized_entropy([0.5, -0.1, 0.6])
    with pytest.raises(ValueError, match=">= 0"):
        normalized_entropies([[0.2, 0.8], [0.5, -0.1, 0.6]])


def test_normalized_entropy_matches_scipy():
    rng = np.random.default_rng(0)
    for k in (2, 3, 5, 11):
        for _ in range(20):
            p = rng.dirichlet(np.ones(k))
            assert normalized_entropy(p) == pytest.approx(scipy_entropy(p) / math.log(k), abs=1e-12)


def test_normalized_entropies_column_matches_scalar():
    column = [[1 / 3, 1 / 3, 1 / 3], None, [0.5, 0.5, 0.0], [1.0], [0.9, 0.1], [],
              [math.nan, 0.5, 0.5], [0.98, 0.01, 0.01], [0.0, 0.0, 0.0]]
    got = normalized_entropies(column)
    assert got.dtype == float and got.shape == (len(column),)
    expected = [1.0, math.nan, LOG2_OVER_LOG3, 0.0, normalized_entropy([0.9, 0.1]), math.nan,
                math.nan, 0.1018576, math.nan]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-7, equal_nan=True)


@pytest.mark.parametrize("h, expected", [
    (0.0, "low"), (0.2, "low"), (1 / 3, "low"), (1 / 3 + 1e-15, "low"),
    (0.3334, "medium"), (0.5, "medium"), (LOG2_OVER_LOG3, "medium"), (2 / 3, "medium"),
    (0.6667, "high"), (0.9, "high"), (1.0, "high"),
    (math.nan, None), (None, None),
])
def test_uncertainty_bin(h, expected):
    assert uncertainty_bin(h) == expected


def test_uncertainty_bins_vectorized_matches_scalar():
    values = [0.0, 1 / 3, 0.34, 2 / 3, 0.7, 1.0, math.nan, None]
    assert uncertainty_bins(values).tolist() == [uncertainty_bin(v) for v in values]
    assert uncertainty_bins(values).tolist() == ["low", "low", "medium", "medium", "high", "high",
                                                 None, None]
    assert BINS == ("low", "medium", "high")


def test_one_hot_is_positive_zero():
    # -(1 * log 1) is -0.0 in floating point; it must not print as "-0.0" in tables
    assert math.copysign(1.0, normalized_entropy([1.0, 0.0, 0.0])) == 1.0
    assert math.copysign(1.0, normalized_entropies([[0.0, 1.0, 0.0]])[0]) == 1.0
