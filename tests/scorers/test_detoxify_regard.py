"""The `detoxify` and `regard` scorers, run for real (the detoxify package, transformers) on tiny
random-init BERT classifiers saved here in each one's own format; offline without weights, each
is a one-line BiasEvalError before anything is generated."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.scorers import available_scorers, get_scorer
from lm_eval_bias.scorers.regard import LABELS

from ._tiny import build_tiny_bert_classifier, build_tiny_detoxify

TEXTS = ["You are a stupid idiot.", "Have a nice day.", "The weather is mild.",
         "She was known as a kind and wonderful person."]
ORIGINAL_FILE = "toxic_original-c1212f89.ckpt"  # the file name Detoxify's "original" URL ends in


def _one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text
    return text


# ---------------------------------------------------------------- detoxify


@pytest.fixture(scope="module")
def tiny_detoxify(tmp_path_factory):
    return build_tiny_detoxify(tmp_path_factory.mktemp("tiny-detoxify"))


def _toxicity_by_hand(ckpt) -> list[float]:
    """sigmoid of the toxicity logit, computed with transformers alone, text by text."""
    import torch
    from transformers import BertForSequenceClassification, BertTokenizer

    arch = ckpt.parent / "arch"
    tok = BertTokenizer.from_pretrained(arch)
    model = BertForSequenceClassification.from_pretrained(arch).eval()
    out = []
    for text in TEXTS:
        with torch.no_grad():
            logits = model(**tok([text], return_tensors="pt")).logits
        out.append(float(torch.sigmoid(logits[0, 0])))  # class 0: "toxic" -> "toxicity"
    return out


def test_detoxify_registered_with_default_model():
    assert "detoxify[:<model>]" in available_scorers("toxicity")
    assert get_scorer("detoxify").spec == "detoxify:original"
    assert get_scorer("detoxify:original").spec == "detoxify:original"


def test_detoxify_offline_without_weights_is_one_line(tmp_path, monkeypatch):
    # an empty torch hub cache, HF_HUB_OFFLINE=1 (tests/conftest.py); the network guard fails the
    # test if anything tried the download
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for spec, file in (("detoxify", ORIGINAL_FILE), ("detoxify:unbiased", "toxic_debiased")):
        with pytest.raises(BiasEvalError) as exc:
            get_scorer(spec).check()
        msg = _one_line(exc)
        assert f"checkpoint {file}" in msg and "not in the torch hub cache" in msg
        assert "HF_HUB_OFFLINE is set" in msg and "detoxify:/path/to/checkpoint.ckpt" in msg
        assert "https://github.com/unitaryai/detoxify/releases/download/" in msg


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("missing.ckpt", "is neither a Detoxify model (original, unbiased, multilingual"),
        ("no-config.ckpt", "cannot load Detoxify"),
        ("no-toxicity.ckpt", "has no 'toxicity' output (classes: insult, threat)"),
    ],
)
def test_detoxify_bad_checkpoints(argument, message, tmp_path):
    import torch

    torch.save({"state_dict": {}}, tmp_path / "no-config.ckpt")
    other = build_tiny_detoxify(tmp_path / "other", classes=["insult", "threat"])
    shutil.move(other, tmp_path / "no-toxicity.ckpt")
    with pytest.raises(BiasEvalError, match=message.replace("(", r"\(").replace(")", r"\)")) as exc:
        get_scorer(f"detoxify:{tmp_path / argument}").check()
    _one_line(exc)


def test_detoxify_scores_its_toxicity_output(tiny_detoxify):
    s = get_scorer(f"detoxify:{tiny_detoxify}")
    s.batch_size = 3  # a full batch and a batch of one (which Detoxify squeezes to a float)
    got = s.score(TEXTS)
    assert got == pytest.approx(_toxicity_by_hand(tiny_detoxify), abs=1e-5)
    assert len({round(v, 6) for v in got}) == len(TEXTS)  # the texts are told apart
    sha = hashlib.sha256(tiny_detoxify.read_bytes()).hexdigest()[:12]
    info = s.info()
    assert info["kind"] == "toxicity" and info["version"] and info["output"] == "toxicity"
    assert info["classes"][0] == "toxicity" and info["checkpoint_sha256_12"] == sha
    assert s.label() == f"detoxify:{tiny_detoxify} (detoxify {info['version']}, checkpoint {sha})"


def test_detoxify_named_model_from_the_torch_hub_cache(tiny_detoxify, tmp_path, monkeypatch):
    # what a first online run leaves behind: the release's file in <TORCH_HOME>/hub/checkpoints
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    shutil.copy(tiny_detoxify, cache / ORIGINAL_FILE)
    s = get_scorer("detoxify")
    assert s.score(TEXTS) == pytest.approx(_toxicity_by_hand(tiny_detoxify), abs=1e-5)
    assert s.info()["checkpoint"] == ORIGINAL_FILE and s.spec == "detoxify:original"


# ---------------------------------------------------------------- regard

REGARD_LABELS = {0: "negative", 1: "neutral", 2: "positive", 3: "other"}


@pytest.fixture(scope="module")
def tiny_regard(tmp_path_factory):
    return build_tiny_bert_classifier(tmp_path_factory.mktemp("tiny-regard"), REGARD_LABELS)


def _softmax_by_hand(path) -> list[list[float]]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    rows = []
    for text in TEXTS:
        with torch.no_grad():
            rows.append(torch.softmax(model(**tok([text], return_tensors="pt")).logits[0], -1)
                        .tolist())
    return rows


def test_regard_classify_and_score(tiny_regard):
    s = get_scorer(f"regard:{tiny_regard}", "sentiment")
    s.batch_size = 3
    got = s.classify(TEXTS)
    for details, row in zip(got, _softmax_by_hand(tiny_regard), strict=True):
        expected = {REGARD_LABELS[i]: p for i, p in enumerate(row)}
        assert details["probs"] == pytest.approx(expected, abs=1e-5)
        assert sum(details["probs"].values()) == pytest.approx(1.0, abs=1e-5)
        assert details["regard"] == pytest.approx(expected["positive"] - expected["negative"],
                                                  abs=1e-5)
        assert details["class"] == max(expected, key=expected.get)
    assert len({d["class"] for d in got}) > 1  # not one class for everything
    assert s.score(TEXTS) == pytest.approx([d["regard"] for d in got], abs=1e-6)
    info = s.info()
    assert info["kind"] == "sentiment" and info["labels"] == list(LABELS)
    assert info["model"] == str(tiny_regard) and info["version"]
    assert s.label().startswith(f"regard:{tiny_regard} (transformers ")


def test_regard_maps_labels_by_name(tiny_regard, tmp_path):
    # the same weights with the labels in another order: each probability follows its name
    import json

    permuted = tmp_path / "permuted"
    shutil.copytree(tiny_regard, permuted)
    order = {0: "other", 1: "positive", 2: "negative", 3: "neutral"}
    cfg = json.loads((permuted / "config.json").read_text())
    cfg["id2label"] = {str(k): v for k, v in order.items()}
    cfg["label2id"] = {v: k for k, v in order.items()}
    (permuted / "config.json").write_text(json.dumps(cfg))
    a = get_scorer(f"regard:{tiny_regard}").classify(TEXTS[:2])
    b = get_scorer(f"regard:{permuted}").classify(TEXTS[:2])
    for x, y in zip(a, b, strict=True):
        for i in range(4):
            assert y["probs"][order[i]] == pytest.approx(x["probs"][REGARD_LABELS[i]], abs=1e-6)


def test_regard_refuses_other_labels_and_missing_models(tmp_path):
    wrong = build_tiny_bert_classifier(tmp_path / "wrong", {0: "non-toxic", 1: "toxic"})
    with pytest.raises(BiasEvalError, match="model labels are non-toxic, toxic; a regard "
                                            "classifier has exactly negative, neutral") as exc:
        get_scorer(f"regard:{wrong}").check()
    _one_line(exc)
    # the default model offline (HF_HUB_OFFLINE=1, nothing cached) and a missing folder
    for spec, name in (("regard", "sasha/regardv3"), (f"regard:{tmp_path / 'none'}", "none")):
        with pytest.raises(BiasEvalError, match="cannot load sequence classifier") as exc:
            get_scorer(spec).check()
        assert name in _one_line(exc) and "regard:/path/to/model" in str(exc.value)
