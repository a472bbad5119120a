"""Shared-prefix scoring of log-likelihood requests: run each distinct context once.

lm-eval's `HFLM._loglikelihood_tokens` runs every (context, continuation) pair as its own forward
pass over context + continuation, so a three-choice item pays for its context three times. Here
each distinct context runs once; its key/value cache is then reused to score all of its
continuations, and output logits are computed only at the positions that are scored.

What is scored is exactly what lm-eval scores. lm-eval feeds the model
`(context + continuation)[-(max_length + 1):][:-1]` and reads the log-probabilities of the
continuation tokens from the last `len(continuation)` positions. So a request is, at token level,
an *effective context* `(context + continuation)[-(max_length + 1):][:-len(continuation)]`
(the context, left-truncated exactly as lm-eval truncates it) followed by the continuation, with
position ids starting at 0. Requests with equal effective contexts share one context pass.

Contexts that start with the same tokens form a family (`build_families`): BBQ's ambiguous and
disambiguated contexts, each with two questions, all start with the same paragraph, which then
runs once instead of four times. A chunk (`plan_chunks`) holds at most `batch_size` contexts, as
lm-eval's batch holds `batch_size` rows (a context row is never longer than lm-eval's full row).
Per chunk:

1. Stem pass: each family's stem (a single context's stem is the whole context), left-padded into
   one batch (attention mask, position ids counted from each row's first real token),
   `use_cache=True`, logits only at the last position.
2. Suffix pass (families of two or more contexts): the stem's cache rows are gathered (one row
   per context, `index_select` along the batch dimension, so the stem cache itself is never
   modified) and each context's rest runs on top, left-padded, so the last position is every
   row's last context token; the padding between stem and suffix is masked out and position ids
   continue from the stem's real length.

   The last position of the context rows scores the first token of every continuation.
3. Continuation pass (only for continuations of two or more tokens): the context rows are
   gathered again, one per continuation, and `continuation[:-1]`, right-padded, runs on top of
   them with position ids continuing from each context's length. Its logits score tokens 2..K.
4. Per request: log-softmax (lm-eval's `softmax_dtype`), gather the continuation tokens, sum;
   `is_greedy` is the argmax test lm-eval does, on the same log-softmax values.

Where this cannot reproduce lm-eval exactly, the standard path runs instead, with one log line
per reason: seq2seq models, `loglikelihood_rolling` windows (no context is shared), models whose
forward does not return a plain `DynamicCache` of full-attention layers (no cache, sliding-window,
linear-attention, quantized or shared-KV caches), PEFT prompt-learning adapters (virtual tokens),
requests lm-eval itself would refuse, and a model that fails the one-time check below. Context
groups that would save less than `MIN_TOKEN_SAVING` in tokens (single requests, CrowS-Pairs'
sentences after a one-token context) also take the standard path, because there it is faster.
The first chunk a model scores (one with stems, where there is one) is also scored the standard
way and compared (absolute tolerance 1e-4 in fp32, looser in 16-bit); a mismatch switches that
model to the standard path for good. This
catches architectures whose positions or masks do not behave as assumed, and quantized kernels
whose results depend on the batch composition.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from lm_eval_bias.models.model_args import parse_bool

eval_logger = logging.getLogger(__name__)

# A request as `_loglikelihood_tokens` receives it: ((context, continuation) strings or None,
# context token ids, continuation token ids).
TokenRequest = tuple[Any, Sequence[int], Sequence[int]]

# Tolerances of the one-time check against the standard path, per logits dtype (nats, absolute,
# per request). fp32 differences between the two paths are ~1e-6; 16-bit arithmetic rounds
# differently for every batch shape, so its bound is per continuation token.
CHECK_TOLERANCE_FP32 = 1e-4
CHECK_TOLERANCE_16BIT_PER_TOKEN = 5e-2
CHECK_MAX_REQUESTS = 6
# Continuations of one context that may share a continuation pass whatever the batch size.
ONE_CONTEXT_ROWS = 16
# A context group goes through the shared-prefix path only if it saves at least this factor in
# tokens run through the model (k * (C + L) full rows vs C + k * L). Below it the extra cache
# copies and a second pass cost more than the saved context tokens: measured on SmolLM2-135M,
# CPU, CrowS-Pairs (1.07x fewer tokens) ran 0.75x as fast as lm-eval's path, BBQ (2.85x) 2.19x
# as fast (benchmarks/bench_prefix_scoring.py, before stems were shared). Such groups, and single
# requests, take lm-eval's own path.
MIN_TOKEN_SAVING = 1.5


def parse_prefix_cache(value: Any) -> bool:
    """The `prefix_cache` model_arg (`model_args.parse_bool`)."""
    return parse_bool("prefix_cache", value)


@dataclass(frozen=True)
class ScoredItem:
    """One request at token level, as lm-eval would score it."""

    index: int                  # position in the caller's list
    request_str: Any            # (context, continuation) strings; what the cache hook is keyed on
    context: tuple[int, ...]    # effective context: left-truncated exactly like lm-eval
    continuation: tuple[int, ...]
    truncated: int              # number of context tokens dropped on the left


@dataclass
class ContextGroup:
    context: tuple[int, ...]
    items: list[int] = field(default_factory=list)  # indices into the item list


def unsupported_request(request: TokenRequest, max_length: int) -> str | None:
    """Why lm-eval's causal path would refuse this request (then it must be the one to refuse)."""
    _, context, continuation = request
    if len(context) == 0:
        return "empty context tokens"
    if len(continuation) == 0:
        return "empty continuation tokens"
    if len(continuation) > max_length:
        return f"continuation longer than max_length={max_length}"
    return None


