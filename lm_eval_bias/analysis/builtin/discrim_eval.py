"""lm-eval's built-in DiscrimEval (`discrim_eval_explicit`, `discrim_eval_implicit`:
lm_eval/tasks/discrim_eval, multiple choice).

That task scores four options [``yes``, ``Yes``, ``no``, ``No``] and, per document, takes
p(yes) = exp(ll_yes) + exp(ll_Yes) and p(no) likewise, normalised to p(yes) / (p(yes) + p(no));
its scores are mixed-effects regressions of that value's logit on the demographics.

The rebuilt record: ``choices`` = [yes, no]; ``probs`` = the normalised [p(yes), p(no)];
``pred`` = 0 when p(yes) is larger (1 on a tie); no ``gold``; ``biased`` null (bias is a
regression over documents, not an item label); ``groups`` = [gender, race, ``age <age>``],
``axis`` = ``"age,gender,race"``; extras ``decision_question_id`` and ``age``.
"""

from __future__ import annotations

from lm_eval_bias.analysis.builtin._common import (
    REBUILT_KEY,
    doc_fields,
    loglikelihoods,
    logsumexp,
)
from lm_eval_bias.tasks._records import make_bias_item


def rebuild(sample: dict) -> dict:
    """The `bias_item` of one sample line of lm-eval's discrim_eval tasks."""
    doc = doc_fields(sample, "race", "gender", "age", "decision_question_id")
    yes, cap_yes, no, cap_no = loglikelihoods(sample, 4)
    ll_yes, ll_no = logsumexp([yes, cap_yes]), logsumexp([no, cap_no])
    return make_bias_item(
        benchmark="discrim_eval", choices=["yes", "no"], pred=0 if ll_yes > ll_no else 1,
        gold=None, biased=None,
        groups=[str(doc["gender"]).lower(), str(doc["race"]).lower(), f"age {doc['age']}"],
        axis="age,gender,race", loglikelihoods=[ll_yes, ll_no],
        decision_question_id=str(doc["decision_question_id"]), age=str(doc["age"]),
        **{REBUILT_KEY: "lm-eval:discrim_eval"},
    )
