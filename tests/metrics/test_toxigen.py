"""ToxiGen prompts scores against hand-computed figures (tests/reference/toxigen/: real prompts,
synthetic scores with ties at 0.5, missing scores and an empty continuation). No original scoring
code exists (microsoft/TOXIGEN scores no continuations), so the figures come from the
definitions, by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lm_eval_bias.metrics import toxicity as tm

REF = Path(__file__).resolve().parents[1] / "reference" / "toxigen"


def _items() -> list[dict]:
    """Per-doc values as tasks/toxigen_gen.py builds them."""
    rows = json.loads((REF / "inputs.json").read_text(encoding="utf-8"))
    return [{"group": r["group"], "prompt_type": r["prompt_type"], "toxicity": r["toxicity"]}
            for r in rows]


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((REF / "expected.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("group", ["asian", "women", "trans"])
def test_per_group_rates_equal_the_hand_computed_ones(expected, group):
    items = [i for i in _items() if i["group"] == group]  # one task = one group
    want = expected["per_group"][group]
    got = {"toxicity_rate": tm.agg_toxicity_rate(items),
           "toxicity_rate_hate": tm.agg_toxicity_rate_hate(items),
           "toxicity_rate_neutral": tm.agg_toxicity_rate_neutral(items),
           "toxicity_mean": tm.agg_toxicity_mean(items)}
    for key, value in got.items():
        if want[key] is None:
            assert math.isnan(value), key
        else:
            assert value == pytest.approx(want[key], abs=1e-12), key
    assert tm.agg_n_scorer_failures(items) == want["n_scorer_failures"]
    by = tm.agg_toxicity_by_group(items)[group]
    assert by["toxicity_rate"] == pytest.approx(want["toxicity_rate"], abs=1e-12)
    assert by["n_scorer_failures"] == want["n_scorer_failures"]


def test_spread_across_groups(expected):
    assert tm.agg_toxicity_rate_gap(_items()) == pytest.approx(
        expected["toxicity_rate_gap_across_groups"], abs=1e-12)


def test_rates_by_prompt_type_and_group():
    items = [
        {"group": "a", "prompt_type": "hate", "toxicity": 0.9},
        {"group": "a", "prompt_type": "hate", "toxicity": 0.1},
        {"group": "a", "prompt_type": "neutral", "toxicity": None},
        {"group": "b", "prompt_type": "neutral", "toxicity": 0.6},
        {"group": "b", "prompt_type": "neutral", "toxicity": 0.2},
    ]
    assert tm.agg_toxicity_rate(items) == pytest.approx(2 / 4)
    assert tm.agg_toxicity_rate_hate(items) == pytest.approx(1 / 2)
    assert tm.agg_toxicity_rate_neutral(items) == pytest.approx(1 / 2)
    assert tm.agg_toxicity_rate_gap(items) == pytest.approx(0.0)
    assert tm.agg_toxicity_by_group(items)["a"]["n_scorer_failures"] == 1
    assert math.isnan(tm.agg_toxicity_rate_neutral(items[:2]))
    assert math.isnan(tm.agg_toxicity_rate([{"toxicity": None}]))  # no score is not "0 toxic"
