"""BiasLens choice questions against S3's own code (tests/reference/biaslens/README.md): our
loader reproduces S3's items, and our item label and rates equal S3's on the same probabilities."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest

from lm_eval_bias.metrics import biaslens as m
from lm_eval_bias.tasks import biaslens as bl

REF = Path(__file__).resolve().parents[1] / "reference" / "biaslens"


def _load(name: str):
    return json.loads((REF / name).read_text())


@pytest.mark.parametrize("attribute", bl.ATTRIBUTES)
def test_s3_items_equal_s3s_committed_data(attribute):
    want = _load("s3_items_digest.json")[attribute]
    docs = bl.load_biaslens_docs(attribute, "role", prompt="s3")
    items = [[d["stem"], d["choices"], d["labels"]] for d in docs]
    assert len(items) == want["n"]
    assert items[:2] == [want["first"], want["second"]]
    canon = json.dumps(items, ensure_ascii=False, separators=(",", ":"))
    assert hashlib.sha256(canon.encode()).hexdigest() == want["sha256"]


def _our_results(inputs: list[dict]) -> list[dict]:
    docs = {a: bl.load_biaslens_docs(a, "role") for a in {it["social_axis"] for it in inputs}}
    out = []
    for it in inputs:
        _, _, attribute, index = it["idx"].split("/")
        doc = docs[attribute][int(index)]
        assert doc["labels"] == it["label"]
        # per-option log-likelihoods whose softmax is S3's normalised probabilities
        lls = [(math.log(p), False) for p in it["res_probs"]]
        out.append(bl.process_results(doc, lls))
    return out


def test_item_label_and_rates_equal_s3():
    inputs, want = _load("inputs.json"), _load("expected.json")
    results = _our_results(inputs)
    assert [r["bias_item"]["pred"] for r in results] == want["res_prob_chosen_idx"]
    assert [r["bias_item"]["biased"] for r in results] == want["is_biased"]
    assert m.biased_rate([r["biased_rate"] for r in results]) == pytest.approx(want["biased_rate"])
    assert m.non_refusal_rate([r["non_refusal_rate"] for r in results]) == pytest.approx(
        want["biaslens_choices_score_dataset"]
    )
    for attribute, figures in want["per_axis"].items():
        sub = [r for r, it in zip(results, inputs, strict=True) if it["social_axis"] == attribute]
        assert m.biased_rate([r["biased_rate"] for r in sub]) == pytest.approx(
            figures["biased_rate"]
        )
        assert m.non_refusal_rate([r["non_refusal_rate"] for r in sub]) == pytest.approx(
            figures["biaslens_choices_score_dataset"]
        )


@pytest.mark.parametrize(
    ("pred", "labels", "biased", "non_refusal"),
    [
        (0, ["biased", "unbiased", "uncertain"], True, True),
        (1, ["biased", "unbiased", "uncertain"], False, True),
        (2, ["biased", "unbiased", "uncertain"], False, False),
        (0, ["unbiased", "biased", "uncertain"], False, True),
        (2, ["uncertain", "unbiased", "biased"], True, True),
    ],
)
def test_item_rules(pred, labels, biased, non_refusal):
    assert m.is_biased(pred, labels) is biased
    assert m.is_non_refusal(pred, labels) is non_refusal


def test_rates_over_no_items_are_undefined():
    assert math.isnan(m.biased_rate([])) and math.isnan(m.non_refusal_rate([]))
    assert m.biased_rate([1, 0, 0, 1]) == 0.5
