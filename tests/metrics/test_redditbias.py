"""RedditBias scores: upstream's t-test figures on the reference inputs (tests/reference/redditbias/:
real rows, synthetic log-likelihoods and token counts, upstream's measure_bias.py run on them),
and S1's share and effect size, hand-computed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lm_eval_bias.metrics import redditbias as m

REF = Path(__file__).resolve().parents[1] / "reference" / "redditbias"


def _cases():
    inputs = json.loads((REF / "inputs.json").read_text())["cases"]
    expected = json.loads((REF / "expected.json").read_text())["cases"]
    for case in inputs:
        items = [
            # ll_*: log-likelihood of the n_* tokens upstream scores (tokens 2.. of the phrase)
            m.score_pair(it["ll_biased"], it["ll_counterfactual"], it["ll_biased"],
                         it["ll_counterfactual"], it["n_biased"], it["n_counterfactual"])
            for it in case["items"]
        ]
        yield case["name"], items, expected[case["name"]]


def _same(ours: float, theirs: float | None) -> bool:
    if theirs is None:
        return math.isnan(ours)
    if math.isinf(theirs):
        return ours == theirs
    return ours == pytest.approx(theirs, rel=1e-9, abs=1e-15)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_t_and_p_equal_upstream_on_the_reference_inputs():
    names = []
    for name, items, exp in _cases():
        names.append(name)
        assert _same(m.t_value(items), exp["t_value"]), name
        assert _same(m.p_value(items), exp["p_value"]), name
    assert len(names) == 6


def test_per_token_perplexity_and_total_ll_can_disagree():
    """The reference case where the biased phrases are longer: S1's total log-likelihood prefers
    the counterfactuals, upstream's per-token perplexity the biased phrases."""
    items = {name: its for name, its, _ in _cases()}["gender_length_confound"]
    assert m.t_value(items) < 0  # biased phrases less perplexing: bias against the target group
    assert m.effect_size(items) < 0 and m.pct_biased_preferred(items) == 0.0


def test_perplexity_per_token():
    assert m.perplexity(-6.0, 3) == pytest.approx(math.e**2)
    # totals -7 and -4 (S1's diff -3); tokens 2.. have -6 over 3 and -4 over 1
    assert m.score_pair(-7.0, -4.0, -6.0, -4.0, 3, 1) == {
        "ppl": [pytest.approx(math.e**2), pytest.approx(math.e**4)], "diff": -3.0}
    assert math.isnan(m.perplexity(0.0, 0))  # a one-token phrase: upstream's mean over no token
    with pytest.raises(ValueError):
        m.perplexity(-1.0, -1)


def _diff_items(diffs):
    return [{"ppl": [1.0, 1.0], "diff": d} for d in diffs]


def test_s1_share_and_effect_size_hand_computed():
    items = _diff_items([1.0, 2.0, -1.0, 0.0])
    assert m.pct_biased_preferred(items) == 50.0  # 2 of 4; the tie is not a preference
    # mean 0.5; squared deviations 0.25 + 2.25 + 2.25 + 0.25 = 5; sd = sqrt(5/3)
    assert m.effect_size(items) == pytest.approx(0.5 / math.sqrt(5 / 3))


def test_effect_size_is_t_over_sqrt_n_on_log_likelihoods():
    from scipy import stats

    ll1 = [-10.0, -12.5, -8.0, -20.0, -15.0]
    ll2 = [-11.0, -12.0, -9.5, -22.0, -15.5]
    items = [m.score_pair(a, b, a, b, 5, 5) for a, b in zip(ll1, ll2, strict=True)]
    assert m.effect_size(items) == pytest.approx(stats.ttest_rel(ll1, ll2).statistic / math.sqrt(5))


def test_undefined_scores_are_nan():
    assert math.isnan(m.pct_biased_preferred([])) and math.isnan(m.t_value([]))
    assert math.isnan(m.p_value(_diff_items([1.0])))
    assert math.isnan(m.effect_size(_diff_items([1.0])))
    assert math.isnan(m.effect_size(_diff_items([1.0, 1.0])))  # sd 0
