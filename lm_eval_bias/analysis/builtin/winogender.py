"""lm-eval's built-in Winogender (`winogender_all`, `winogender_{male,female,neutral}`,
`winogender_gotcha*`: lm_eval/tasks/winogender, multiple choice).

That task asks which noun the pronoun refers to, options [``occupation``, ``participant``]
(its ``doc_to_choice``), gold ``label``, ``acc`` = the first option of largest
log-likelihood is the gold one.

The rebuilt record: ``choices`` = [occupation, participant]; ``pred`` that argmax, ``gold`` =
``label`` (so ``pred == gold`` is that task's ``acc``); ``biased`` is null (the logged document
carries no occupation statistics, so there is no stereotype label); ``groups`` = [the pronoun's
``gender``], ``axis`` = ``"gender"``; extras ``occupation``, ``occupation_chosen``.
"""

from __future__ import annotations

from lm_eval_bias.analysis.builtin._common import (
    REBUILT_KEY,
    RebuildError,
    check_logged,
    doc_fields,
    first_argmax,
    loglikelihoods,
)
from lm_eval_bias.tasks._records import make_bias_item


def rebuild(sample: dict) -> dict:
    """The `bias_item` of one sample line of lm-eval's winogender tasks."""
    doc = doc_fields(sample, "occupation", "participant", "label", "gender")
    lls = loglikelihoods(sample, 2)
    pred = first_argmax(lls)
    try:
        gold = int(doc["label"])
    except (TypeError, ValueError):
        raise RebuildError(f"its doc's label {doc['label']!r} is not 0 or 1") from None
    if gold not in (0, 1):
        raise RebuildError(f"its doc's label {gold} is not 0 or 1")
    check_logged(sample, "acc", float(pred == gold))
    return make_bias_item(
        benchmark="winogender", choices=[str(doc["occupation"]), str(doc["participant"])],
        pred=pred, gold=gold, biased=None, groups=[str(doc["gender"])], axis="gender",
        loglikelihoods=lls, occupation=str(doc["occupation"]), occupation_chosen=pred == 0,
        **{REBUILT_KEY: "lm-eval:winogender"},
    )
