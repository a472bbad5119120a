"""HolisticBias likelihood bias: upstream's figures on the reference inputs
(tests/reference/holistic_bias/: real v1.0 sentences, synthetic log-likelihoods and token counts,
upstream's bias_measurements.py run on them), plus hand-computed cases."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import pytest

from lm_eval_bias.metrics import holistic_bias as m

REF = Path(__file__).resolve().parents[1] / "reference" / "holistic_bias"


def _reference():
    inputs = json.loads((REF / "inputs.json").read_text())["rows"]
    expected = json.loads((REF / "expected.json").read_text())
    return inputs, expected


def _items_by_axis(rows):
    """Per axis: the per-doc values our task emits, one doc per (template, noun), with template
    and descriptor indices numbered in order of appearance (any consistent numbering works)."""
    docs = defaultdict(lambda: defaultdict(lambda: ([], [])))
    t_ids, d_ids = {}, defaultdict(dict)
    for r in rows:
        t = t_ids.setdefault(r["template"], len(t_ids))
        d = d_ids[r["axis"]].setdefault(r["descriptor"], len(d_ids[r["axis"]]))
        ids, ppl = docs[r["axis"]][(t, r["noun"])]
        ids.append(d)
        ppl.append(m.perplexity(r["ll"], r["n_tokens"]))
    names = {a: {i: name for name, i in ds.items()} for a, ds in d_ids.items()}
    templates = {i: t for t, i in t_ids.items()}
    items = {
        a: [m.score_doc(t, ids, ppl) for (t, _), (ids, ppl) in per.items()]
        for a, per in docs.items()
    }
    return items, names, templates


def test_likelihood_bias_equals_upstream_per_axis():
    rows, expected = _reference()
    items, _, _ = _items_by_axis(rows)
    assert set(items) == set(expected["likelihood_bias"])
    for axis, share in expected["likelihood_bias"].items():
        ours = m.likelihood_bias(items[axis])
        if share is None:  # no pair tested in the axis: upstream writes no row for it
            assert math.isnan(ours), axis
        else:
            assert ours == pytest.approx(share, abs=1e-12), axis


def test_every_pairwise_p_value_equals_upstream():
    rows, expected = _reference()
    items, names, templates = _items_by_axis(rows)
    ours = {}
    for axis, its in items.items():
        for t, a, b, p in m.pairwise_pvalues(its):
            key = (axis, templates[t], *sorted([names[axis][a], names[axis][b]]))
            ours[key] = p
    theirs = {
        (r["axis"], r["template"], r["descriptor_0"], r["descriptor_1"]): r["p_value"]
        for r in expected["tests"]
    }
    assert set(ours) == set(theirs) and len(theirs) == 75
    for key, p in theirs.items():
        if p is None:
            assert math.isnan(ours[key]), key
        else:
            assert ours[key] == pytest.approx(p, rel=1e-9, abs=1e-15), key
    # the reference covers exact (6 vs 6) and asymptotic (10 vs 10) tests, ties and p = 1
    assert sum(p == 1.0 for p in theirs.values()) >= 3


def test_bh_variant_on_the_reference_p_values():
    from lm_eval_bias.metrics.stats import benjamini_hochberg

    rows, expected = _reference()
    items, _, _ = _items_by_axis(rows)
    nonce = [r["p_value"] for r in expected["tests"] if r["axis"] == "nonce"]
    rejected = benjamini_hochberg(nonce)["reject"]
    assert m.likelihood_bias_bh(items["nonce"]) == pytest.approx(rejected.sum() / len(nonce))
    assert m.likelihood_bias_bh(items["nonce"]) <= m.likelihood_bias(items["nonce"])


def test_perplexity_per_token():
    assert m.perplexity(-6.0, 3) == pytest.approx(math.e**2)
    assert m.perplexity(-1e6, 1) == math.inf
    with pytest.raises(ValueError):
        m.perplexity(-1.0, 0)


def _separated_items():
    # 6 nouns; descriptors 0 and 2 nearly equal, descriptor 1 far above both
    return [m.score_doc(0, [0, 1, 2], [1.0 + k * 0.1, 5.0 + k * 0.1, 1.05 + k * 0.1]) for k in range(6)]


def test_mann_whitney_hand_computed():
    pv = m.pairwise_pvalues(_separated_items())
    # completely separated samples of 6 and 6: exact two-sided p = 2 / C(12, 6) = 2 / 924
    assert [(t, a, b) for t, a, b, _ in pv] == [(0, 0, 1), (0, 0, 2), (0, 1, 2)]
    assert pv[0][3] == pytest.approx(2 / 924) and pv[2][3] == pytest.approx(2 / 924)
    assert pv[1][3] > 0.05
    assert m.likelihood_bias(_separated_items()) == pytest.approx(2 / 3)
    assert m.likelihood_bias_bh(_separated_items()) == pytest.approx(2 / 3)


def test_vectorised_pvalues_match_one_call_per_pair():
    from scipy.stats import mannwhitneyu

    items = [
        m.score_doc(0, [0, 1, 2, 3], [3.0, 2.5, 4.0, 1.0]),
        m.score_doc(0, [0, 1, 3], [3.2, 2.0, 1.1]),  # descriptor 2 missing: unequal sizes
        m.score_doc(0, [0, 1, 2, 3], [2.9, 2.2, 3.9, 0.9]),
        m.score_doc(1, [0, 1], [1.0, 2.0]),
    ]
    samples = {
        (0, 0): [3.0, 3.2, 2.9],
        (0, 1): [2.5, 2.0, 2.2],
        (0, 2): [4.0, 3.9],
        (0, 3): [1.0, 1.1, 0.9],
        (1, 0): [1.0],
        (1, 1): [2.0],
    }
    pv = m.pairwise_pvalues(items)
    assert len(pv) == 6 + 1
    for t, a, b, p in pv:
        assert p == pytest.approx(mannwhitneyu(samples[(t, a)], samples[(t, b)]).pvalue)


def test_edge_cases():
    assert m.share_significant([0.01, 0.04, 0.03, 0.5]) == 0.75
    assert m.share_significant([float("nan"), 0.01]) == 0.5  # NaN: not significant
    assert math.isnan(m.likelihood_bias([])) and math.isnan(m.likelihood_bias_bh([]))
    one = [m.score_doc(0, [0], [1.0])]
    assert math.isnan(m.likelihood_bias(one))  # a single descriptor: no pair to test
    tied = [m.score_doc(0, [0, 1], [1.0, 1.0]) for _ in range(4)]
    assert m.likelihood_bias(tied) == 0.0
