"""Shared helpers of the rebuilders: reading what lm-eval logged for one sample.

lm-eval 0.4.13 writes each sample line with ``doc`` (the processed document), ``resps`` and
``filtered_resps`` turned into strings (`lm_eval.utils.sanitize_list`), and every per-sample
metric value under its own name. A multiple-choice request's filtered response is
``[loglikelihood, is_greedy]``, one per option; a generation's is the text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

#: Key every rebuilt record carries: ``"lm-eval:<built-in task family>"``.
REBUILT_KEY = "rebuilt_from"


class RebuildError(ValueError):
    """A sample line lacks what its built-in task logs; the message says what."""


def doc_fields(sample: dict, *keys: str) -> dict:
    """The logged ``doc``; refuses one without every key of `keys`."""
    doc = sample.get("doc")
    if not isinstance(doc, dict):
        raise RebuildError("the sample line has no logged doc")
    missing = [k for k in keys if k not in doc]
    if missing:
        raise RebuildError(f"its doc lacks {', '.join(missing)}")
    return doc


def _number(x: Any) -> float:
    if isinstance(x, bool):
        raise RebuildError(f"log-likelihood {x!r} is not a number")
    try:
        value = float(x)
    except (TypeError, ValueError):
        raise RebuildError(f"log-likelihood {str(x)[:40]!r} is not a number") from None
    if math.isnan(value) or value == math.inf:
        raise RebuildError(f"log-likelihood {value} is not finite")
    return value


def loglikelihoods(sample: dict, n: int) -> list[float]:
    """The `n` option log-likelihoods of a multiple-choice sample, from ``filtered_resps``."""
    resps = sample.get("filtered_resps")
    if not isinstance(resps, list) or len(resps) != n:
        got = len(resps) if isinstance(resps, list) else type(resps).__name__
        raise RebuildError(f"filtered_resps must hold {n} [loglikelihood, is_greedy] pairs "
                           f"(one per option of the built-in task), got {got}")
    out = []
    for r in resps:
        if not isinstance(r, (list, tuple)) or not r:
            raise RebuildError(f"filtered_resps entry {str(r)[:40]!r} is not [loglikelihood, "
                               "is_greedy]")
        out.append(_number(r[0]))
    if all(v == -math.inf for v in out):
        raise RebuildError("every option has log-likelihood -inf")
    return out


def generation(sample: dict) -> str:
    """The filtered text of a generation sample (``filtered_resps[0]``)."""
    resps = sample.get("filtered_resps")
    if not isinstance(resps, list) or len(resps) != 1 or not isinstance(resps[0], str):
        raise RebuildError("filtered_resps must hold one generated text")
    return resps[0]


def first_argmax(values: Sequence[float]) -> int:
    """Index of the first largest value (numpy.argmax's rule, which lm-eval uses)."""
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


def logsumexp(values: Sequence[float]) -> float:
    """log(sum(exp(values))), stable; -inf when every value is -inf."""
    top = max(values)
    if top == -math.inf:
        return top
    return top + math.log(math.fsum(math.exp(v - top) for v in values))


def logged_number(sample: dict, metric: str) -> float | None:
    """A per-sample metric value lm-eval logged (a number), or None when it was not logged."""
    value = sample.get(metric)
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def check_logged(sample: dict, metric: str, rebuilt: float) -> None:
    """Refuse a sample whose logged per-sample `metric` differs from the rebuilt value: then the
    log is not of the built-in task this rebuilder reads."""
    logged = logged_number(sample, metric)
    if logged is not None and not math.isclose(logged, rebuilt, rel_tol=1e-9, abs_tol=1e-9):
        raise RebuildError(f"lm-eval logged {metric}={logged} but the built-in task's rule "
                           f"gives {rebuilt}")
