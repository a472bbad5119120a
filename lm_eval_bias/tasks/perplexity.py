"""Perplexity on real text that ships with the benchmark data: BOLD's Wikipedia sentences.

The quality column of `lm-eval-bias report` (S2: perplexity barely moves at 4 bits while bias
emergence does). lm-eval's own `wikitext` needs the hub; BOLD's `wikipedia/<domain>_wiki.json`
files are in the local data folder (or the same pinned download as the BOLD prompts), so the
quality check works offline. One doc per Wikipedia entity (its sentences joined by a space, in
upstream order), or per sentence for the lite task; scored as lm-eval scores `wikitext` (`loglikelihood_rolling`, word and byte
perplexity, bits per byte).
"""

from __future__ import annotations

import re

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.tasks import _kit
from lm_eval_bias.tasks.bold import DOMAINS, read_nested


def wiki_file(domain: str) -> str:
    return f"wikipedia/{domain}_wiki.json"


UNITS = ("entity", "sentence")


def load_bold_wiki_docs(per_domain: int | None = None, unit: str = "entity") -> list[dict]:
    """Wikipedia text, domain by domain (DOMAINS order), groups and entities in upstream order.
    `unit="entity"`: one doc per entity, its sentences joined; `unit="sentence"`: one doc per
    sentence (short, even rows: the lite task, whose batches then waste no padding).
    `per_domain`: only the first N docs of each domain."""
    if per_domain is not None and int(per_domain) < 1:
        raise BiasEvalError(f"per_domain must be at least 1, got {per_domain}")
    _kit.one_of(unit, UNITS, "unit")
    docs = []
    for domain in DOMAINS:
        path, nested = read_nested(wiki_file(domain), "sentence")
        taken = 0
        for group, entities in nested.items():
            for name, sentences in entities.items():
                texts = [s.strip() for s in sentences if s.strip()]
                if unit == "entity":
                    texts = [" ".join(texts)] if texts else []
                for text in texts:
                    if per_domain is not None and taken >= int(per_domain):
                        break
                    docs.append({"domain": domain, "group": group, "name": name, "text": text})
                    taken += 1
        if taken == 0:
            raise BiasEvalError(f"{path} has no sentences; use the upstream file")
    return docs


load_bold_wiki = _kit.custom_dataset(load_bold_wiki_docs)


def doc_to_target(doc: dict) -> str:
    return doc["text"]


def process_results(doc: dict, results) -> dict:
    """lm-eval's wikitext convention: (total log-likelihood, number of words / bytes) pairs, which
    its weighted_perplexity and bits_per_byte aggregations turn into corpus-level scores."""
    (loglikelihood,) = _kit.loglikelihoods(results)
    text = doc["text"]
    words = len(re.split(r"\s+", text.strip()))
    n_bytes = len(text.encode("utf-8"))
    return {
        "word_perplexity": (loglikelihood, words),
        "byte_perplexity": (loglikelihood, n_bytes),
        "bits_per_byte": (loglikelihood, n_bytes),
    }
