"""DecodingTrust fairness scores against DecodingTrust's own score_calculation_script on the same
generated answers for the real zero-shot Adult sets (tests/reference/dt_fairness/README.md)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lm_eval_bias.metrics import dt_fairness as m
from lm_eval_bias.tasks import dt_fairness

REF = Path(__file__).resolve().parents[1] / "reference" / "dt_fairness"
FILES = {
    "0.0": "zero_shot_br_0.0.json",
    "0.5": "zero_shot_br_0.5.json",
    "1.0": "zero_shot_br_1.0.json",
}


def _load(name: str) -> dict:
    return json.loads((REF / name).read_text())


def _gen_results(base_rate: str, answers: list[str]) -> list[dict]:
    docs = dt_fairness.load_dt_fairness_docs(base_rate)
    assert len(docs) == len(answers) == 200
    return [dt_fairness.process_results_gen(d, [a]) for d, a in zip(docs, answers, strict=True)]


@pytest.mark.parametrize("case", ["yes_no", "keywords"])
@pytest.mark.parametrize("base_rate", list(FILES))
def test_generated_answers_scored_as_decodingtrust(case, base_rate):
    want = _load("expected.json")[case][FILES[base_rate]]
    results = _gen_results(base_rate, _load("inputs.json")[case][base_rate])
    items = [r["acc"] for r in results]
    assert m.acc(items) == pytest.approx(want["accuracy"], abs=1e-12)
    assert m.demographic_parity_diff(items) == pytest.approx(
        want["demographic parity difference"], abs=1e-12
    )
    assert m.equalized_odds_diff(items) == pytest.approx(
        want["equalized odds difference"], abs=1e-12
    )
    assert m.rejection_rate(items) == pytest.approx(want["rejection rate"], abs=1e-12)
    rejected = [r["bias_item"] for r in results if r["bias_item"]["invalid"]]
    assert all(rec["pred"] is None and rec["parsed"] == "none" for rec in rejected)


@pytest.mark.parametrize("base_rate", list(FILES))
def test_likelihood_task_equals_decodingtrust_on_yes_no_answers(base_rate):
    """The likelihood task's scores on the same predictions ("yes" more likely for a "Yes" answer)."""
    want = _load("expected.json")["yes_no"][FILES[base_rate]]
    docs = dt_fairness.load_dt_fairness_docs(base_rate)
    items = []
    for doc, answer in zip(docs, _load("inputs.json")["yes_no"][base_rate], strict=True):
        lls = [(-1.0, False), (-2.0, False)] if answer == "Yes" else [(-2.0, False), (-1.0, False)]
        items.append(dt_fairness.process_results(doc, lls)["acc"])
    assert m.acc(items) == pytest.approx(want["accuracy"], abs=1e-12)
    assert m.demographic_parity_diff(items) == pytest.approx(
        want["demographic parity difference"], abs=1e-12
    )
    assert m.equalized_odds_diff(items) == pytest.approx(
        want["equalized odds difference"], abs=1e-12
    )


@pytest.mark.parametrize("base_rate", list(FILES))
def test_rejection_rate_with_ambiguous_answers(base_rate):
    """Answers naming both options are answered (by a coin), not rejected, as in DecodingTrust;
    the coin is seeded per item here and unseeded there, so only the rejection rate compares."""
    want = _load("expected.json")["with_both"][FILES[base_rate]]
    answers = _load("inputs.json")["with_both"][base_rate]
    results = _gen_results(base_rate, answers)
    assert m.rejection_rate([r["acc"] for r in results]) == pytest.approx(want["rejection rate"])
    both = [r for r, a in zip(results, answers, strict=True) if m.parse_adult_answer(a) == "both"]
    assert both and all(r["bias_item"]["parsed"] == "both" for r in both)
    assert all(r["bias_item"]["pred"] is not None for r in both)
    again = _gen_results(base_rate, answers)
    assert [r["acc"]["p"] for r in again] == [r["acc"]["p"] for r in results]


@pytest.mark.parametrize(
    ("answer", "parsed"),
    [
        ("Yes", "yes"), ("No.", "no"), ("I cannot say", "no"), ("true", "yes"),
        ("Income: small", "no"), ("It is impossible to determine.", None), ("Unclear", None),
        ("yes or no", "both"), ("YES", None), ("", None),
    ],
)  # fmt: skip
def test_keyword_rule(answer, parsed):
    assert m.parse_adult_answer(answer) == parsed


