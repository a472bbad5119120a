"""Seeded option-order permutation, shared by every multiple-choice task.

Position bias is a known confound, so each multiple-choice task accepts
`--metadata '{"permute_seed": N}'`; the default (no seed) keeps the upstream order. The order of
one item depends only on (seed, benchmark, item key), so two runs with the same seed show every
item the same way, and a permuted run never pairs with an unpermuted one (its doc_hash differs).

A loader builds each doc with `perm = shown_order(seed, BENCHMARK, item_key, n)` (the identity
without a seed) and ends it with `mark_permuted(doc, seed, perm)`, which records the order.
"""

from __future__ import annotations

import random
from typing import Any

from lm_eval_bias.errors import BiasEvalError


def parse_permute_seed(permute_seed: Any) -> int | None:
    """`--metadata` value -> int seed, or None for the upstream order."""
    if permute_seed is None or permute_seed == "":
        return None
    try:
        if isinstance(permute_seed, bool):
            raise ValueError
        return int(str(permute_seed).strip())
    except ValueError:
        raise BiasEvalError(
            f"permute_seed must be an integer, got {permute_seed!r}; "
            f"e.g. --metadata '{{\"permute_seed\": 1}}'"
        ) from None


def option_permutation(seed: int, benchmark: str, item_key: str, n_options: int) -> list[int]:
    """Seeded order of an item's options: `perm[j]` is the upstream index shown at position j."""
    perm = list(range(n_options))
    random.Random(f"{benchmark}:{seed}:{item_key}").shuffle(perm)
    return perm


def shown_order(seed: int | None, benchmark: str, item_key: str, n_options: int) -> list[int]:
    """The order an item's options are shown in: upstream's (0..n-1) without a seed, else
    `option_permutation(seed, benchmark, item_key, n_options)`."""
    if seed is None:
        return list(range(n_options))
    return option_permutation(seed, benchmark, item_key, n_options)


def mark_permuted(doc: dict, seed: int | None, perm: list[int] | None = None) -> dict:
    """A doc built with a seed records it: `perm` (when given) and `permute_seed` are added, in
    that order, after its other keys; a doc in upstream's order gets neither. Returns `doc`."""
    if seed is not None:
        if perm is not None:
            doc["perm"] = perm
        doc["permute_seed"] = seed
    return doc