def effective_item(index: int, request: TokenRequest, max_length: int) -> ScoredItem:
    """The (context, continuation) lm-eval really scores, truncation included.

    lm-eval's input is `(ctx + cont)[-(max_length + 1):][:-1]`, scored on its last len(cont)
    positions; so the context is cut from the left by `len(ctx) + len(cont) - (max_length + 1)`
    tokens when that is positive, and the continuation is never cut (len(cont) <= max_length).
    """
    request_str, context, continuation = request
    cut = max(0, len(context) + len(continuation) - (max_length + 1))
    return ScoredItem(index=index, request_str=request_str, context=tuple(context[cut:]),
                      continuation=tuple(continuation), truncated=cut)


def group_by_context(items: Sequence[ScoredItem]) -> list[ContextGroup]:
    """Groups of items with equal effective context, longest context first (then by tokens, so
    the order does not depend on the order of the requests)."""
    groups: dict[tuple[int, ...], ContextGroup] = {}
    for position, item in enumerate(items):
        groups.setdefault(item.context, ContextGroup(item.context)).items.append(position)
    return sorted(groups.values(), key=lambda g: (-len(g.context), g.context))


def split_by_saving(items: Sequence[ScoredItem],
                    min_saving: float = MIN_TOKEN_SAVING) -> tuple[list[int], list[int]]:
    """Request indices worth scoring from a shared context, and the rest (lm-eval's path)."""
    shared, alone = [], []
    for group in group_by_context(items):
        continuations = [len(items[p].continuation) for p in group.items]
        full = sum(len(group.context) + n for n in continuations)
        prefix = len(group.context) + sum(continuations)
        target = shared if full >= min_saving * prefix else alone
        target.extend(items[p].index for p in group.items)
    return sorted(shared), sorted(alone)


@dataclass
class Family:
    """Contexts that start with the same `stem` tokens: the stem runs once, then each context's
    rest (its `suffix`, never empty) runs on top of the stem's cache. A family of one context has
    the whole context as its stem and no suffix pass."""

    stem: tuple[int, ...]
    groups: list[ContextGroup]

    @property
    def stemmed(self) -> bool:
        return len(self.groups) > 1


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _family_tokens(stem_length: int, lengths: Sequence[int]) -> int:
    """Context tokens a family runs: its stem once plus every suffix."""
    return stem_length + sum(length - stem_length for length in lengths)


