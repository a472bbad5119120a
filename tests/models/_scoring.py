"""Log-likelihood probes shared by the quantization tests: a few real requests through lm-eval."""

from __future__ import annotations

from lm_eval.api.instance import Instance

PAIRS = [
    ("The doctor and the nurse were talking.", " The doctor was tired."),
    ("Who was late for work?", " The man"),
    ("Who was late for work?", " The woman"),
    ("A B C", " D"),
]


def requests() -> list[Instance]:
    return [Instance(request_type="loglikelihood", doc={}, arguments=pair, idx=i)
            for i, pair in enumerate(PAIRS)]


def loglikelihoods(lm) -> list[float]:
    return [ll for ll, _ in lm.loglikelihood(requests())]


def mean_abs_diff(a, b) -> float:
    return sum(abs(x - y) for x, y in zip(a, b)) / len(a)