def test_scores_over_no_answered_items_are_undefined():
    items = [{"y": 1, "p": None, "s": "Male"}, {"y": 0, "p": None, "s": "Female"}]
    assert m.rejection_rate(items) == 1.0
    for agg in (m.acc, m.demographic_parity_diff, m.equalized_odds_diff, m.yes_rate):
        assert math.isnan(agg(items))
    assert math.isnan(m.rejection_rate([]))


# ---------------------------------------------------------------- hand-computed scores (moved from tests/tasks)

def _items(y, p, s):
    return [{"y": a, "p": b, "s": c} for a, b, c in zip(y, p, s, strict=True)]


# Hand-computed; the fairlearn column is fairlearn 0.15.0's demographic_parity_difference /
# equalized_odds_difference on the same input (run once outside the test suite, which does not
# depend on fairlearn).
SCORE_CASES = [
    # M: y 1100 p 1010 -> sel .5 TPR .5 FPR .5; F: y 1000 p 1110 -> sel .75 TPR 1 FPR 2/3
    # DPD = .25; EOD = max(1 - .5, 2/3 - .5) = .5; acc = (2 + 2) / 8   (fairlearn: .25, .5)
    ([1, 1, 0, 0, 1, 0, 0, 0], [1, 0, 1, 0, 1, 1, 1, 0], ["M"] * 4 + ["F"] * 4, 0.25, 0.5, 0.5),
    # base-rate-1.0 shape: M only positives, F only negatives. M: sel 2/3 TPR 2/3 FPR 0 (no
    # negatives: fairlearn's 0); F: sel 1/3 TPR 0 (no positives) FPR 1/3.
    # DPD = 1/3; EOD = max(2/3, 1/3) = 2/3; acc = 4/6   (fairlearn: 0.3333, 0.6667)
    ([1, 1, 1, 0, 0, 0], [1, 1, 0, 1, 0, 0], ["M"] * 3 + ["F"] * 3, 1 / 3, 2 / 3, 4 / 6),
    # a constant answer: no gap at all, whatever the labels
    ([1, 0, 1, 0], [1, 1, 1, 1], ["M", "M", "F", "F"], 0.0, 0.0, 0.5),
    # perfect predictor, both groups with both labels: M y 10 -> sel .5; F y 110 -> sel 2/3;
    # TPR 1 and FPR 0 everywhere -> DPD 1/6, EOD 0   (fairlearn: 0.1667, 0.0)
    ([1, 0, 1, 1, 0], [1, 0, 1, 1, 0], ["M", "M", "F", "F", "F"], 1 / 6, 0.0, 1.0),
    # perfect predictor, M only positives, F only negatives: the undefined TPR(F) and FPR(M) count
    # as 0, so EOD = max(1 - 0, 0 - 0) = 1 although every answer is right   (fairlearn: 1.0, 1.0)
    ([1, 1, 0, 0], [1, 1, 0, 0], ["M", "M", "F", "F"], 1.0, 1.0, 1.0),
]


@pytest.mark.parametrize(("y", "p", "s", "dpd", "eod", "acc"), SCORE_CASES)
def test_scores_hand_computed(y, p, s, dpd, eod, acc):
    assert m.demographic_parity_difference(p, s) == pytest.approx(dpd)
    assert m.equalized_odds_difference(y, p, s) == pytest.approx(eod)
    items = _items(y, p, s)
    assert m.demographic_parity_diff(items) == pytest.approx(dpd)
    assert m.equalized_odds_diff(items) == pytest.approx(eod)
    assert m.acc(items) == pytest.approx(acc)
    assert m.yes_rate(items) == pytest.approx(sum(p) / len(p))


def test_rates_and_undefined_values():
    y, p, s = [1, 1, 1, 0, 0, 0], [1, 1, 0, 1, 0, 0], ["M"] * 3 + ["F"] * 3
    assert m.selection_rates(p, s) == pytest.approx({"M": 2 / 3, "F": 1 / 3})
    assert m.true_positive_rates(y, p, s) == pytest.approx({"M": 2 / 3, "F": 0.0})
    assert m.false_positive_rates(y, p, s) == pytest.approx({"M": 0.0, "F": 1 / 3})
    # strict variant: a rate over no items is undefined
    assert math.isnan(m.equalized_odds_difference(y, p, s, undefined_rate=None))
    # one group only, or nothing at all: a gap across groups is undefined
    assert math.isnan(m.demographic_parity_difference([1, 0], ["M", "M"]))
    assert math.isnan(m.equalized_odds_difference([1, 0], [1, 0], ["M", "M"]))
    for agg in (m.acc, m.demographic_parity_diff, m.equalized_odds_diff, m.yes_rate):
        assert math.isnan(agg([]))
    with pytest.raises(ValueError, match="0/1"):
        m.demographic_parity_difference([2, 0], ["M", "F"])
