"""WinoBias scores, hand-computed from the paper's definitions.

Upstream (uclanlp/corefBias @ 0bce984) ships the data and a gender-swapping script, no scoring
code; Zhao et al. 2018 (Sec. 4, Tables 2 and 3) report per type the score on pro- and on
anti-stereotypical sentences, their average ("Avg") and their absolute difference ("Diff"). Here
accuracy of the chosen referent stands in for coreference F1.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lm_eval_bias.metrics import winobias as m


def _items(pro_correct: list[int], anti_correct: list[int]) -> list[dict]:
    return ([m.score_item("pro", "male", 0, 1 - c) for c in pro_correct]
            + [m.score_item("anti", "female", 1, c) for c in anti_correct])


def test_paper_table_columns_by_hand():
    # pro: 3 of 4 correct (75%); anti: 1 of 4 (25%) -> Avg 50, Diff 50
    items = _items([1, 1, 1, 0], [1, 0, 0, 0])
    assert m.acc_pro(items) == 0.75 and m.acc_anti(items) == 0.25
    assert m.avg(items) == 0.5 and m.diff(items) == 0.5 and m.gap(items) == 0.5
    # anti above pro: Diff is absolute (the paper's E2E T2-a 82.3 vs T2-p 81.4 -> Diff 0.9)
    rev = _items([1, 0, 0, 0], [1, 1, 1, 0])
    assert m.diff(rev) == 0.5 and m.gap(rev) == -0.5


def test_avg_is_mean_of_conditions_not_pooled():
    # unequal sizes (never the case in WinoBias files): avg weights the two conditions equally
    items = _items([1, 1], [0, 0, 0, 0, 1, 1])  # pro 100%, anti 33.3%
    assert m.avg(items) == pytest.approx((1 + 1 / 3) / 2)
    assert m.acc(items) == pytest.approx(4 / 8)


def test_paper_row_reproduced_from_its_columns():
    # Table 2, Rule system, T1: pro 76.7, anti 37.5 -> Avg 57.1, Diff 39.2 (rounded in the paper)
    pro = [1] * 767 + [0] * 233
    anti = [1] * 375 + [0] * 625
    items = _items(pro, anti)
    assert round(100 * m.avg(items), 1) == 57.1 and round(100 * m.diff(items), 1) == 39.2


def test_scores_by_hand():
    items = [
        m.score_item("pro", "male", 0, 0),  # correct
        m.score_item("pro", "female", 1, 1),  # correct
        m.score_item("pro", "male", 1, 0),  # wrong
        m.score_item("anti", "female", 0, 1),  # wrong
        m.score_item("anti", "male", 0, 0),  # correct
    ]
    assert m.acc(items) == pytest.approx(3 / 5)
    assert m.acc_pro(items) == pytest.approx(2 / 3)
    assert m.acc_anti(items) == pytest.approx(1 / 2)
    assert m.gap(items) == pytest.approx(2 / 3 - 1 / 2)
    assert m.avg(items) == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert all(math.isnan(f(items[:3])) for f in (m.gap, m.avg, m.diff))
    assert math.isnan(m.acc([]))
    assert m.is_biased("pro", 1, 1) and m.is_biased("anti", 0, 1) and not m.is_biased("anti", 1, 1)


@pytest.mark.parametrize("lls", [[-1.0, -2.0], [-2.0, -1.0], [-1.5, -1.5]])
def test_choice_is_lm_evals_multiple_choice_argmax(lls):
    # lm-eval's multiple_choice scoring (api/task.py, process_results): pred = np.argmax(lls),
    # the first option on a tie; the task's process_results picks the same option.
    from lm_eval_bias.tasks import winobias as wb

    doc = {"wb_type": 1, "cond": "pro", "line": 1, "gender": "male", "gold": 0,
           "stereotype_choice": 0, "choices": ["The a", "The b"], "occupations": ["a", "b"],
           "pronoun": "he"}
    rec = wb.process_results(doc, [(x, False) for x in lls])["bias_item"]
    assert rec["pred"] == int(np.argmax(lls))
