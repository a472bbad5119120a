"""Seeded option-order permutation, shared by every multiple-choice task.

Position bias is a known confound, so each multiple-choice task accepts
`--metadata '{"permute_seed": N}'`; the default (no seed) keeps the upstream order. The order of
one item depends only on (seed, benchmark, item key), so two runs with the same seed show every
item the same way, and a permuted run never pairs with an unpermuted one (its doc_hash differs).
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
