"""The per-item record every task of this package emits: `bias_item` (its fields:
`lm_eval_bias.record_schema`, printed in docs/architecture.md).

`make_bias_item` is the only way such a record is built. It checks every field's type, so a task
bug fails at the first item instead of producing a run the analysis cannot read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

from lm_eval_bias.record_schema import BIAS_ITEM_VERSION, CORE_KEYS, EXTRAS_BY_NAME


def normalize_loglikelihoods(lls: Sequence[float]) -> list[float]:
    """Softmax of log-likelihoods: the probability of each option among the options.

    Stable for any finite inputs (the maximum is subtracted before exponentiating, so
    [-1000, -1001] gives [0.731, 0.269], not a division by zero). `-inf` entries get probability 0;
    at least one entry must be finite.

    >>> [round(p, 4) for p in normalize_loglikelihoods([-1.0, -2.0, -3.0])]
    [0.6652, 0.2447, 0.09]
    """
    values = [float(x) for x in lls]
    if not values:
        raise ValueError("normalize_loglikelihoods needs at least one log-likelihood")
    if any(math.isnan(x) or x == math.inf for x in values):
        raise ValueError(f"log-likelihoods must be finite or -inf, got {values}")
    top = max(values)
    if top == -math.inf:
        raise ValueError("all log-likelihoods are -inf: no option has any probability")
    exps = [math.exp(x - top) for x in values]
    total = math.fsum(exps)
    return [e / total for e in exps]


def _is_int(x: Any) -> bool:
    return isinstance(x, Integral) and not isinstance(x, bool)


def _check_json_value(key: str, value: Any) -> None:
    if value is None or isinstance(value, (bool, str)) or _is_int(value):
        return
    if isinstance(value, Real):
        if not math.isfinite(float(value)):
            raise ValueError(f"bias_item extra key {key!r} must be finite, got {value!r}")
        return
    if isinstance(value, (list, tuple)):
        for v in value:
            _check_json_value(key, v)
        return
    raise TypeError(
        f"bias_item extra key {key!r} must be a JSON scalar or a list of them, "
        f"got {type(value).__name__}"
    )


#: The Python types each reader kind of a declared extra accepts (None is always accepted).
_KIND_TYPES: dict[str, tuple[type, ...]] = {"int": (Integral,), "bool": (bool,), "str": (str,),
                                             "object": (dict,)}


def _check_declared_extra(key: str, value: Any) -> None:
    """A declared extra (`record_schema.EXTRA_FIELDS`) has the type the reader expects."""
    kind = EXTRAS_BY_NAME[key].reader
    types = _KIND_TYPES.get(kind)
    if value is None or types is None:
        return
    if not isinstance(value, types) or (kind == "int" and isinstance(value, bool)):
        raise TypeError(f"bias_item extra key {key!r} must be {kind} or None "
                        f"(record_schema.EXTRA_FIELDS), got {type(value).__name__}")


def make_bias_item(
    *,
    benchmark: str,
    choices: Sequence[str],
    pred: int | None,
    gold: int | None,
    biased: bool | None,
    groups: Sequence[str],
    axis: str,
    loglikelihoods: Sequence[float] | None = None,
    invalid: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """Build a version-1 `bias_item` record (keys and meaning: docs/architecture.md).

    loglikelihoods: one per choice (likelihood variants); `probs` is their softmax. None for
        generative variants, whose record then has `probs: null`.
    invalid: the response could not be mapped to an option; then `pred` and `biased` must be None.
    extra: benchmark-specific keys (JSON scalars or lists), documented in the task README.
    """
    if not isinstance(benchmark, str) or not benchmark:
        raise TypeError("bias_item benchmark must be a non-empty str")
    if isinstance(choices, str) or not all(isinstance(c, str) for c in choices):
        raise TypeError("bias_item choices must be a list of str")
    choices = list(choices)
    n = len(choices)
    if n < 2:
        raise ValueError(f"bias_item needs at least 2 choices, got {n}")
    if not isinstance(invalid, bool):
        raise TypeError("bias_item invalid must be a bool")
    if pred is not None and not (_is_int(pred) and 0 <= pred < n):
        raise ValueError(f"bias_item pred must be an int in [0, {n}) or None, got {pred!r}")
    if invalid and pred is not None:
        raise ValueError("bias_item: an invalid response has pred None")
    if not invalid and pred is None:
        raise ValueError("bias_item: pred is None only for an invalid response")
    if gold is not None and not (_is_int(gold) and 0 <= gold < n):
        raise ValueError(f"bias_item gold must be an int in [0, {n}) or None, got {gold!r}")
    if biased is not None and not isinstance(biased, bool):
        raise TypeError(f"bias_item biased must be a bool or None, got {type(biased).__name__}")
    if invalid and biased is not None:
        raise ValueError("bias_item: an invalid response has biased None")
    if isinstance(groups, str) or not all(isinstance(g, str) for g in groups):
        raise TypeError("bias_item groups must be a list of str")
    if not isinstance(axis, str):
        raise TypeError("bias_item axis must be a str")

    probs = None
    if loglikelihoods is not None:
        if len(loglikelihoods) != n:
            raise ValueError(f"bias_item: {len(loglikelihoods)} log-likelihoods for {n} choices")
        probs = normalize_loglikelihoods(loglikelihoods)

    record: dict[str, Any] = {
        "v": BIAS_ITEM_VERSION,
        "benchmark": benchmark,
        "choices": choices,
        "pred": None if pred is None else int(pred),
        "invalid": invalid,
        "probs": probs,
        "gold": None if gold is None else int(gold),
        "biased": biased,
        "groups": list(groups),
        "axis": axis,
    }
    if tuple(record) != CORE_KEYS:  # the schema and this builder must name the same fields
        raise RuntimeError(f"make_bias_item writes {tuple(record)}, the schema has {CORE_KEYS}")
    for key, value in extra.items():
        if key in CORE_KEYS:
            raise ValueError(f"bias_item extra key {key!r} collides with a core key")
        if key in EXTRAS_BY_NAME:
            _check_declared_extra(key, value)
        _check_json_value(key, value)
        record[key] = list(value) if isinstance(value, tuple) else value
    return record


def count_records(records: Sequence[object]) -> int:
    """lm-eval aggregation of the `bias_item` field, shared by every task: how many records the
    task wrote. (lm-eval aggregates every key process_results returns; the record's own "score"
    is its count.)"""
    return len(records)
