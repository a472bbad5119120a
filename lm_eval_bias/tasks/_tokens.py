"""How many tokens lm-eval scores for a (context, continuation) request, counted with the model's
tokenizer, for tasks whose score is a per-token average (StereoSet).

lm-eval 0.4.13 hands `process_results` only (log-likelihood, is_greedy) per request, no token
counts. It does hand every task's `custom_dataset` the run's model_args merged with `--metadata`
(`EvaluatorConfig`: `metadata = model_args | metadata`), and its own RULER tasks load the
tokenizer from there (`tokenizer=` or `pretrained=`). This module does the same, then splits each
request into context and continuation tokens exactly as lm-eval's `TemplateLM.loglikelihood` and
`_encode_pair` do for causal models (`lm_eval/api/model.py`):
- empty context: the continuation is `encode(continuation, add_special_tokens=False)`, and the
  prefix token (`prefix_token_id`, else BOS, else EOS) is the context; if the continuation's first
  token is that token, it becomes the context and is not scored;
- otherwise: trailing spaces of the context move to the continuation, and the continuation is
  `encode(context + continuation)[len(encode(context)):]` with the tokenizer's default special
  tokens (or `add_special_tokens=add_bos_token` when that model arg is set).
A chat template or system instruction changes the context lm-eval scores after; the counts here
assume the task's plain prompt (none of the tasks using them asks for a chat template).

Per-token perplexities on phrases (RedditBias, HolisticBias) use `counts_with` (empty context) and
`splits_with`: perplexities that, like RedditBias's, leave the first token of a phrase unscored
(Hugging Face `labels=input_ids`) split the phrase into the text of its first token and the rest,
which the task requests as (context, continuation), so that lm-eval scores tokens 2..n given
token 1 alone (`HFLM._encode_pair` keeps the tokens after the context's).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lm_eval_bias.errors import BiasEvalError

TokenCounter = Callable[[Sequence[str]], list[int]]
FirstTokenSplitter = Callable[[Sequence[str]], list[tuple[str, str, int]]]

#: model_args / metadata keys that choose the tokenizer, as HFLM reads them.
TOKENIZER_KEYS = ("tokenizer", "pretrained", "revision", "trust_remote_code", "gguf_file",
                  "subfolder", "add_bos_token", "use_fast_tokenizer")


@functools.lru_cache(maxsize=4)
def _load(name: str, revision: str | None, trust_remote_code: bool, gguf_file: str | None,
          subfolder: str | None, add_bos_token: bool | None, use_fast: bool):
    import transformers

    kwargs: dict[str, Any] = {"revision": revision or "main", "trust_remote_code": trust_remote_code}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    else:
        kwargs["use_fast"] = use_fast
    if add_bos_token is not None:
        kwargs["add_bos_token"] = add_bos_token
    if subfolder:
        kwargs["subfolder"] = subfolder
    return transformers.AutoTokenizer.from_pretrained(name, **kwargs)


def _flag(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes")


def load_tokenizer(metadata: Mapping[str, Any], *, what: str):
    """The model's tokenizer from the run's model_args / metadata (`tokenizer=` first, as HFLM)."""
    tok = metadata.get("tokenizer")
    if tok is not None and not isinstance(tok, str) and hasattr(tok, "encode"):
        return tok  # a tokenizer object (in-process use of lm_eval.simple_evaluate)
    name = tok or metadata.get("pretrained")
    if name is not None and not isinstance(name, str):
        name = getattr(name, "name_or_path", None)  # a model object as pretrained
    if not name:
        raise BiasEvalError(
            f"{what} needs the model's tokenizer and the run names none; pass it in model_args "
            "(pretrained=... or tokenizer=...) or as --metadata '{\"tokenizer\": \"<name or folder>\"}'")
    gguf = None if tok else metadata.get("gguf_file")
    try:
        return _load(str(name), metadata.get("revision"), bool(_flag(metadata.get("trust_remote_code"))),
                     gguf, metadata.get("subfolder"), _flag(metadata.get("add_bos_token")),
                     _flag(metadata.get("use_fast_tokenizer")) is not False)
    except Exception as exc:  # noqa: BLE001 -- transformers raises OSError, ValueError, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BiasEvalError(
            f"{what}: cannot load the tokenizer {name!r} ({type(exc).__name__}: {first}); pass "
            "a loadable one as tokenizer=... in model_args or --metadata") from None


def _encode(tokenizer, text: str, add_bos_token: bool | None) -> list[int]:
    if add_bos_token is None:
        return list(tokenizer.encode(text))
    return list(tokenizer.encode(text, add_special_tokens=add_bos_token))


def prefix_token_id_of(tokenizer, metadata: Mapping[str, Any]) -> int | None:
    custom = metadata.get("prefix_token_id")
    if custom is not None:
        return int(custom)
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def continuation_token_counts(tokenizer, context: str, continuations: Sequence[str],
                              metadata: Mapping[str, Any] | None = None) -> list[int]:
    """Number of tokens lm-eval scores for each (context, continuation) request."""
    metadata = metadata or {}
    add_bos = _flag(metadata.get("add_bos_token"))
    counts = []
    if context == "":
        prefix = prefix_token_id_of(tokenizer, metadata)
        for cont in continuations:
            enc = list(tokenizer.encode(cont, add_special_tokens=False))
            counts.append(len(enc) - 1 if enc and enc[0] == prefix else len(enc))
        return counts
    n_spaces = len(context) - len(context.rstrip())
    for cont in continuations:
        ctx = context
        if n_spaces:
            cont, ctx = context[-n_spaces:] + cont, context[:-n_spaces]
        whole = _encode(tokenizer, ctx + cont, add_bos)
        counts.append(len(whole) - len(_encode(tokenizer, ctx, add_bos)))
    return counts


def counts_with(tokenizer: Any, prefix_token_id: int | None = None) -> TokenCounter:
    """Counter of the tokens lm-eval scores for each phrase scored with an empty context."""
    prefix = prefix_token_id if prefix_token_id is not None else \
        prefix_token_id_of(tokenizer, {})

    def count(texts: Sequence[str]) -> list[int]:
        out = []
        for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
            out.append(len(ids) - 1 if ids and ids[0] == prefix else len(ids))
        return out

    return count


def splits_with(tokenizer: Any, prefix_token_id: int | None = None) -> FirstTokenSplitter:
    """Splitter: per phrase, (context text, the rest of the text, number of tokens in the rest).
    The context is the phrase's first token; where that token is only whitespace (which lm-eval
    would move into the continuation), the context extends to the next token. The context must
    encode to exactly those tokens and not start with the prefix token lm-eval conditions on, and
    the rest must hold a token; otherwise BiasEvalError."""
    prefix = prefix_token_id if prefix_token_id is not None else \
        prefix_token_id_of(tokenizer, {})

    def split(texts: Sequence[str]) -> list[tuple[str, str, int]]:
        out = []
        for text in texts:
            ids = tokenizer.encode(text, add_special_tokens=False)
            first = None if not ids or ids[0] == prefix else _token_prefix(tokenizer, text, ids)
            if first is None:
                raise BiasEvalError(
                    f"cannot split the first token off {text[:60]!r} with this tokenizer (it "
                    f"must be a plain token whose text encodes to itself); use another tokenizer"
                )
            context, k = first
            out.append((context, text[len(context):], len(ids) - k))
        return out

    return split


def _token_prefix(tokenizer: Any, text: str, ids: list[int]) -> tuple[str, int] | None:
    """(text of the first k tokens, k) for the smallest k that is not only whitespace, encodes to
    ids[:k] and leaves a token after it; None if there is none within two tokens."""
    offsets = None
    if getattr(tokenizer, "is_fast", False):
        offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)[
            "offset_mapping"]
    for k in (1, 2):
        if len(ids) <= k:
            return None
        candidates = [text[: offsets[k - 1][1]]] if offsets else []
        candidates.append(tokenizer.decode(ids[:k]))
        for cand in candidates:
            if cand.strip() and cand == cand.rstrip() and text.startswith(cand) and (
                tokenizer.encode(cand, add_special_tokens=False) == ids[:k]
            ):
                return cand, k
    return None


def token_counter(metadata: Mapping[str, Any], benchmark: str) -> TokenCounter:
    """The counter for the model lm-eval runs (its model_args, merged into the task metadata)."""
    tokenizer = load_tokenizer(metadata, what=f"{benchmark} (per-token perplexity)")
    return counts_with(tokenizer, prefix_token_id_of(tokenizer, metadata))


def first_token_split(metadata: Mapping[str, Any], benchmark: str) -> FirstTokenSplitter:
    """The first-token splitter for the model lm-eval runs (see `splits_with`)."""
    tokenizer = load_tokenizer(metadata, what=f"{benchmark} (per-token perplexity)")
    return splits_with(tokenizer, prefix_token_id_of(tokenizer, metadata))
