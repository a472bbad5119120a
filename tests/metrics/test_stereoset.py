"""StereoSet scores: upstream's evaluation.py figures on real rows (tests/reference/stereoset/),
and hand-computed cases of the counting rules."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lm_eval_bias.metrics import stereoset as m
from lm_eval_bias.tasks import _data, stereoset

REF = Path(__file__).resolve().parent.parent / "reference" / "stereoset"
UPSTREAM_KEYS = {"count": "Count", "lms": "LM Score", "ss": "SS Score", "icat": "ICAT Score"}


@pytest.fixture
def use_data_dir(data_dir, monkeypatch):
    monkeypatch.setenv(_data.DATA_DIR_ENV, str(data_dir))


def _reference_per_doc() -> list[dict]:
    """Our per-doc values for the reference items: per-token scores of the same probabilities."""
    inputs = json.loads((REF / "inputs.json").read_text())
    probs = inputs["token_probs"]
    out = []
    for fmt, ids in inputs["items"].items():
        by_id = {it["id"]: it for it in stereoset.read_items(fmt)}
        for item_id in ids:
            doc = stereoset.build_doc(by_id[item_id], fmt)
            scores = []
            for sid in doc["sentence_ids"]:
                ll = math.fsum(math.log(p) for p in probs[sid])
                scores.append(m.per_token(ll, len(probs[sid])))
            st, an, un = doc["stereo_choice"], doc["anti_choice"], doc["unrelated_choice"]
            per_doc = m.score_item(doc["target"], scores[st], scores[an], scores[un])
            out.append({**per_doc, "fmt": fmt, "domain": doc["bias_type"]})
    return out


def test_reference_figures_of_upstream_evaluation_py(use_data_dir):
    expected = json.loads((REF / "expected.json").read_text())
    per_doc = _reference_per_doc()
    ties = sum(1 for d in per_doc if d["pro"] == 0)
    assert len(per_doc) == 50 and ties > 10
    ours = m.upstream_results(per_doc)
    blocks = [(ours["overall"], expected["overall"], 1)]
    for fmt in m.FORMATS:
        blocks.append((ours[fmt]["overall"], expected[fmt]["overall"], 1))
        for domain in m.DOMAINS:
            # upstream lists each item once per sentence in its per-domain counts
            blocks.append((ours[fmt][domain], expected[fmt][domain], 3))
    for got, want, count_factor in blocks:
        assert got["count"] * count_factor == want["Count"]
        for key in ("lms", "ss", "icat"):
            assert got[key] == pytest.approx(want[UPSTREAM_KEYS[key]], abs=1e-9), (key, want)


def test_reference_overall_pools_terms_across_formats(use_data_dir):
    per_doc = _reference_per_doc()
    pooled = m.summary(per_doc)
    intra = m.summary([d for d in per_doc if d["fmt"] == "intrasentence"])
    inter = m.summary([d for d in per_doc if d["fmt"] == "intersentence"])
    # a size-weighted mean of the two formats is not upstream's overall
    weighted = (intra["ss"] * intra["count"] + inter["ss"] * inter["count"]) / 50
    assert pooled["ss"] != pytest.approx(weighted)


def test_score_item_rules():
    assert m.score_item("t", -1.0, -2.0, -3.0) == {"t": "t", "pro": 1, "related": 2}
    assert m.score_item("t", -2.0, -1.0, -1.5) == {"t": "t", "pro": 0, "related": 1}
    # upstream: `if pro > anti: pro += 1 else: anti += 1` -> a tie is not a stereotype choice
    assert m.score_item("t", -1.0, -1.0, -0.5) == {"t": "t", "pro": 0, "related": 0}
    # a meaningful option that ties the unrelated one is not counted as related
    assert m.score_item("t", -1.0, -2.0, -2.0) == {"t": "t", "pro": 1, "related": 1}


def test_per_target_term_averaging():
    items = [
        {"t": "A", "pro": 1, "related": 2},
        {"t": "A", "pro": 0, "related": 1},
        {"t": "B", "pro": 1, "related": 0},
    ]
    # A: SS 50, LMS 75; B: SS 100, LMS 0 -> means over terms: SS 75, LMS 37.5
    assert m.per_term_scores(items) == {"A": (50.0, 75.0), "B": (100.0, 0.0)}
    assert m.ss(items) == 75.0 and m.lms(items) == 37.5
    assert m.icat(items) == pytest.approx(37.5 * 25 / 50)  # 18.75
    # pooled over items SS would be 66.7: the per-term mean is upstream's definition
    assert m.icat_score(100.0, 50.0) == 100.0 and m.icat_score(80.0, 70.0) == pytest.approx(48.0)
    assert all(math.isnan(f([])) for f in (m.ss, m.lms, m.icat))
    empty = m.summary([])
    assert empty["count"] == 0 and math.isnan(empty["ss"]) and math.isnan(empty["icat"])


def test_normalisations():
    # upstream: 2 ** (sum(log2 p) / n); per token: sum(ln p) / n -- same order, same ties
    a, b = [0.5, 0.25], [0.125, 0.5, 0.5]
    up = [2 ** (sum(math.log2(p) for p in x) / len(x)) for x in (a, b)]
    ours = [m.per_token(sum(math.log(p) for p in x), len(x)) for x in (a, b)]
    assert ours == pytest.approx([math.log(u) for u in up])
    assert (up[0] > up[1]) == (ours[0] > ours[1])
    assert m.per_character(-6.0, "abc") == -2.0 and m.per_character(-6.0, "") == -6.0
    with pytest.raises(ValueError, match="at least one scored token"):
        m.per_token(-1.0, 0)
