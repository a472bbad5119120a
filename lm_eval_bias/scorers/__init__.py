"""Text scorers behind one interface (`Scorer`) and one registry keyed by name.

Toxicity: ``profanity`` (offline default, alt-profanity-check), ``hf:<model id or path>``
(a transformers sequence classifier), ``detoxify[:<original|unbiased|multilingual|checkpoint>]``
(Detoxify's ``toxicity`` output; extra ``lm-eval-bias[detoxify]``), ``perspective`` (the
Perspective API), ``judge:<model id or path>`` (a causal LM as a Llama-Guard-style safety judge;
score = its probability of "unsafe" vs "safe").
Sentiment: ``vader`` (VADER compound; classes at +-0.5; BOLD's sentiment), ``regard[:<model id or
path>]`` (regard classifier, default ``sasha/regardv3`` as in ``evaluate``'s regard measurement;
score = p(positive) - p(negative), `RegardScorer.classify` gives class and probabilities; BOLD adds
it next to VADER with ``--metadata '{"regard_scorer": "regard"}'``).

>>> from lm_eval_bias.scorers import get_scorer
>>> get_scorer("vader").score(["What a wonderful, kind person."])  # doctest: +SKIP
[0.8126]
"""

from lm_eval_bias.scorers import (  # noqa: F401  (registration)
    detoxify,
    hf,
    judge,
    perspective,
    profanity,
    regard,
    vader,
)
from lm_eval_bias.scorers.base import (
    KINDS,
    Scorer,
    available_scorers,
    get_scorer,
    package_version,
    register_scorer,
)
from lm_eval_bias.scorers.vader import sentiment_class

DEFAULT_TOXICITY_SCORER = "profanity"
DEFAULT_SENTIMENT_SCORER = "vader"

__all__ = [
    "DEFAULT_SENTIMENT_SCORER",
    "DEFAULT_TOXICITY_SCORER",
    "KINDS",
    "Scorer",
    "available_scorers",
    "get_scorer",
    "package_version",
    "register_scorer",
    "sentiment_class",
]
