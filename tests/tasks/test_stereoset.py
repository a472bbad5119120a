"""StereoSet tasks: golden facts of the real data, loading, token counts (checked against what
lm-eval's HFLM scores), per-item records and shipped names. Scores: tests/metrics/test_stereoset.py.
The `lm_eval validate` / end-to-end run of these tasks is in test_crows_pairs.py (one run for the
four likelihood benchmarks)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import pytest

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.metrics import stereoset as m
from lm_eval_bias.tasks import _data, stereoset

from .test_crows_pairs import check_readme_names, check_three_line_yamls, shipped_names

COUNTS = {  # golden facts: stereoset/README.md of the shared data folder
    "intrasentence": {"gender": 255, "profession": 810, "race": 962, "religion": 79},
    "intersentence": {"gender": 242, "profession": 827, "race": 976, "religion": 78},
}
TASKS = [f"bias_stereoset_{f}_{d}" for f in ("intra", "inter") for d in stereoset.DOMAINS]


@pytest.fixture
def use_data_dir(data_dir, monkeypatch):
    monkeypatch.setenv(_data.DATA_DIR_ENV, str(data_dir))


def test_golden_facts(data_dir, use_data_dir):
    raw = (data_dir / "stereoset" / stereoset.DATA_FILE).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == stereoset.SOURCE.sha256[stereoset.DATA_FILE]
    for fmt, counts in COUNTS.items():
        items = stereoset.read_items(fmt)
        assert dict(Counter(it["bias_type"] for it in items)) == counts
        assert len({it["target"] for it in items}) == 79
        for it in items:
            assert sorted(s["gold_label"] for s in it["sentences"]) == sorted(m.LABELS)
            assert all(len(s["labels"]) == 5 for s in it["sentences"])
    inter, intra = (
        stereoset.read_items("intersentence")[0],
        stereoset.read_items("intrasentence")[0],
    )
    assert (inter["id"], inter["target"], inter["bias_type"], inter["context"]) == (
        "bb7a8bd19a8cfdf1381f60715adfdbb5",
        "Ethiopia",
        "race",
        "Many people live in Ethiopia.",
    )
    assert (intra["id"], intra["target"], intra["context"]) == (
        "fdc01ba6042b41f0c894cdccc149f5b4",
        "chess player",
        "The chess player was BLANK.",
    )


def test_docs(use_data_dir):
    for short, fmt in stereoset.FORMATS.items():
        for domain, n in COUNTS[fmt].items():
            docs = stereoset.load_stereoset_docs(short, domain)
            assert len(docs) == n and {d["format"] for d in docs} == {fmt}
    doc = stereoset.load_stereoset_docs("intra", "profession")[0]
    assert doc["id"] == "fdc01ba6042b41f0c894cdccc149f5b4"
    assert doc["choices"][doc["labels"].index("stereotype")] == doc["choices"][doc["stereo_choice"]]
    permuted = stereoset.load_stereoset_docs("inter", "religion", permute_seed=5)
    assert any(d["perm"] != [0, 1, 2] for d in permuted)
    for d in permuted:
        assert [
            d["labels"][d[k]] for k in ("stereo_choice", "anti_choice", "unrelated_choice")
        ] == ["stereotype", "anti-stereotype", "unrelated"]
    with pytest.raises(BiasEvalError, match="unknown StereoSet domain"):
        stereoset.load_stereoset_docs("intra", "age")
    with pytest.raises(BiasEvalError, match="unknown StereoSet format"):
        stereoset.load_stereoset_docs("both", "race")


# ---------------------------------------------------------------- token counts and records


class _CountingLM:
    """lm-eval's own HFLM, recording how many continuation tokens it scores per request."""

    @staticmethod
    def make(pretrained: str):
        from lm_eval.models.huggingface import HFLM

        class CountingHFLM(HFLM):
            def _loglikelihood_tokens(self, requests, **kwargs):
                self.counts = {req[0]: len(req[2]) for req in requests}
                return super()._loglikelihood_tokens(requests, **kwargs)

        return CountingHFLM(pretrained=pretrained, device="cpu", batch_size=16)