def build_families(groups: Sequence[ContextGroup], max_contexts: int) -> list[Family]:
    """Families of contexts sharing a stem, at most `max_contexts` contexts each.

    Contexts are taken in token order, so those with long common prefixes are neighbours (BBQ's
    ambiguous and disambiguated contexts, each with two questions, start with the same
    paragraph). A context joins the family before it if that runs fewer tokens than running it on
    its own; a stem is always shorter than each of its contexts, so every context has a suffix
    whose last position gives the logits of its continuations' first tokens."""
    max_contexts = max(1, int(max_contexts))
    families: list[Family] = []
    stem_length, members = 0, []
    for group in sorted(groups, key=lambda g: g.context):
        if members and len(members) < max_contexts:
            shared = min(stem_length, common_prefix_length(members[0].context, group.context),
                         len(group.context) - 1)
            lengths = [len(g.context) for g in members] + [len(group.context)]
            apart = (_family_tokens(stem_length, lengths[:-1]) if len(members) > 1
                     else lengths[0]) + lengths[-1]
            # at least half of the new context shared, and at least half of the stem kept: a
            # short common start (a BOS token, a first name) is not worth a third pass
            if (2 * shared >= max(lengths[-1], stem_length)
                    and _family_tokens(shared, lengths) < apart):
                stem_length = shared
                members.append(group)
                continue
        if members:
            families.append(_family(members, stem_length))
        members, stem_length = [group], len(group.context) - 1
    if members:
        families.append(_family(members, stem_length))
    # longest contexts first: rows of similar length share a pass (less padding)
    return sorted(families, key=lambda f: (-max(len(g.context) for g in f.groups), f.stem))


def _family(members: list[ContextGroup], stem_length: int) -> Family:
    if len(members) == 1:
        return Family(stem=members[0].context, groups=members)
    return Family(stem=members[0].context[:stem_length], groups=members)


def plan_chunks(families: Sequence[Family], batch_size: int) -> list[list[Family]]:
    """Families per chunk: at most `batch_size` contexts together, as lm-eval's batch holds at
    most `batch_size` rows (each context row is no longer than one of lm-eval's full rows).
    Stemmed families and single contexts go to separate chunks (a chunk of single contexts
    needs no suffix pass). Within a kind the order is kept."""
    batch_size = max(1, int(batch_size))
    chunks: list[list[Family]] = []
    for stemmed in (True, False):
        current: list[Family] = []
        contexts = 0
        for family in (f for f in families if f.stemmed == stemmed):
            n = len(family.groups)
            if current and contexts + n > batch_size:
                chunks.append(current)
                current, contexts = [], 0
            current.append(family)
            contexts += n
        if current:
            chunks.append(current)
    return chunks


def chunk_tokens(chunk: Sequence[Family], items: Sequence[ScoredItem],
                 batch_size: int) -> tuple[int, int]:
    """Tokens `PrefixScorer.score_chunk` runs for `chunk`: (real tokens, with padding)."""
    def passes(segments: list[int], step: int) -> tuple[int, int]:
        parts = [segments[i:i + step] for i in range(0, len(segments), step)]
        return sum(segments), sum(len(p) * max(p) for p in parts if max(p) > 0)

    groups = [g for f in chunk for g in f.groups]
    stems = passes([len(f.stem) for f in chunk], len(chunk))
    suffixes = (passes([len(g.context) - len(f.stem) for f in chunk for g in f.groups],
                       len(groups)) if chunk[0].stemmed else (0, 0))
    conts = [len(items[p].continuation) - 1 for g in groups for p in g.items
             if len(items[p].continuation) > 1]
    step = max(1, batch_size, min(max(len(g.items) for g in groups), ONE_CONTEXT_ROWS))
    rest = passes(conts, step) if conts else (0, 0)
    return tuple(a + b + c for a, b, c in zip(stems, suffixes, rest))


def _plain_dynamic_cache(cache: Any) -> bool:
    """A `DynamicCache` whose layers are all plain full-attention `DynamicLayer`s: the only kind
    we gather rows from (sliding-window, linear-attention, quantized, offloaded and shared-KV
    layers keep other state)."""
    try:
        from transformers.cache_utils import DynamicCache, DynamicLayer
    except ImportError:  # transformers < 4.56 has no cache layers
        return False
    return (type(cache) is DynamicCache and len(cache.layers) > 0
            and not getattr(cache, "offloading", False)
            and all(type(layer) is DynamicLayer and layer.is_initialized
                    for layer in cache.layers))


def gather_cache_rows(cache: Any, rows: torch.Tensor) -> Any:
    """A new `DynamicCache` holding rows `rows` (repeats allowed) of `cache`; `cache` is untouched,
    so later continuation passes can reuse it."""
    from transformers.cache_utils import DynamicCache

    return DynamicCache(ddp_cache_data=[(layer.keys.index_select(0, rows),
                                         layer.values.index_select(0, rows))
                                        for layer in cache.layers])


