"""Flip counts on small paired tables whose every number is worked out by hand below."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from lm_eval_bias.metrics.flips import (
    FLIP_COLUMNS,
    flip_counts,
    flip_counts_by,
    flip_counts_by_uncertainty,
    high_low_ratio,
    response_flipped,
)

NA = None


def paired_table(rows, nullable=True):
    """rows: (base_pred, other_pred, base_biased, other_biased, groups, axis, base_entropy).
    pred None = invalid."""
    df = pd.DataFrame(rows, columns=["base_pred", "other_pred", "base_biased", "other_biased",
                                     "groups", "axis", "base_entropy_norm"])
    df["base_invalid"] = df["base_pred"].isna()
    df["other_invalid"] = df["other_pred"].isna()
    if nullable:
        for c in ("base_pred", "other_pred"):
            df[c] = df[c].astype("Int64")
        for c in ("base_biased", "other_biased"):
            df[c] = df[c].astype("boolean")
    df["base_entropy_norm"] = df["base_entropy_norm"].astype(float)
    return df


# Hand-made table:                                            response flip  bias
ROWS = [
    (0, 0, False, False, ["a"], "X", 0.10),         # 0  no             -           low
    (0, 1, False, True, ["a", "b"], "X", 0.90),     # 1  yes            u2b         high
    (1, 0, True, False, ["b"], "X", 0.50),          # 2  yes            b2u         medium
    (2, 2, True, True, ["b"], "Y", 0.20),           # 3  no             -           low
    (1, NA, False, NA, ["c"], "Y", 0.95),           # 4  yes (->inv.)   undefined   high
    (NA, NA, NA, NA, ["c"], "Y", math.nan),         # 5  no (inv. both) undefined   no bin
    (0, 2, NA, NA, [], NA, 0.60),                   # 6  yes            undefined   medium
]
# n_paired 7; response flips rows 1, 2, 4, 6 = 4; u2b = 1 (row 1); b2u = 1 (row 2)
# base unbiased rows 0, 1, 4 = 3; base biased rows 2, 3 = 2; both defined rows 0-3 = 4
EXPECTED = {
    "n_paired": 7, "response_flips": 4, "u2b": 1, "b2u": 1, "bias_flips": 2,
    "n_base_unbiased": 3, "n_base_biased": 2, "n_bias_defined": 4,
    "response_flip_rate": 4 / 7, "u2b_rate": 1 / 7, "b2u_rate": 1 / 7, "bias_flip_rate": 2 / 7,
    "u2b_rate_of_unbiased": 1 / 3, "b2u_rate_of_biased": 1 / 2, "net_change": 0.0,
}


@pytest.mark.parametrize("nullable", [True, False])
def test_flip_counts_hand_table(nullable):
    got = flip_counts(paired_table(ROWS, nullable=nullable))
    assert list(got) == list(FLIP_COLUMNS)
    assert got == pytest.approx(EXPECTED)
    for k in ("n_paired", "response_flips", "u2b", "b2u", "n_bias_defined"):
        assert type(got[k]) is int
    json.dumps(got, allow_nan=False)


def test_response_flipped_per_row():
    assert response_flipped(paired_table(ROWS)).tolist() == [False, True, True, False, True,
                                                              False, True]


def test_net_change_sign():
    # 3 items defined in both runs: 2 turn biased, 0 turn unbiased -> +2/3; reversed -> -2/3
    worse = paired_table([(0, 1, False, True, [], "X", 0.1), (0, 1, False, True, [], "X", 0.1),
                          (0, 0, True, True, [], "X", 0.1)])
    assert flip_counts(worse)["net_change"] == pytest.approx(2 / 3)
    better = paired_table([(1, 0, True, False, [], "X", 0.1), (1, 0, True, False, [], "X", 0.1),
                           (0, 0, True, True, [], "X", 0.1)])
    assert flip_counts(better)["net_change"] == pytest.approx(-2 / 3)


def test_division_by_zero_gives_none():
    empty = paired_table([])
    got = flip_counts(empty)
    assert got["n_paired"] == 0 and got["response_flips"] == 0
    for k in ("response_flip_rate", "u2b_rate", "b2u_rate", "bias_flip_rate",
              "u2b_rate_of_unbiased", "b2u_rate_of_biased", "net_change"):
        assert got[k] is None
    # labels undefined everywhere: the bias rates are None, the response rate is not
    undefined = paired_table([(0, 1, NA, NA, [], "X", 0.1), (0, 0, NA, NA, [], "X", 0.1)])
    got = flip_counts(undefined)
    assert got["response_flip_rate"] == 0.5 and got["u2b_rate"] == 0.0
    assert got["net_change"] is None and got["u2b_rate_of_unbiased"] is None
    assert got["b2u_rate_of_biased"] is None
    json.dumps(got, allow_nan=False)


def test_open_task_labels_count_as_responses():
    df = paired_table([(NA, NA, False, False, [], "X", math.nan)] * 3)
    df["base_invalid"] = False          # open task: no option index, a label instead
    df["other_invalid"] = [False, False, True]
    df["base_label"] = ["toxic", "non-toxic", "toxic"]
    df["other_label"] = ["non-toxic", "non-toxic", None]
    # row 0 label changed -> flip; row 1 same -> no flip; row 2 valid -> invalid -> flip
    assert response_flipped(df).tolist() == [True, False, True]
    assert flip_counts(df)["response_flips"] == 2


def test_flip_counts_by_groups_counts_multi_group_items_in_each_group():
    t = flip_counts_by(paired_table(ROWS), "groups")
    assert list(t.columns) == ["groups", *FLIP_COLUMNS]
    assert t["groups"].tolist() == ["a", "b", "c"]          # row 6 has no group: in none
    rows = t.set_index("groups")
    # a: rows 0, 1 -> n 2, flips 1 (row 1), u2b 1, base unbiased 2, defined 2, net 1/2
    assert rows.loc["a", ["n_paired", "response_flips", "u2b", "b2u", "n_base_unbiased",
                          "n_base_biased", "n_bias_defined"]].tolist() == [2, 1, 1, 0, 2, 0, 2]
    assert rows.loc["a", "net_change"] == pytest.approx(0.5)
    assert math.isnan(rows.loc["a", "b2u_rate_of_biased"])   # no base-biased item: NaN in tables
    # b: rows 1, 2, 3 -> n 3, flips 2, u2b 1, b2u 1, unbiased 1, biased 2, defined 3, net 0
    assert rows.loc["b", ["n_paired", "response_flips", "u2b", "b2u", "n_base_unbiased",
                          "n_base_biased", "n_bias_defined"]].tolist() == [3, 2, 1, 1, 1, 2, 3]
    assert rows.loc["b", "net_change"] == 0.0
    assert rows.loc["b", "b2u_rate_of_biased"] == pytest.approx(0.5)
    # c: rows 4, 5 -> n 2, flips 1 (row 4), unbiased 1, defined 0, net undefined
    assert rows.loc["c", ["n_paired", "response_flips", "u2b", "b2u", "n_base_unbiased",
                          "n_base_biased", "n_bias_defined"]].tolist() == [2, 1, 0, 0, 1, 0, 0]
    assert math.isnan(rows.loc["c", "net_change"])
    assert t["n_paired"].sum() == 7      # 7 memberships (row 1 twice, row 6 none) for 7 items


def test_flip_counts_by_groups_counts_a_repeated_group_once():
    df = paired_table([(0, 1, False, True, ["a", "a"], "X", 0.1)])
    assert flip_counts_by(df, "groups")[["groups", "n_paired", "u2b"]].values.tolist() == [
        ["a", 1, 1]]


def test_flip_counts_by_axis_leaves_out_missing():
    t = flip_counts_by(paired_table(ROWS), "axis").set_index("axis")
    assert t.index.tolist() == ["X", "Y"]
    assert t.loc["X", ["n_paired", "response_flips", "u2b", "b2u"]].tolist() == [3, 2, 1, 1]
    assert t.loc["Y", ["n_paired", "response_flips", "u2b", "b2u"]].tolist() == [3, 1, 0, 0]


def test_flip_counts_by_uncertainty_and_ratio():
    t = flip_counts_by_uncertainty(paired_table(ROWS))
    assert t["bin"].tolist() == ["low", "medium", "high"]
    # low: rows 0, 3 (0.10, 0.20) no flips; medium: rows 2, 6 (0.50, 0.60) 2 flips, b2u 1;
    # high: rows 1, 4 (0.90, 0.95) 2 flips, u2b 1; row 5 (no probs) in no bin
    assert t["n_paired"].tolist() == [2, 2, 2]
    assert t["response_flips"].tolist() == [0, 2, 2]
    assert t["u2b"].tolist() == [0, 0, 1]
    assert t["b2u"].tolist() == [0, 1, 0]
    assert t["response_flip_rate"].tolist() == [0.0, 1.0, 1.0]
    assert high_low_ratio(t) is None                       # low has no flips


def test_high_low_ratio_values():
    # low: 4 items, 1 flip (25%); high: 2 items, 1 flip (50%) -> ratio 2.0; medium empty
    rows = [(0, 1, NA, NA, [], "X", 0.0), (0, 0, NA, NA, [], "X", 0.1),
            (0, 0, NA, NA, [], "X", 0.2), (0, 0, NA, NA, [], "X", 0.3),
            (0, 1, NA, NA, [], "X", 0.9), (0, 0, NA, NA, [], "X", 1.0)]
    t = flip_counts_by_uncertainty(paired_table(rows))
    assert t["n_paired"].tolist() == [4, 0, 2]
    assert math.isnan(t.loc[1, "response_flip_rate"])
    assert high_low_ratio(t) == pytest.approx(2.0)
    # an empty low bin: None
    t = flip_counts_by_uncertainty(paired_table(rows[4:]))
    assert high_low_ratio(t) is None


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="base_biased"):
        flip_counts(pd.DataFrame({"base_pred": [0], "other_pred": [1]}))
    with pytest.raises(ValueError, match="groups"):
        flip_counts_by(paired_table(ROWS).drop(columns="groups"), "groups")
