"""DiscrimEval scores against the figures lm-eval 0.4.13's own discrim_eval aggregation produced
on the same per-item log-likelihoods (tests/reference/discrim_eval/README.md), plus the S1
spread variant (hand-computed)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from lm_eval_bias.metrics import discrim_eval as m
from lm_eval_bias.tasks import discrim_eval

REF = Path(__file__).resolve().parents[1] / "reference" / "discrim_eval"


def reference_rows() -> list[dict]:
    with open(REF / "inputs.csv", newline="") as f:
        return list(csv.DictReader(f))


def per_doc_values(rows: list[dict]) -> list[dict]:
    """The task's own per-doc values: docs built by the loader, lls through process_results."""
    upstream = [
        {
            "filled_template": f"decision {r['decision_question_id']}",
            "decision_question_id": int(r["decision_question_id"]),
            "age": float(r["age"]),
            "gender": r["gender"],
            "race": r["race"],
            "fill_type": "explicit",
        }
        for r in rows
    ]
    docs = discrim_eval.build_docs(upstream, "explicit", where="reference")
    out = []
    for doc, r in zip(docs, rows, strict=True):
        res = discrim_eval.process_results(
            doc, [(float(r["ll_yes"]), False), (float(r["ll_no"]), False)]
        )
        out.append(res["black_bias"])
    return out


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((REF / "expected.json").read_text())


@pytest.mark.parametrize("case", ["all", "no_non_binary"])
def test_mixed_effects_scores_equal_lm_eval(case, expected):
    rows = reference_rows()
    if case == "no_non_binary":
        rows = [r for r in rows if r["gender"] != "non-binary"]
    items = per_doc_values(rows)
    want = expected[case]["figures"]
    assert len(items) == expected[case]["n_items"]
    for name in m.MIXED_EFFECTS_TERMS:
        got = getattr(m, name)(items)
        if case == "no_non_binary" and name == "non_binary_bias":
            # lm-eval writes 0.0 for a group with no items; ours is undefined
            assert want[name] == 0.0 and math.isnan(got)
        else:
            assert got == pytest.approx(want[name], rel=1e-6, abs=1e-8), name


def test_mixed_effects_undefined_cases():
    items = per_doc_values(reference_rows())
    one_question = [it for it in items if it["q"] == 0]
    no_white = [it for it in items if it["race"] != "white"]
    for subset in ([], items[:1], one_question, no_white):
        assert all(math.isnan(v) for v in m.mixed_effects_coefficients(subset).values())


def test_per_doc_logit_is_the_log_odds_of_p_yes():
    items = per_doc_values(reference_rows()[:20])
    for it in items:
        assert it["logit"] == pytest.approx(math.log(it["p"]) - math.log1p(-it["p"]), abs=1e-9)


# ---------------------------------------------------------------- S1's spread (hand-computed)

ITEMS = [
    {"q": 0, "p": 0.9, "age": "20-39", "gender": "male", "race": "white"},
    {"q": 0, "p": 0.5, "age": "60-100", "gender": "female", "race": "white"},
    {"q": 0, "p": 0.7, "age": "20-39", "gender": "female", "race": "black"},
    {"q": 1, "p": 0.2, "age": "40-59", "gender": "male", "race": "asian"},
    {"q": 1, "p": 0.4, "age": "40-59", "gender": "male", "race": "asian"},
]


def test_spread_scores_hand_computed():
    # q0: gender male .9 vs female (.5 + .7) / 2 = .6 -> .3; q1 has one gender -> left out
    assert m.spread_gender(ITEMS) == pytest.approx(0.3)
    # q0: white (.9 + .5) / 2 = .7 vs black .7 -> 0
    assert m.spread_race(ITEMS) == pytest.approx(0.0)
    # q0: 20-39 (.9 + .7) / 2 = .8 vs 60-100 .5 -> .3
    assert m.spread_age(ITEMS) == pytest.approx(0.3)
    assert m.discrimination_by_question(ITEMS, "gender") == pytest.approx({0: 0.3})
    # per question max - min over items: q0 .9 - .5 = .4, q1 .4 - .2 = .2 -> mean .3
    assert m.max_min_diff(ITEMS) == pytest.approx(0.3)
    assert m.p_yes(ITEMS) == pytest.approx(2.7 / 5)
    assert m.p_yes_male(ITEMS) == pytest.approx(0.5)
    assert m.p_yes_female(ITEMS) == pytest.approx(0.6)
    assert m.p_yes_asian(ITEMS) == pytest.approx(0.3)
    assert m.p_yes_age_40_59(ITEMS) == pytest.approx(0.3)
    assert math.isnan(m.p_yes_non_binary(ITEMS)) and math.isnan(m.p_yes_native_american(ITEMS))
    # a single question with one subgroup, or no items: undefined
    assert math.isnan(m.spread_gender(ITEMS[3:]))
    for agg in (m.p_yes, m.spread_age, m.max_min_diff):
        assert math.isnan(agg([]))
    with pytest.raises(ValueError, match="attribute must be one of"):
        m.discrimination(ITEMS, "religion")


def test_every_subgroup_metric_is_an_aggregation():
    for name, (attribute, value) in m.SUBGROUP_METRICS.items():
        items = [{"q": 0, "p": 0.25, "age": "x", "gender": "x", "race": "x", attribute: value}]
        assert getattr(m, name)(items) == 0.25, name


# ---------------------------------------------------------------- P(yes), age bins (moved from tests/tasks)

@pytest.mark.parametrize(
    ("ll_yes", "ll_no", "expected"),
    [(0.0, 0.0, 0.5), (-1.0, -2.0, 0.7310585786), (-2.0, -1.0, 0.2689414214), (-800.0, 0.0, 0.0)],
)
def test_p_yes_normalized(ll_yes, ll_no, expected):
    assert m.p_yes_normalized(ll_yes, ll_no) == pytest.approx(expected, abs=1e-10)


def test_age_bins():
    assert [m.age_bin(a) for a in range(20, 101, 10)] == ["20-39"] * 2 + ["40-59"] * 2 + [
        "60-100"
    ] * 5
