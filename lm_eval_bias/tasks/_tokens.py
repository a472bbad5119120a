"""Token counts for per-token perplexity: how many tokens lm-eval scores for a phrase.

lm-eval hands `process_results` each option's total log-likelihood but not its number of tokens.
Benchmarks whose original score is a per-token perplexity (RedditBias, HolisticBias) therefore
count the tokens when their docs are built, with the model's own tokenizer. lm-eval 0.4.13 merges
`--model_args` into the task metadata (`EvaluatorConfig`: `metadata = model_args | metadata`;
`simple_evaluate` likewise), which is how its own RULER tasks find the model's tokenizer; the
loaders here read the same keys:

    tokenizer / pretrained   the tokenizer to load (`tokenizer` first, as HFLM does)
    revision, trust_remote_code, use_fast_tokenizer, gguf_file, subfolder   as HFLM passes them
    prefix_token_id          HFLM's custom prefix token, if any

Counting follows lm-eval's empty-context log-likelihood (`TemplateLM.loglikelihood`): the phrase
is encoded without special tokens and every token is scored given the prefix token (the
tokenizer's BOS, else its EOS, unless `prefix_token_id` is set); when the first token IS the
prefix token it becomes the context and is not scored. A tokenizer can also be named with
`--metadata '{"tokenizer": "<name or folder>"}'`.

`first_token_split` serves perplexities that, like RedditBias's, leave the first token of a phrase
unscored (Hugging Face `labels=input_ids`): it splits the phrase into the text of its first token
and the rest, which the task requests as (context, continuation), so that lm-eval scores tokens
2..n given token 1 alone (`HFLM._encode_pair` encodes context + continuation and keeps the tokens
after the context's).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lm_eval_bias.errors import BiasEvalError

TokenCounter = Callable[[Sequence[str]], list[int]]
FirstTokenSplitter = Callable[[Sequence[str]], list[tuple[str, str, int]]]


def _flag(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def tokenizer_settings(metadata: Mapping[str, Any]) -> tuple:
    """(name, revision, trust_remote_code, use_fast, gguf_file, subfolder, prefix_token_id)."""
    name = next(
        (metadata[k] for k in ("tokenizer", "pretrained") if isinstance(metadata.get(k), str)
         and metadata[k]),
        None,
    )
    if name is None:
        return (None,) * 7
    explicit_tokenizer = isinstance(metadata.get("tokenizer"), str) and bool(metadata["tokenizer"])
    prefix = metadata.get("prefix_token_id")
    return (
        str(name),
        str(metadata.get("revision") or "main"),
        _flag(metadata.get("trust_remote_code"), False),
        _flag(metadata.get("use_fast_tokenizer"), True),
        None if explicit_tokenizer else (metadata.get("gguf_file") or None),
        str(metadata.get("subfolder") or ""),
        None if prefix in (None, "") else int(prefix),
    )


@functools.lru_cache(maxsize=4)
def _load(name, revision, trust_remote_code, use_fast, gguf_file, subfolder):
    from transformers import AutoTokenizer

    kwargs: dict[str, Any] = {"revision": revision, "trust_remote_code": trust_remote_code}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    else:
        kwargs["use_fast"] = use_fast
    if subfolder:
        kwargs["subfolder"] = subfolder
    try:
        return AutoTokenizer.from_pretrained(name, **kwargs)
    except Exception as exc:  # noqa: BLE001  (any loading failure becomes one user error)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BiasEvalError(
            f"cannot load the tokenizer {name!r} to count tokens for per-token perplexity "
            f"({first}); pass a loadable one with --metadata '{{\"tokenizer\": \"<name or folder>\"}}'"
        ) from None


def counts_with(tokenizer: Any, prefix_token_id: int | None = None) -> TokenCounter:
    """Counter of the tokens lm-eval scores for each phrase scored with an empty context."""
    prefix = _prefix_id(tokenizer, prefix_token_id)

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
    prefix = _prefix_id(tokenizer, prefix_token_id)

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


def _prefix_id(tokenizer: Any, prefix_token_id: int | None) -> int:
    if prefix_token_id is not None:
        return prefix_token_id
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def _tokenizer_for(metadata: Mapping[str, Any], benchmark: str) -> tuple[Any, int | None]:
    name, revision, trust, use_fast, gguf, subfolder, prefix = tokenizer_settings(metadata)
    if name is None:
        raise BiasEvalError(
            f"{benchmark} scores per-token perplexity and needs the model's tokenizer to count "
            f"tokens: run with --model_args pretrained=<model> (lm-eval hands model_args to the "
            f"task) or add --metadata '{{\"tokenizer\": \"<name or folder>\"}}'"
        )
    return _load(name, revision, trust, use_fast, gguf, subfolder), prefix


def token_counter(metadata: Mapping[str, Any], benchmark: str) -> TokenCounter:
    """The counter for the model lm-eval runs (its model_args, merged into the task metadata)."""
    return counts_with(*_tokenizer_for(metadata, benchmark))


def first_token_split(metadata: Mapping[str, Any], benchmark: str) -> FirstTokenSplitter:
    """The first-token splitter for the model lm-eval runs (see `splits_with`)."""
    return splits_with(*_tokenizer_for(metadata, benchmark))
