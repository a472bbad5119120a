"""BOLD (Dhamala et al. 2021) for lm-eval: the model continues Wikipedia sentence beginnings about
people and groups; each continuation is scored for sentiment (VADER compound, S1 classes at +-0.5),
toxicity (the chosen toxicity scorer) and, when chosen, regard (scorers/regard.py); the bias of a
domain is the spread of its subgroups' means (mean absolute pairwise difference, S1).

Named from `task_configs/bold/*`; no import-time side effects. Scores: `metrics/sentiment.py`,
`metrics/toxicity.py`. Scorers: `lm_eval_bias/scorers/`, chosen and checked in `load_bold`.

Each doc: ``benchmark`` ("bold"), ``subset`` and ``domain`` (e.g. "gender"), ``group`` (the
subgroup, upstream's category, e.g. "American_actresses"), ``name`` (the Wikipedia entity),
``prompt`` (upstream's text, unchanged; the model sees it with trailing whitespace removed),
``prompt_index`` (position among the entity's prompts).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.tasks import _data, _kit, _open

BENCHMARK = "bold"
DOMAINS = ("gender", "race", "profession", "religious_ideology", "political_ideology")

# fmt: off
_BOLD_SHA256 = {
    "prompts/gender_prompt.json":
        "a863aaf2492e3c911c39f435005abee2eba5f5edabe836e97de110cd83273054",
    "prompts/political_ideology_prompt.json":
        "a83ea7cc272971b618231e13bcb5c1d1be5b208c92135c4ffde85be31f8ab4c6",
    "prompts/profession_prompt.json":
        "5508012069f20419559417e64d8bb2b8d864ebf8afedd21e5ca564393c291794",
    "prompts/race_prompt.json":
        "200337f6c43b09671e580b1df6aea2cdc0196ee02779260e9881da07029e1cb6",
    "prompts/religious_ideology_prompt.json":
        "633830ea87d569e5476895a93f68b8f686cb0dcae6d67a1091a9247c5c4c931d",
    "wikipedia/gender_wiki.json":
        "a6f3bb5139dc4e4615e199dfd56a971a5829b09cb78c790d6cad554e4b9111dc",
    "wikipedia/political_ideology_wiki.json":
        "a07fe5ec08abe793318c6394c397d9515c233ded7079c1ad9e947c546dc88fa6",
    "wikipedia/profession_wiki.json":
        "3d5f719a131e06d32d3bff709c613fc52c818c391262240cf0017522b3ed04a2",
    "wikipedia/race_wiki.json":
        "f87f64909db217119c1bca8e4f610876ae3bb48461b77ac863f09cc90e99c132",
    "wikipedia/religious_ideology_wiki.json":
        "094982f89659966d17e6c264f3abd8feae0415bb982e32166de93ea881bc63ef",
}
# fmt: on

BOLD = _data.register_source(
    _data.DataSource(
        name="bold",
        title="BOLD",
        remote_base="https://raw.githubusercontent.com/amazon-science/bold/{commit}",
        commit="3ad652c773f5d1e30d5f6f61657ed934d768ecad",
        layout_hint="bold/prompts/<domain>_prompt.json (upstream layout of "
        "github.com/amazon-science/bold)",
        sha256=_BOLD_SHA256,
    )
)


def prompt_file(domain: str) -> str:
    return f"prompts/{domain}_prompt.json"


def read_nested(relpath: str, item: str) -> tuple[Path, dict]:
    """The path and content of one BOLD file: {group: {name: [<item>, ...]}} (prompts, or the
    Wikipedia sentences that tasks/perplexity.py reads)."""
    path = _data.benchmark_file(BOLD, relpath)
    try:
        nested = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BiasEvalError(f"{path}: not valid JSON ({exc.msg}); use the upstream file") from None
    if not isinstance(nested, dict):
        raise BiasEvalError(f"{path}: expected {{group: {{name: [{item}, ...]}}}}; use the "
                            "upstream file")
    return path, nested


def load_bold_docs(domain: str) -> list[dict]:
    """All prompts of one domain, in upstream order (group, entity, prompt)."""
    _kit.one_of(domain, DOMAINS, "BOLD domain")
    path, nested = read_nested(prompt_file(domain), "prompt")
    docs = []
    for group, entities in nested.items():
        for name, prompts in entities.items():
            for i, prompt in enumerate(prompts):
                docs.append({"benchmark": BENCHMARK, "subset": domain, "domain": domain,
                             "group": group, "name": name, "prompt": prompt, "prompt_index": i})
    if not docs:
        raise BiasEvalError(f"{path} has no prompts; use the upstream file")
    return docs


# lm-eval `custom_dataset`: ``--metadata '{"toxicity_scorer": "..."}'`` picks the toxicity scorer
# (default ``profanity``), ``"regard_scorer": "regard"`` (or ``"regard:<model id or path>"``) adds
# regard next to VADER; all are checked when the task is built, before any generation starts.
load_bold = _open.scored_dataset(load_bold_docs, sentiment=True)


def doc_to_text(doc: dict) -> str:
    return doc["prompt"].rstrip()


def process_results(doc: dict, results: Sequence) -> dict:
    """Per-doc values for every metric (metrics/sentiment.py, metrics/toxicity.py) and the
    `bias_item` (label = sentiment class; see task_configs/bold/README.md). An empty continuation
    enters no score (S1 drops empty generations): its per-doc sentiment and toxicity are None and
    ``n_empty`` is 1; its record keeps the scorers' values and says ``empty: true``."""
    s = _open.scored(results)
    text, tox, comp = s["texts"][0], s["toxicity"][0], s["sentiment"][0]
    empty = len(text) == 0
    with_regard = bool(s.get("regard_scorer"))
    regard = s["regard"][0] if with_regard else None
    per_doc = {
        "group": doc["group"],
        "sentiment": None if empty else comp,
        "toxicity": None if empty else tox,
        "n_empty": int(empty),
        "toxicity_scorer": s["toxicity_scorer_label"],
        "sentiment_scorer": s["sentiment_scorer_label"],
    }
    failures = int(tox is None) + int(comp is None) + int(with_regard and regard is None)
    record = _open.sentiment_record(
        BENCHMARK, compound=comp, toxicity=tox, groups=[doc["group"]], axis=doc["domain"], s=s,
        regard=regard, text=text, name=doc["name"], n_scorer_failures=failures, empty=empty,
    )
    out = _kit.emit(METRICS, per_doc, record)
    if with_regard:
        # Regard metrics exist only in runs that chose a regard scorer: lm-eval aggregates only
        # the metrics process_results returns, so runs without one look exactly as before.
        per_regard = {"group": doc["group"], "regard": (regard or {}).get("regard"),
                      "regard_class": (regard or {}).get("class"),
                      "regard_scorer": s["regard_scorer_label"]}
        out |= {m: per_regard for m in REGARD_METRICS}
    return out


METRICS = (
    "sentiment_score", "sentiment_gap", "sentiment_mean", "positive_rate", "negative_rate",
    "compound_gap", "sentiment_by_group", "toxicity_score", "toxicity_gap", "toxicity_rate",
    "toxicity_by_group", "n_scorer_failures", "n_empty", "toxicity_scorer", "sentiment_scorer",
)
REGARD_METRICS = ("regard_mean", "regard_gap", "regard_by_group", "regard_scorer")
