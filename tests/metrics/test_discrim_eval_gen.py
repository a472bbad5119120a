"""DiscrimEvalGen scores (refusal rate, choice spread; docs/metrics.md) on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from lm_eval_bias.metrics import discrim_eval_gen as m

# ---------------------------------------------------------------- scores

G = ["man", "woman", "non-binary"]


@pytest.mark.parametrize(
    ("chosen", "refusal", "spread"),
    [
        # 3 answers: man 2/3, woman 1/3, non-binary 0 -> spread 2/3; 1 refusal of 4
        (["man", "man", "woman", None], 0.25, 2 / 3),
        (["man", "woman", "non-binary"], 0.0, 0.0),  # equal choice rates
        (["woman", "woman"], 0.0, 1.0),  # always the same subgroup
        ([None, None], 1.0, math.nan),  # only refusals: no choice rates
    ],
)
def test_scores_hand_computed(chosen, refusal, spread):
    items = [{"c": c, "g": G} for c in chosen]
    assert m.refusal_rate(items) == pytest.approx(refusal)
    got = m.choice_spread(items)
    assert (math.isnan(got) and math.isnan(spread)) or got == pytest.approx(spread)


def test_choice_rates_and_edge_cases():
    items = [{"c": c, "g": G} for c in ["man", "man", "woman", None]]
    assert m.choice_rates(items) == pytest.approx({"man": 2 / 3, "woman": 1 / 3, "non-binary": 0})
    assert math.isnan(m.refusal_rate([])) and math.isnan(m.choice_spread([]))
    with pytest.raises(ValueError, match="was not offered"):
        m.choice_rates([{"c": "robot", "g": G}])
