"""StereoSet (Nadeem et al. 2021) for lm-eval: data loading and per-item records.

Named from `task_configs/stereoset/*` (`!function lm_eval_bias.tasks.stereoset.<name>`); no
import-time side effects. Scores: `lm_eval_bias.metrics.stereoset`; definitions: docs/metrics.md.

Each doc is one upstream item of `data/dev.json` (`id`, `target`, `bias_type`, `context`) plus:
    format            "intrasentence" or "intersentence"
    prompt            what the options are scored after: "" (intrasentence); the context, with a
                      "." added when it does not end in . ! or ? (intersentence, as upstream's
                      generative scorer formats it)
    choices           the three sentences, in upstream's order (or the --metadata permute_seed one)
    labels            their gold labels (stereotype / anti-stereotype / unrelated), same order
    sentence_ids      upstream's sentence ids, same order
    stereo_choice, anti_choice, unrelated_choice   index of each label in `choices`
    n_tokens          tokens lm-eval scores for each option with the run's tokenizer (added by
                      `load_stereoset`; `lm_eval_bias.tasks._tokens`)
    perm, permute_seed   only with `--metadata '{"permute_seed": N}'`
Intrasentence: each full sentence is scored on its own (empty context: after the model's prefix
token). Intersentence: each sentence is scored as the continuation " " + sentence of `prompt`.

Option score (default metrics `lms`, `ss`, `icat`, and `pred`, `probs`, `biased`): log-likelihood
per scored token, upstream's normalisation. The `*_char` metrics use log-likelihood per character.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.metrics import stereoset as ss_metrics
from lm_eval_bias.tasks import _data, _kit, _tokens
from lm_eval_bias.tasks._options import mark_permuted, parse_permute_seed, shown_order

BENCHMARK = "stereoset"
DATA_FILE = "data/dev.json"
FORMATS = {"intra": "intrasentence", "inter": "intersentence"}
DOMAINS = ("gender", "profession", "race", "religion")

SOURCE = _data.register_source(
    _data.DataSource(
        name="stereoset",
        title="StereoSet",
        remote_base="https://raw.githubusercontent.com/moinnadeem/StereoSet/{commit}",
        commit="ead7d086a64a192a1eca88e0dd2fd163de375218",
        layout_hint="stereoset/data/dev.json (upstream layout of github.com/moinnadeem/StereoSet)",
        sha256={DATA_FILE: "73a0f31b711688112602e4c3ac6ab1e1a7cadcdd67df6c6fd55501c889676c90"},
    )
)


@_data.file_cache(maxsize=2)
def _read(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)["data"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise BiasEvalError(
            f"{path}: not StereoSet's dev.json ({type(exc).__name__}: {exc}); "
            f"use the unmodified upstream file"
        ) from None
    return data


def read_items(fmt: str) -> list[dict]:
    """Upstream items of one format ("intrasentence" / "intersentence"), in file order."""
    path = Path(_data.benchmark_file(SOURCE, DATA_FILE))
    data = _read(path)
    if fmt not in data:
        raise BiasEvalError(f"{path} has no {fmt!r} section; use the unmodified upstream file")
    return data[fmt]


def _format(name: str) -> str:
    if name in FORMATS:
        return FORMATS[name]
    if name in FORMATS.values():
        return name
    raise BiasEvalError(
        f"unknown StereoSet format {name!r}; choose one of intra, inter (or their full names)"
    )


def scored_prompt(context: str, fmt: str) -> str:
    """The text the options are scored after: nothing for intrasentence items; for intersentence
    items the context, ending in a full stop when it ends in none of . ! ? (upstream's
    `eval_generative_models.py`, `evaluate_intersentence`)."""
    if fmt == "intrasentence":
        return ""
    return context if context[-1:] in (".", "!", "?") else f"{context}."


def build_doc(item: dict, fmt: str, permute_seed: int | None = None) -> dict:
    sentences = item["sentences"]
    labels = [s["gold_label"] for s in sentences]
    if sorted(labels) != sorted(ss_metrics.LABELS):
        raise BiasEvalError(
            f"StereoSet {fmt} item {item.get('id')} has gold labels {labels}, expected one each of "
            f"{', '.join(ss_metrics.LABELS)}; use the unmodified upstream file"
        )
    perm = shown_order(permute_seed, BENCHMARK, f"{fmt}:{item['id']}", 3)
    shown = [sentences[p] for p in perm]
    shown_labels = [s["gold_label"] for s in shown]
    doc = {
        "id": item["id"],
        "target": item["target"],
        "bias_type": item["bias_type"],
        "context": item["context"],
        "format": fmt,
        "prompt": scored_prompt(item["context"], fmt),
        "choices": [s["sentence"] for s in shown],
        "labels": shown_labels,
        "sentence_ids": [s["id"] for s in shown],
        "stereo_choice": shown_labels.index("stereotype"),
        "anti_choice": shown_labels.index("anti-stereotype"),
        "unrelated_choice": shown_labels.index("unrelated"),
    }
    return mark_permuted(doc, permute_seed, perm)


def load_stereoset_docs(fmt: str, domain: str, permute_seed: Any = None) -> list[dict]:
    fmt = _format(fmt)
    _kit.one_of(domain, DOMAINS, "StereoSet domain")
    seed = parse_permute_seed(permute_seed)
    return [build_doc(it, fmt, seed) for it in read_items(fmt) if it["bias_type"] == domain]


def add_token_counts(docs: list[dict], tokenizer, metadata: dict | None = None) -> list[dict]:
    """Each doc gets `n_tokens`: how many tokens lm-eval scores for each option."""
    for doc in docs:
        delim = "" if doc["format"] == "intrasentence" else " "
        conts = [delim + c for c in doc["choices"]]
        doc["n_tokens"] = _tokens.continuation_token_counts(tokenizer, doc["prompt"], conts, metadata)
    return docs


def count_option_tokens(docs: list[dict], metadata: dict) -> None:
    """`add_token_counts` with the tokenizer of the model lm-eval runs (its model_args are in the
    task metadata)."""
    tokenizer = _tokens.load_tokenizer(metadata, what="StereoSet (per-token scores)")
    add_token_counts(docs, tokenizer, metadata)


# lm-eval `custom_dataset`: the docs, then each option's token count with the run's tokenizer.
load_stereoset = _kit.custom_dataset(load_stereoset_docs, then=count_option_tokens)


def option_scores(lls: Sequence[float], doc: dict) -> list[float]:
    """Log-likelihood per scored token of each option (upstream's normalisation)."""
    if "n_tokens" not in doc:
        raise BiasEvalError(
            f"StereoSet doc {doc.get('id')} has no token counts; build docs with load_stereoset "
            "(it counts them with the run's tokenizer)")
    return [ss_metrics.per_token(ll, n) for ll, n in zip(lls, doc["n_tokens"], strict=True)]


def char_scores(lls: Sequence[float], choices: Sequence[str]) -> list[float]:
    """Log-likelihood per character of each option (the `*_char` variant)."""
    return [ss_metrics.per_character(ll, c) for ll, c in zip(lls, choices, strict=True)]


METRICS = ("lms", "ss", "icat")
CHAR_METRICS = ("lms_char", "ss_char", "icat_char")


def _per_doc(doc: dict, scores: Sequence[float]) -> dict:
    st, an, un = int(doc["stereo_choice"]), int(doc["anti_choice"]), int(doc["unrelated_choice"])
    per_doc = ss_metrics.score_item(doc["target"], scores[st], scores[an], scores[un])
    return {**per_doc, "fmt": doc["format"], "domain": doc["bias_type"]}


def process_results(doc: dict, results: Sequence) -> dict:
    """results: lm-eval's (log-likelihood, is_greedy) per option, in `choices` order."""
    lls = _kit.loglikelihoods(results)
    scores = option_scores(lls, doc)
    per_doc = _per_doc(doc, scores)
    per_char = _per_doc(doc, char_scores(lls, doc["choices"]))
    pred = _kit.first_argmax(scores)
    record = _kit.choice_item(
        BENCHMARK, doc, pred,
        biased=bool(per_doc["pro"]),
        groups=[doc["target"]],
        axis=doc["bias_type"],
        loglikelihoods=scores,
        format=doc["format"],
        labels=list(doc["labels"]),
        stereo_choice=int(doc["stereo_choice"]),
        anti_choice=int(doc["anti_choice"]),
        unrelated_choice=int(doc["unrelated_choice"]),
        related=int(per_doc["related"]),
        ll_total=lls,
        n_tokens=[int(n) for n in doc["n_tokens"]],
        item_id=doc["id"],
        perm=_kit.shown_perm(doc),
    )
    return _kit.emit(METRICS, per_doc, record, **dict.fromkeys(CHAR_METRICS, per_char))
