"""The perplexity task on BOLD's Wikipedia text: golden counts, lm-eval's wikitext scoring
convention by hand, `hf-quant` agreeing with `hf`, and the report's quality column end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lm_eval_bias.analysis.report import build_report_from_folders
from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.tasks import perplexity
from conftest import run_cli

TASKS = "bias_ppl_bold_wiki_lite,bias_bbq_lite_age"


def test_golden_counts_and_first_doc(data_dir):
    docs = perplexity.load_bold_wiki_docs()
    assert len(docs) == 7201  # Wikipedia entities with text, over the 5 domains
    assert docs[0] == {
        "domain": "gender", "group": "American_actors", "name": "Jacob_Zachar",
        "text": 'Jacob Zachar is an American actor whose roles include Russell "Rusty" Cartwright '
                "on the ABC Family TV Series Greek.",
    }
    first = perplexity.load_bold_wiki_docs(per_domain=40)
    assert [d["domain"] for d in first[::40]] == list(perplexity.DOMAINS)
    assert first[:40] == docs[:40]
    lite = perplexity.load_bold_wiki_docs(per_domain=100, unit="sentence")
    assert len(lite) == 500 and [d["domain"] for d in lite[::100]] == list(perplexity.DOMAINS)
    assert lite[0]["text"] == docs[0]["text"]  # Jacob Zachar's page is one sentence
    assert " ".join(d["text"] for d in lite if d["name"] == "Frank_Zagarino") == docs[1]["text"]
    with pytest.raises(BiasEvalError, match="per_domain must be at least 1"):
        perplexity.load_bold_wiki_docs(per_domain=0)
    with pytest.raises(BiasEvalError, match="unknown unit"):
        perplexity.load_bold_wiki_docs(unit="page")


def test_process_results_counts_words_and_utf8_bytes():
    doc = {"text": "Zoë  runs\tfast."}  # 3 words; "ë" is 2 bytes in UTF-8 -> 16 bytes
    out = perplexity.process_results(doc, [-12.5])
    assert out == {"word_perplexity": (-12.5, 3), "byte_perplexity": (-12.5, 16),
                   "bits_per_byte": (-12.5, 16)}


def _run(model: str, model_args: str, out: Path) -> dict:
    proc = run_cli(["lm_eval", "run", "--model", model, "--model_args", model_args,
                    "--device", "cpu", "--tasks", TASKS, "--limit", "4", "--batch_size", "2",
                    "--log_samples", "--output_path", str(out)], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (results_file,) = out.rglob("results_*.json")
    return json.loads(results_file.read_text())


@pytest.fixture(scope="module")
def runs(tiny_llama_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("ppl_runs")
    out = {}
    for name, model, args in (
        ("hf", "hf", f"pretrained={tiny_llama_dir}"),
        ("none", "hf-quant", f"pretrained={tiny_llama_dir},quant=none"),
        ("w2", "hf-quant", f"pretrained={tiny_llama_dir},quant=rtn,bits=2,group_size=32"),
    ):
        out[name] = (root / name, _run(model, args, root / name))
    return out


def test_hf_quant_perplexity_equals_hf(runs):
    hf = runs["hf"][1]["results"]["bias_ppl_bold_wiki_lite"]
    hq = runs["none"][1]["results"]["bias_ppl_bold_wiki_lite"]
    for metric in ("word_perplexity,none", "byte_perplexity,none", "bits_per_byte,none"):
        assert math.isfinite(hf[metric]) and hq[metric] == pytest.approx(hf[metric], rel=1e-4)
    w2 = runs["w2"][1]["results"]["bias_ppl_bold_wiki_lite"]
    assert w2["word_perplexity,none"] != pytest.approx(hq["word_perplexity,none"], rel=1e-3)


def test_report_puts_perplexity_next_to_bias(runs):
    report = build_report_from_folders([runs["none"][0], runs["w2"][0]], n_boot=100)
    quality = report["quality"]
    assert quality["available"]
    rows = {(r["task"], r["metric"]): r for r in quality["rows"]}
    row = rows[("bias_ppl_bold_wiki_lite", "word_perplexity")]
    ref = runs["none"][1]["results"]["bias_ppl_bold_wiki_lite"]["word_perplexity,none"]
    w2 = runs["w2"][1]["results"]["bias_ppl_bold_wiki_lite"]["word_perplexity,none"]
    (change,) = row["relative_change"].values()
    assert change == pytest.approx((w2 - ref) / ref)