class PrefixScorer:
    """Runs the two passes for one model. Holds no request state; `lm` is an `HFLM`."""

    def __init__(self, lm) -> None:
        self.lm = lm
        self.model = lm.model
        self.device = lm.device
        self.use_logits_to_keep = True
        self.logits_dtype = torch.float32  # of the model's output, set by each context pass

    def _autocast(self):
        dtype = self.lm.mixed_precision_dtype
        return torch.autocast(device_type=self.device.type, dtype=dtype,
                              enabled=dtype is not None)

    def _forward(self, input_ids, attention_mask, position_ids, past_key_values, last_only):
        kwargs = {"input_ids": input_ids, "use_cache": True}
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
        if past_key_values is not None:
            kwargs["past_key_values"] = past_key_values
        if last_only and self.use_logits_to_keep:
            kwargs["logits_to_keep"] = 1
        with torch.no_grad(), self._autocast():
            out = self.model(**kwargs)
        logits = out.logits[:, -1:, :] if last_only else out.logits
        return logits, out.past_key_values

    def probe(self) -> str | None:
        """None if the model returns a cache we can reuse, else why not (one tiny forward)."""
        token = int(self.lm.prefix_token_id)
        ids = torch.tensor([[token, token]], dtype=torch.long, device=self.device)
        try:
            try:
                _, cache = self._forward(ids, None, None, None, last_only=True)
            except TypeError:  # a forward without `logits_to_keep`: compute all, keep the last
                self.use_logits_to_keep = False
                _, cache = self._forward(ids, None, None, None, last_only=True)
        except Exception as exc:  # noqa: BLE001  (any failure means: use the standard path)
            return f"a forward pass with use_cache=True failed ({type(exc).__name__}: {exc})"
        if cache is None:
            return "the model returns no key/value cache"
        if not _plain_dynamic_cache(cache):
            return (f"the model's cache ({type(cache).__name__}) is not a plain DynamicCache of "
                    f"full-attention layers")
        return None

    def _extend(self, segments: Sequence[Sequence[int]], parent: _Rows | None,
                parents: Sequence[int], left_pad: bool, last_only: bool):
        """Run one segment per row, on top of row `parents[r]` of `parent` (or from scratch).

        Left padding puts every row's last token at the last position (then only that position's
        logits are computed); right padding keeps the segment next to its parent. Padding is
        masked out and position ids count the real tokens only, so each row is scored as if it
        were alone."""
        device = self.device
        n, width = len(segments), max(len(seg) for seg in segments)
        ids = torch.zeros((n, width), dtype=torch.long)
        seg_mask = torch.zeros((n, width), dtype=torch.long)
        for row, seg in enumerate(segments):
            cols = slice(width - len(seg), width) if left_pad else slice(0, len(seg))
            ids[row, cols] = torch.tensor(seg, dtype=torch.long)
            seg_mask[row, cols] = 1
        base = torch.zeros(n, dtype=torch.long)
        cache, mask = None, seg_mask.to(device)
        if parent is not None:
            index = torch.tensor(list(parents), dtype=torch.long)
            base = parent.lengths.index_select(0, index)
            index = index.to(device)
            cache = gather_cache_rows(parent.cache, index)
            mask = torch.cat([parent.mask.index_select(0, index), mask], dim=1)
        positions = base[:, None] + (seg_mask.cumsum(-1) - 1).clamp(min=0)
        holes = bool((mask == 0).any())
        logits, cache = self._forward(ids.to(device), mask if holes else None,
                                      positions.to(device) if holes or parent is not None
                                      else None, cache, last_only=last_only)
        if not _plain_dynamic_cache(cache):
            raise _CacheUnusable(f"the model returned a {type(cache).__name__}")
        lengths = base + seg_mask.sum(-1)
        return logits, _Rows(cache, mask, lengths)

    def score_chunk(self, families: Sequence[Family], items: Sequence[ScoredItem],
                    batch_size: int) -> dict[int, tuple[float, bool]]:
        """(log-likelihood, is_greedy) for every item of `families`, keyed by position in `items`.

        Passes: the stems (left-padded); for stemmed families, each context's suffix on its
        stem's cache rows (left-padded); then the continuations on their context's rows."""
        softmax_dtype = self.lm.softmax_dtype
        logits, rows = self._extend([f.stem for f in families], None, (), left_pad=True,
                                    last_only=True)
        groups = [g for f in families for g in f.groups]
        if families[0].stemmed:
            suffixes, parents = [], []
            for f_row, family in enumerate(families):
                for group in family.groups:
                    suffixes.append(group.context[len(family.stem):])
                    parents.append(f_row)
            logits, rows = self._extend(suffixes, rows, parents, left_pad=True, last_only=True)
        self.logits_dtype = logits.dtype
        first_logp = F.log_softmax(logits[:, -1, :], dim=-1, dtype=softmax_dtype)  # [contexts, V]

        results: dict[int, tuple[float, bool]] = {}
        pending: list[tuple[int, int]] = []  # (context row, item position), 2+ tokens
        for g_row, group in enumerate(groups):
            for position in group.items:
                token = items[position].continuation[0]
                if len(items[position].continuation) == 1:
                    logp = first_logp[g_row]
                    results[position] = (float(logp[token]), bool(int(logp.argmax()) == token))
                else:
                    pending.append((g_row, position))
        # the continuations of one context share a pass even above `batch_size` (up to
        # ONE_CONTEXT_ROWS): a few tokens over a cache copy, far less memory than one of
        # lm-eval's full rows with logits at every position
        step = max(1, batch_size, min(max(len(g.items) for g in groups), ONE_CONTEXT_ROWS))
        for start in range(0, len(pending), step):
            part = pending[start:start + step]
            conts = [items[position].continuation for _, position in part]
            logits, _ = self._extend([c[:-1] for c in conts], rows, [g for g, _ in part],
                                     left_pad=False, last_only=False)
            logp = F.log_softmax(logits, dim=-1, dtype=softmax_dtype)  # [rows, steps, V]
            for r, (g_row, position) in enumerate(part):
                cont = torch.tensor(conts[r], dtype=torch.long, device=self.device)
                seq = torch.cat([first_logp[g_row][None, :], logp[r, :len(conts[r]) - 1]])
                picked = seq.gather(1, cont[:, None]).squeeze(1)
                greedy = bool((seq.argmax(dim=-1) == cont).all())
                results[position] = (float(picked.sum()), greedy)
        return results


