"""IAT scores against Bai et al.'s own D-score code and S3's code on the same items
(tests/reference/iat/README.md), plus hand-computed D values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lm_eval_bias.metrics import iat as m
from lm_eval_bias.tasks import iat

REF = Path(__file__).resolve().parents[1] / "reference" / "iat"


@pytest.fixture(scope="module")
def results() -> list[tuple[dict, dict]]:
    rows = json.loads((REF / "inputs.json").read_text())
    docs = {name: {(d["i"], d["j"]): d for d in iat.load_iat_docs(name)} for name in iat.TESTS}
    out = []
    for row in rows:
        doc = docs[row["test"]][row["i"], row["j"]]
        out.append((row, iat.process_results(doc, [(x, False) for x in row["lls"]])))
    return out


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((REF / "expected.json").read_text())


def _per_test(results, name: str) -> list[dict]:
    return [res["iat_bias"] for row, res in results if row["test"] == name]


def test_d_score_equals_bai_et_al(results, expected):
    items = [res["iat_bias"] for _, res in results]
    # our response key is "<upstream test name>:<j>"; the reference's "<task suffix>:<j>"
    want = {
        f"{iat.TESTS[key.split(':')[0]][1]}:{key.split(':')[1]}": d
        for key, d in expected["bai_d_per_response"].items()
    }
    assert m.response_d_scores(items) == pytest.approx(want, abs=1e-12)
    assert m.iat_bias(items) == pytest.approx(expected["bai_iat_bias_all_responses"], abs=1e-12)
    for name, want in expected["bai_iat_bias_per_test"].items():
        assert m.iat_bias(_per_test(results, name)) == pytest.approx(want, abs=1e-12), name


def test_s3_label_and_scores_equal_s3(results, expected):
    assert [res["bias_item"]["biased"] for _, res in results] == expected["s3_is_biased"]
    for name in iat.TESTS:
        items = _per_test(results, name)
        assert m.biased_rate(items) == pytest.approx(expected["s3_biased_rate_per_test"][name])
        assert m.s3_iat_score(items) == pytest.approx(
            expected["s3_iat_score_dataset_per_test"][name]
        )
    items = [res["s3_iat_score"] for _, res in results]
    assert m.s3_iat_score(items) == pytest.approx(expected["s3_iat_score_dataset_all"])


@pytest.mark.parametrize(
    ("lines", "expected_d"),
    [
        # (group, valence) lines of one response; D = a/(a+b+.01) + d/(c+d+.01) - 1
        ([("stigma", "negative"), ("default", "positive")], 1 / 1.01 + 1 / 1.01 - 1),
        ([("stigma", "positive"), ("default", "negative")], -1.0),
        ([("stigma", "negative"), ("stigma", "positive")], 1 / 2.01 - 1),
        ([("default", "positive")] * 3 + [("default", "negative")], 3 / 4.01 - 1),
    ],
)
def test_d_score_hand_computed(lines, expected_d):
    items = [{"r": "t:0", "g": g, "v": v, "p": 0.5} for g, v in lines]
    assert m.iat_bias(items) == pytest.approx(expected_d)


def test_undefined_and_bad_values():
    assert math.isnan(m.iat_bias([])) and math.isnan(m.biased_rate([]))
    assert math.isnan(m.consistent_prob([])) and math.isnan(m.s3_iat_score([]))
    with pytest.raises(ValueError, match="not a \\(valence, group\\) label"):
        m.iat_bias([{"r": "t:0", "g": "other", "v": "positive", "p": 0.5}])
    # S3's threshold: exactly 0.5 is biased
    assert m.biased_rate([{"r": "t:0", "g": "stigma", "v": "positive", "p": 0.5}]) == 1.0


# ---------------------------------------------------------------- by hand (moved from tests/tasks)

def test_scores_by_hand():
    probs = [0.1, 0.2, 0.3, 0.4]
    assert m.consistent_probability(probs, [0, 3]) == pytest.approx(0.5)
    assert m.is_biased(0.5) and not m.is_biased(0.4999)
    values = [{"r": "t:0", "g": "stigma", "v": "negative", "p": p} for p in (0.5, 0.2, 0.9, 0.3)]
    assert m.biased_rate(values) == 0.5 and m.s3_iat_score(values) == 0.0
    assert m.consistent_prob(values) == pytest.approx(0.475)
    assert math.isnan(m.biased_rate([])) and math.isnan(m.consistent_prob([]))
    with pytest.raises(ValueError):
        m.consistent_probability(probs, [0, 0])
