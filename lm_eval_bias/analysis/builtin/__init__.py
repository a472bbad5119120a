"""Per-item records rebuilt from logs of lm-eval's own built-in bias tasks.

A run of lm-eval's built-in ``bbq``, ``crows_pairs_*``, ``winogender*``, ``toxigen``,
``realtoxicityprompts`` or ``discrim_eval_*`` logs no `bias_item`, but its sample lines hold the
processed ``doc``, the ``resps`` / ``filtered_resps`` and the per-sample metric values. One module
per benchmark turns such a line into the record our own tasks write, with the same constructor
(`lm_eval_bias.tasks._records.make_bias_item`) and lm-eval's own definitions of options, answer
and gold (each module's docstring says which); every rebuilt record carries
``rebuilt_from: "lm-eval:<family>"``, and `lm_eval_bias.analysis.runs.Run.rebuilt` names the
tasks whose records were rebuilt. Where lm-eval logged a per-sample value the record determines
(``acc``, ``pct_stereotype``, BBQ's counts), the rebuilt record must agree with it, or the line
is refused: the log is then not of the built-in task of that name.

`rebuilder_for` maps a task name to its rebuilder; `rebuild_sample` wraps it with the reader's
one-line error.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from lm_eval_bias.analysis.builtin import (
    bbq,
    crows_pairs,
    discrim_eval,
    realtoxicityprompts,
    toxigen,
    winogender,
)
from lm_eval_bias.analysis.builtin._common import REBUILT_KEY, RebuildError
from lm_eval_bias.errors import BiasEvalError

__all__ = ["REBUILT_KEY", "Rebuilder", "REBUILDERS", "SUPPORTED", "rebuilder_for",
           "rebuild_sample", "rebuilt_note"]


@dataclass(frozen=True)
class Rebuilder:
    """The rebuilder of one built-in task family: which task names it reads, and how."""

    family: str  #: lm-eval's task folder, e.g. ``bbq``
    pattern: str  #: task names (a full-match regular expression)
    rebuild: Callable[[dict], dict]  #: sample line -> bias_item


#: Built-in task families whose logs can be analysed (generation variants such as
#: ``bbq_generate`` are not among them: their answer is parsed from text).
REBUILDERS: tuple[Rebuilder, ...] = (
    Rebuilder("bbq", r"bbq(_ambig|_disambig)?", bbq.rebuild),
    Rebuilder("crows_pairs", r"crows_pairs_(english|french)(_[a-z_]+)?", crows_pairs.rebuild),
    Rebuilder("winogender", r"winogender_(all|male|female|neutral|gotcha(_male|_female)?)",
              winogender.rebuild),
    Rebuilder("toxigen", r"toxigen", toxigen.rebuild),
    Rebuilder("realtoxicityprompts", r"realtoxicityprompts", realtoxicityprompts.rebuild),
    Rebuilder("discrim_eval", r"discrim_eval_(explicit|implicit)", discrim_eval.rebuild),
)

#: The supported built-in task names, as the refusals print them.
SUPPORTED = ("bbq, bbq_ambig, bbq_disambig, crows_pairs_english[_<bias type>], "
             "crows_pairs_french[_<bias type>], winogender_all / _male / _female / _neutral / "
             "_gotcha*, toxigen, realtoxicityprompts, discrim_eval_explicit / _implicit")


def rebuilder_for(task: str) -> Rebuilder | None:
    """The rebuilder of lm-eval built-in task `task`, or None when it is not a supported one."""
    for r in REBUILDERS:
        if re.fullmatch(r.pattern, task):
            return r
    return None


def rebuild_sample(rebuilder: Rebuilder, task: str, sample: dict, where: str) -> dict:
    """The rebuilt `bias_item` of one sample line; a one-line `BiasEvalError` naming `where`."""
    try:
        return rebuilder.rebuild(sample)
    except (RebuildError, ValueError, TypeError, KeyError) as exc:
        raise BiasEvalError(
            f"{where}: cannot rebuild a record from this line of lm-eval's built-in task "
            f"{task} ({exc}); analyse a --log_samples run of lm-eval's own {task} task"
        ) from None


def rebuilt_note(rebuilt: dict[str, str]) -> str | None:
    """One line saying which tasks' records were rebuilt (`Run.rebuilt`), or None."""
    if not rebuilt:
        return None
    tasks = ", ".join(sorted(rebuilt))
    return (f"records rebuilt from lm-eval's built-in task log{'s' if len(rebuilt) > 1 else ''} "
            f"({tasks}): no bias_item was logged, see docs 'Analysing any lm-eval log'")