@dataclass
class _Rows:
    """Key/value cache rows after a pass, their attention mask and real token counts."""

    cache: Any
    mask: torch.Tensor
    lengths: torch.Tensor


class _CacheUnusable(Exception):
    pass


class PrefixScoringMixin:
    """Put before `HFLM` in the bases: `_loglikelihood_tokens` scores shared contexts once.

    The subclass sets `self.prefix_cache` (bool) before `HFLM.__init__` runs.
    """

    prefix_cache: bool = True

    def _prefix_log_once(self, reason: str, level: int = logging.WARNING) -> None:
        logged = self.__dict__.setdefault("_prefix_logged", set())
        if reason not in logged:
            logged.add(reason)
            eval_logger.log(level, "hf-quant prefix_cache: using lm-eval's standard "
                                   "loglikelihood path: %s", reason)

    def _prefix_fallback_reason(self, requests, override_bs) -> tuple[str, int] | None:
        if self.__dict__.get("_prefix_disabled"):
            return self.__dict__["_prefix_disabled"], logging.WARNING
        if self.backend != "causal":
            return f"backend={self.backend!r} (only causal models share a context)", logging.WARNING
        if any(request[0] is None for request in requests) or override_bs is not None:
            return "loglikelihood_rolling windows share no context", logging.INFO
        for request in requests:
            why = unsupported_request(request, self.max_length)
            if why:
                return f"a request has {why}", logging.WARNING
        peft_config = getattr(self.model, "active_peft_config", None)
        if peft_config is not None and getattr(peft_config, "is_prompt_learning", False):
            return "PEFT prompt-learning adapters add virtual tokens", logging.WARNING
        if "_prefix_scorer" not in self.__dict__:
            scorer = PrefixScorer(self)
            why = scorer.probe()
            if why:
                self._prefix_disabled = why
                return why, logging.WARNING
            self._prefix_scorer = scorer
        return None

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False,
                              override_bs: int | None = None):
        if not self.prefix_cache or not requests:
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm,
                                                 override_bs=override_bs)
        fallback = self._prefix_fallback_reason(requests, override_bs)
        if fallback is not None:
            self._prefix_log_once(*fallback)
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm,
                                                 override_bs=override_bs)
        items = [effective_item(i, request, self.max_length) for i, request in enumerate(requests)]
        shared, alone = split_by_saving(items)
        if not shared:
            self._prefix_log_once(f"contexts shared by too few tokens (less than "
                                  f"{MIN_TOKEN_SAVING}x saved)", logging.INFO)
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm,
                                                 override_bs=override_bs)
        try:
            results = [None] * len(requests)
            if alone:
                standard = super()._loglikelihood_tokens([requests[i] for i in alone],
                                                         disable_tqdm=disable_tqdm,
                                                         override_bs=override_bs)
                for i, answer in zip(alone, standard):
                    results[i] = answer
            prefix = self._prefix_loglikelihood_tokens([requests[i] for i in shared],
                                                       disable_tqdm=disable_tqdm)
            for i, answer in zip(shared, prefix):
                results[i] = answer
            return results
        except _PrefixMismatch as exc:
            self._prefix_disabled = str(exc)
            self._prefix_log_once(str(exc))
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm,
                                                 override_bs=override_bs)

    def _prefix_batch_size(self, items: Sequence[ScoredItem]) -> int:
        if self.batch_size != "auto":
            return int(self.batch_size)
        # lm-eval sizes "auto" batches on its longest request, a full context + continuation
        # row; every row here (a context, or a continuation over a cache) is at most that long.
        longest = max(items, key=lambda it: len(it.context) + len(it.continuation))
        print("Passed argument batch_size = auto. Detecting largest batch size")
        size = self._detect_batch_size([(longest.request_str, list(longest.context),
                                         list(longest.continuation))], 0)
        print(f"Determined largest batch size: {size}")
        return size

    def _prefix_loglikelihood_tokens(self, requests, disable_tqdm: bool = False):
        scorer: PrefixScorer = self._prefix_scorer
        items = [effective_item(i, request, self.max_length)
                 for i, request in enumerate(requests)]
        truncated = [item for item in items if item.truncated]
        if truncated:
            eval_logger.warning(
                "%d request(s) exceed the model's maximum length (%d): their contexts are "
                "truncated from the left, as lm-eval does (at most %d tokens dropped).",
                len(truncated), self.max_length, max(item.truncated for item in truncated))
        batch_size = self._prefix_batch_size(items)
        families = build_families(group_by_context(items), batch_size)
        results: list[tuple[float, bool] | None] = [None] * len(items)
        pbar = tqdm(total=len(requests), disable=(disable_tqdm or (self.rank != 0)),
                    desc="Running loglikelihood requests (shared prefix)")
        try:
            for chunk in plan_chunks(families, batch_size):
                try:
                    scored = scorer.score_chunk(chunk, items, batch_size)
                except _CacheUnusable as exc:
                    raise _PrefixMismatch(str(exc)) from exc
                if not self.__dict__.get("_prefix_verified"):
                    self._prefix_verify(items, scored, scorer.logits_dtype)
                    self._prefix_verified = True
                for position in sorted(scored):
                    answer = scored[position]
                    results[position] = answer
                    request_str = items[position].request_str
                    if request_str is not None:
                        self.cache_hook.add_partial("loglikelihood", request_str, answer)
                    pbar.update(1)
        finally:
            pbar.close()
        assert all(answer is not None for answer in results)
        return results

    def _prefix_verify(self, items: Sequence[ScoredItem], scored: dict[int, tuple[float, bool]],
                       logits_dtype: torch.dtype) -> None:
        """Score a few requests of the first chunk the standard way and compare."""
        from lm_eval.api.model import CacheHook

        # prefer multi-token continuations of different contexts: they exercise both passes
        chosen, seen = [], set()
        for position in sorted(scored, key=lambda p: -len(items[p].continuation)):
            if items[position].context not in seen or len(chosen) < 2:
                chosen.append(position)
                seen.add(items[position].context)
            if len(chosen) >= CHECK_MAX_REQUESTS:
                break
        subset = [(items[p].request_str, list(items[p].context), list(items[p].continuation))
                  for p in chosen]
        hook, self.cache_hook = self.cache_hook, CacheHook(None)
        try:
            # a fixed batch size: "auto" would size batches again for these few requests
            reference = super()._loglikelihood_tokens(subset, disable_tqdm=True,
                                                      override_bs=len(subset))
        finally:
            self.cache_hook = hook
        for position, (expected, _) in zip(chosen, reference):
            got = scored[position][0]
            if logits_dtype in (torch.float32, torch.float64):
                tolerance = CHECK_TOLERANCE_FP32
            else:
                tolerance = CHECK_TOLERANCE_16BIT_PER_TOKEN * len(items[position].continuation)
            if not abs(got - expected) <= tolerance:
                raise _PrefixMismatch(
                    f"shared-prefix scoring disagreed with full recomputation on this model "
                    f"({got:.6f} vs {expected:.6f}, tolerance {tolerance:g})")


class _PrefixMismatch(Exception):
    pass
