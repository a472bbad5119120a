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
