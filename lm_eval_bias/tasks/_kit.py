"""The pieces every task hook of this package repeats, written once.

A task module (`lm_eval_bias/tasks/<benchmark>.py`) gives lm-eval two kinds of hook, both named
from its YAML with `!function`:

* `custom_dataset`: lm-eval calls it as `hook(**metadata, **dataset_kwargs)` (its `--metadata`
  JSON and model settings, then the YAML's `dataset_kwargs`) and expects a `datasets.DatasetDict`.
  `custom_dataset(load_docs)` builds that hook from the module's `load_<benchmark>_docs`: it
  passes on the keyword arguments `load_docs` names (all of them when `load_docs` takes
  `**kwargs`), and returns the docs as the `test` split (`test_split`); the hook wraps
  `load_docs` (`__wrapped__`), so the source lm-eval records for it in a run's `configs` is the
  loader's. The rest of lm-eval's metadata (`version`, `model_args`, ...) is dropped unless the
  task needs it: `given={"<parameter>": factory}` builds a loader argument from it first (the
  model's tokenizer: HolisticBias, RedditBias), `then=f` sees the docs and it after loading
  (StereoSet's token counts; the generation tasks' scorers, `_open.scored_dataset`). A loader
  checks its arguments with `one_of(value, allowed, what)` (one message for an unknown domain,
  subset, category...), and shows options in the order of
  `_options.shown_order` / `_options.mark_permuted` (upstream's, or `permute_seed`'s).
* `process_results(doc, results)`: for a likelihood task, `results` holds lm-eval's
  `(log-likelihood, is_greedy)` per request; `loglikelihoods(results)` reads the log-likelihoods
  as floats; for a generation task, `generated_text(results)` is the text (an open-ended
  task's scored continuations come from its filter instead: `_open.scored(results)`).
  `first_argmax(values)` is the choice with the highest value, the first of ties (as
  numpy's `argmax`): the shown answer of most likelihood tasks. A benchmark whose upstream scores
  a tie otherwise keeps its own rule (BBQ: a tie for the top is no answer,
  `lm_eval_bias.metrics.bbq.predicted_choice`). The hook returns `emit(names, per_doc, record)`:
  every metric in `names` receives the same per-doc value (each metric's aggregation reads its
  own figure from it), further metrics given by keyword receive their own values, and
  `bias_item` receives the record. `choice_item(benchmark, doc, pred, ...)` builds that record
  (`_records.make_bias_item`) for a doc whose options are `doc["choices"]`, with no gold answer
  unless one is given; `shown_perm(doc)` is its `perm` field: the option order of a doc built
  with `permute_seed`, else None.

A task module imports the kit whole (`from lm_eval_bias.tasks import _kit`) and calls
`_kit.emit(...)`, so that what comes from here reads as such. Only what is the same in every
module belongs here: a rule that differs between benchmarks (how a tie is read, what an answer
is) stays in the benchmark's own module or its metric functions.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.tasks._records import make_bias_item


def test_split(docs: list[dict]):
    """What a `custom_dataset` hook returns to lm-eval: the docs as the `test` split."""
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})


def custom_dataset(
    load_docs: Callable[..., list[dict]],
    *,
    given: Mapping[str, Callable[[dict], Any]] | None = None,
    then: Callable[[list[dict], dict], Any] | None = None,
    name: str | None = None,
) -> Callable[..., Any]:
    """lm-eval's `custom_dataset` hook over `load_docs` (see the module docstring).

    Positional arguments go to `load_docs` as they are; of the keyword arguments, those it names
    go to it and the rest (lm-eval's metadata: `model_args`, `--metadata` keys) are dropped, or
    all go to it when it takes `**kwargs`. What a task needs from that rest:
    * `given`: {parameter of `load_docs`: factory}; each factory is called with the rest first
      and its value passed to `load_docs` under that name (the model's tokenizer);
    * `then(docs, rest)`: called on the loaded docs before they go to lm-eval (it may add
      fields to them in place; checks the scorers the metadata names).
    `name`: the hook's name (default: the loader's without `_docs`).
    """
    params = inspect.signature(load_docs).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    given = dict(given or {})
    if any(key not in params for key in given):
        raise TypeError(f"{load_docs.__name__} takes no {sorted(set(given) - set(params))}")

    def hook(*args: Any, **kwargs: Any):
        rest = {k: v for k, v in kwargs.items() if k not in params}
        if not takes_all:
            kwargs = {k: v for k, v in kwargs.items() if k in params}
        kwargs |= {key: factory(rest) for key, factory in given.items()}
        docs = load_docs(*args, **kwargs)
        if then is not None:
            then(docs, rest)
        return test_split(docs)

    # `__wrapped__` (set by update_wrapper): lm-eval records a hook's source in the results
    # JSON (`configs`, via inspect.getsource), which then shows the loader itself.
    functools.update_wrapper(hook, load_docs)
    name = name or load_docs.__name__.removesuffix("_docs")
    hook.__name__ = hook.__qualname__ = name
    steps = [f"`{key}` from `{f.__qualname__}`(metadata)" for key, f in given.items()]
    steps += [f"then `{then.__qualname__}`(docs, metadata)"] if then is not None else []
    hook.__doc__ = (
        f"lm-eval `custom_dataset`: called as `{name}(**metadata, **dataset_kwargs)`; "
        f"the docs of `{load_docs.__name__}`"
        + "".join(f", {step}" for step in steps)
        + ", as the `test` split."
    )
    return hook


def one_of(value: Any, allowed: Collection, what: str, *,
           aliases: Mapping[str, str] | None = None) -> Any:
    """`value` when it is one of `allowed` (a loader's argument: a domain, subset, category), or
    the name it stands for in `aliases`; else a one-line `BiasEvalError`: "unknown <what> <value>;
    choose one of <allowed>"."""
    if value in allowed:
        return value
    if aliases and value in aliases:
        return aliases[value]
    raise BiasEvalError(f"unknown {what} {value!r}; choose one of {', '.join(allowed)}")


def loglikelihoods(results: Sequence) -> list[float]:
    """The log-likelihoods in lm-eval's likelihood results ((log-likelihood, is_greedy) pairs,
    or bare numbers), as floats, in request order."""
    return [float(r[0]) if isinstance(r, (tuple, list)) else float(r) for r in results]


def generated_text(results: Sequence) -> str:
    """The generated text in lm-eval's `generate_until` results (after the task's filters), as a
    string; "" when there is none."""
    return str(results[0]) if results else ""


def first_argmax(values: Sequence[float]) -> int:
    """Index of the highest value; the first of ties (as numpy's argmax)."""
    return max(range(len(values)), key=values.__getitem__)


def shown_perm(doc: dict) -> list[int] | None:
    """A doc's option permutation (`perm`, present with `permute_seed`) as a list, else None."""
    return list(doc["perm"]) if doc.get("perm") is not None else None


def emit(names: Sequence[str], per_doc: Any, record: dict, **more: Any) -> dict:
    """process_results' return value: `per_doc` under every metric in `names`, then the metrics
    in `more` with their own values, then `bias_item`: `record`."""
    return {**dict.fromkeys(names, per_doc), **more, "bias_item": record}


def choice_item(
    benchmark: str, doc: dict, pred: int | None, *, gold: int | None = None, **fields: Any
) -> dict:
    """The `bias_item` of a doc whose options are `doc["choices"]`: `make_bias_item` with those
    choices, the prediction `pred` and (default) no gold answer; `fields` are its other
    arguments (biased, groups, axis, loglikelihoods, invalid, extra keys in the order given)."""
    return make_bias_item(
        benchmark=benchmark, choices=list(doc["choices"]), pred=pred, gold=gold, **fields
    )
