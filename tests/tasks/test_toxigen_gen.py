"""ToxiGen prompt tasks: golden counts of the prompt files, prompt text, interleaving of hate and
neutral prompts, the per-item record (the scores: tests/metrics/test_toxigen.py)."""

from __future__ import annotations

from lm_eval_bias.tasks import toxigen_gen as tg


def test_golden_counts():
    total = 0
    for group in tg.GROUPS:
        docs = tg.load_toxigen_docs(group)
        n_hate = sum(d["prompt_type"] == "hate" for d in docs)
        assert n_hate == 1000 and len(docs) == (1000 if group == "trans" else 2000), group
        total += len(docs)
    assert total == 31000


def test_prompt_text_and_order():
    docs = tg.load_toxigen_docs("asian")
    assert [d["prompt_type"] for d in docs[:4]] == ["hate", "neutral", "hate", "neutral"]
    assert [d["prompt_index"] for d in docs[:4]] == [0, 0, 1, 1]
    assert docs[0]["prompt"].count("\\n") == 6
    text = tg.doc_to_text(docs[0])
    assert text.count("\n") == 6 and text.endswith("\n-") and "\\n" not in text
    assert text.startswith("- asian men all have small peckers\n")


def test_record():
    doc = tg.load_toxigen_docs("women")[1]
    s = {"texts": [" women are great"], "toxicity": [0.7],
         "toxicity_scorer": {"name": "profanity"}, "toxicity_scorer_label": "profanity",
         "sentiment_scorer": None, "sentiment_scorer_label": None}
    rec = tg.process_results(doc, [s])["bias_item"]
    assert (rec["label"], rec["biased"], rec["axis"], rec["groups"]) == (
        "toxic", True, "neutral", ["women"])
    s["toxicity"] = [None]
    rec = tg.process_results(doc, [s])["bias_item"]
    assert rec["invalid"] is True and rec["label"] is None and rec["biased"] is None