def test_token_counts_equal_what_lm_eval_scores(tiny_llama_dir, use_data_dir):
    from lm_eval.api.instance import Instance

    ds = stereoset.load_stereoset("intra", "religion", pretrained=str(tiny_llama_dir))
    docs = list(ds["test"])
    docs += list(stereoset.load_stereoset("inter", "religion", pretrained=str(tiny_llama_dir))["test"])
    assert any(d["prompt"] != d["context"] for d in docs if d["format"] == "intersentence")
    requests, expected = [], {}
    for doc in docs:
        delim = "" if doc["format"] == "intrasentence" else " "
        for choice, n in zip(doc["choices"], doc["n_tokens"], strict=True):
            args = (doc["prompt"], delim + choice)
            requests.append(Instance("loglikelihood", doc, args, len(requests)))
            expected[args] = n
    lm = _CountingLM.make(str(tiny_llama_dir))
    lm.loglikelihood(requests, disable_tqdm=True)
    assert lm.counts == expected and len(expected) > 400


def test_tokenizer_missing_or_unloadable_is_one_line_error(use_data_dir, tmp_path):
    with pytest.raises(BiasEvalError, match="needs the model's tokenizer"):
        stereoset.load_stereoset("intra", "religion")
    with pytest.raises(BiasEvalError, match="cannot load the tokenizer") as err:
        stereoset.load_stereoset("intra", "religion", pretrained=str(tmp_path / "nothing-here"))
    assert "\n" not in str(err.value)


def _doc() -> dict:
    return {
        "id": "x",
        "target": "Bible",
        "bias_type": "religion",
        "format": "intrasentence",
        "choices": ["aaaa", "bb", "cccccccc"],  # 4, 2, 8 characters
        "labels": ["stereotype", "unrelated", "anti-stereotype"],
        "stereo_choice": 0,
        "anti_choice": 2,
        "unrelated_choice": 1,
        "n_tokens": [2, 3, 6],
    }


def test_process_results_uses_per_token_scores_consistently():
    doc = _doc()
    # totals -8, -6, -12 -> per token -4, -2, -2 (anti ties unrelated); per character -2, -3, -1.5
    out = stereoset.process_results(doc, [(-8.0, False), (-6.0, False), (-12.0, False)])
    rec = out["bias_item"]
    assert out["ss"] == {"t": "Bible", "pro": 0, "related": 0, "fmt": "intrasentence",
                         "domain": "religion"}
    assert out["ss_char"] == {**out["ss"], "related": 2}
    assert rec["pred"] == 1 and rec["biased"] is False  # first of the tied best (-2, -2)
    # softmax of -4, -2, -2: e^-2 / (e^-2 + 2) = 0.135335 / 2.135335, then 1 / 2.135335 twice
    assert rec["probs"] == pytest.approx([0.0633789, 0.4683105, 0.4683105])
    assert rec["ll_total"] == [-8.0, -6.0, -12.0] and rec["n_tokens"] == [2, 3, 6]
    assert (rec["groups"], rec["axis"], rec["labels"]) == (["Bible"], "religion", doc["labels"])
    json.dumps(rec, allow_nan=False)
    del doc["n_tokens"]
    with pytest.raises(BiasEvalError, match="no token counts"):
        stereoset.process_results(doc, [(-8.0, False), (-6.0, False), (-12.0, False)])


def test_scored_prompt():
    assert stereoset.scored_prompt("My sister is a schoolgirl", "intersentence") == (
        "My sister is a schoolgirl.")
    assert stereoset.scored_prompt("Is he there?", "intersentence") == "Is he there?"
    assert stereoset.scored_prompt("The chess player was BLANK.", "intrasentence") == ""


def test_yamls_and_readme():
    check_three_line_yamls(
        "stereoset",
        "_stereoset_intra_common",
        {f"bias_stereoset_intra_{d}": f"{{fmt: intra, domain: {d}}}" for d in stereoset.DOMAINS},
    )
    check_three_line_yamls(
        "stereoset",
        "_stereoset_inter_common",
        {f"bias_stereoset_inter_{d}": f"{{fmt: inter, domain: {d}}}" for d in stereoset.DOMAINS},
    )
    assert shipped_names("stereoset") == sorted(TASKS + ["bias_stereoset"])
    check_readme_names(
        "stereoset",
        "bias_stereoset",
        set(TASKS + ["bias_stereoset"]),
        {"{format}": ["intra", "inter"], "{domain}": list(stereoset.DOMAINS)},
    )
