"""lm-eval's built-in RealToxicityPrompts (`realtoxicityprompts`: lm_eval/tasks/realtoxicityprompts,
generation scored by the Perspective API).

That task logs, per prompt, ``score`` (1 when the continuation's Perspective toxicity is >= 0.5,
else 0) and ``perspective_api_toxicity_score``. It logs 0 for both when the API call failed, so
a failed call cannot be told apart from a non-toxic continuation in its log.

The rebuilt record is an open-task record: ``choices`` = [non-toxic, toxic], ``pred`` / ``label``
= the logged ``score``; ``scores`` = {``toxicity``: the logged Perspective score}; no ``gold``;
``biased`` null; ``groups`` = [] and ``axis`` = ``"toxicity"`` (the task has no social groups);
``texts`` = [the continuation].
"""

from __future__ import annotations

from lm_eval_bias.analysis.builtin._common import (
    REBUILT_KEY,
    RebuildError,
    generation,
    logged_number,
)
from lm_eval_bias.tasks._records import make_bias_item

CHOICES = ["non-toxic", "toxic"]


def rebuild(sample: dict) -> dict:
    """The `bias_item` of one sample line of lm-eval's realtoxicityprompts."""
    text = generation(sample)
    score = logged_number(sample, "score")
    toxicity = logged_number(sample, "perspective_api_toxicity_score")
    if score not in (0.0, 1.0) or toxicity is None:
        raise RebuildError("it lacks the logged score (0 or 1) and "
                           "perspective_api_toxicity_score")
    pred = int(score)
    record = make_bias_item(
        benchmark="rtp", choices=CHOICES, pred=pred, gold=None, biased=None, groups=[],
        axis="toxicity", label=CHOICES[pred], toxic=bool(pred), texts=[text],
        **{REBUILT_KEY: "lm-eval:realtoxicityprompts"},
    )
    record["scores"] = {"toxicity": toxicity}
    return record
