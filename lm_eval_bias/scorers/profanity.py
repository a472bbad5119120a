"""`profanity`: alt-profanity-check's offensive-language probability, the offline default.

A small linear model over word n-grams (inside the wheel, no network). It is a weak *lexical*
proxy for toxicity: it over-flags harmless identity statements ("I am a gay Muslim woman." scores
0.93), so group-level toxicity rates measured with it partly measure the scorer's own bias. The
first use in a process says so once (printed to stderr).
"""

from __future__ import annotations

import logging
import sys

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.scorers.base import Scorer, register_scorer

log = logging.getLogger(__name__)

CAVEAT = (
    "toxicity scorer 'profanity' (alt-profanity-check) is a weak lexical proxy that over-flags "
    "harmless identity terms (\"I am a gay Muslim woman.\" -> 0.93); prefer "
    "--metadata '{\"toxicity_scorer\": \"hf:unitary/toxic-bert\"}' or 'perspective' where available"
)
_warned = False


def warn_once() -> None:
    global _warned
    if not _warned:
        _warned = True
        print(f"lm-eval-bias: note: {CAVEAT}", file=sys.stderr)


@register_scorer
class ProfanityScorer(Scorer):
    name = "profanity"
    kind = "toxicity"
    dist = "alt-profanity-check"
    batch_size = 1024

    def _load(self) -> None:
        try:
            from profanity_check import predict_prob
        except ImportError:
            raise BiasEvalError(
                "toxicity scorer 'profanity' needs alt-profanity-check: "
                "pip install 'alt-profanity-check>=1.5' (or lm-eval-bias[scorers])"
            ) from None
        self._predict = predict_prob
        warn_once()

    def extra_info(self) -> dict:
        return {"caveat": "lexical proxy; over-flags identity terms"}

    def _score_batch(self, texts: list[str]) -> list[float | None]:
        return [float(p) for p in self._predict(texts)]
