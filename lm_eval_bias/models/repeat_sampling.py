"""k samples from one prefill: lm-eval's repeated generation requests, each prompt run once.

A task with `repeats: k` (RealToxicityPrompts: k = 25 in the paper's protocol, 5 in the lite
tasks) makes lm-eval's evaluator clone each request k times, so `generate_until` receives k
identical (context, gen_kwargs) requests, and lm-eval's `HFLM` prefills the same prompt k times.
Here, per distinct request:

* greedy / deterministic decoding (lm-eval's normalized `do_sample` is false): identical requests
  give identical outputs, so the distinct requests alone go through lm-eval's own
  `generate_until` (its batching, truncation, stop sequences and post-processing, unchanged) and
  each output is handed to all k copies. Path name: `greedy_deduplicated`.
* sampling: the prompt is tokenized exactly as lm-eval tokenizes it, all but its last token run
  once (left-padded with the other prompts of the chunk) with `use_cache=True`; the key/value cache
  rows are copied k ways (`index_select`) and `model.generate` continues all k rows in one batch
  from the last prompt token, with lm-eval's own stopping criteria and generation kwargs, the way
  serving engines sample `n = k`. Path name: `one_prefill`.
* everything else (requests that are not repeated, options this path does not handle, seq2seq
  models, caches that are not plain full-attention `DynamicCache`s, PEFT prompt-learning,
  `repeat_sampling=false`): lm-eval's path, with one log line per reason. Path name: `lm_eval`.

What is and is not reproduced (measurements: README.md, Performance):

* Greedy outputs equal lm-eval's (tests/models/test_repeat_sampling.py: a request mix with
  different prompt lengths, stop sequences and max_gen_toks, against plain `hf`). The batches
  hold only the distinct prompts, so where lm-eval's own greedy output depends on the batch (it
  pads to the longest prompt of a batch, which changes float rounding), ours may differ from
  lm-eval's at another batch size exactly as lm-eval's output differs between batch sizes; at
  batch size 1 both run the same computation.
* Sampled continuations are draws from the same distribution (same model, prompt tokens,
  generation kwargs and logits processors; the next-token logits of the first chunk are checked
  against a full forward pass, and a mismatch switches the model to lm-eval's path). They are not
  the same tokens as lm-eval's: torch's generator, seeded once by lm-eval's `--seed` (the torch
  seed, default 1234), is consumed in a different order. Runs of this path are reproducible
  among themselves (same seed, model, device, batch size and requests). `benchmarks/
  bench_repeats.py` tests the length and toxicity-score distributions against lm-eval's path.

The run's results JSON records what ran: `config.generation` = {"repeat_sampling": bool,
"requests": {path: number of requests}, "fallback_reasons": [...]} (`get_model_info`).
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from lm_eval.models.utils import (
    handle_stop_sequences,
    normalize_gen_kwargs,
    postprocess_generated_text,
)
from tqdm import tqdm

from lm_eval_bias.models.model_args import parse_bool

eval_logger = logging.getLogger(__name__)

PATHS = ("one_prefill", "greedy_deduplicated", "lm_eval")
# Generation kwargs the one-prefill path passes to `model.generate` unchanged (after lm-eval's
# normalization): logits processors that act on each row alone. Any other key takes lm-eval's path.
SAMPLING_KEYS = frozenset({"until", "max_gen_toks", "do_sample", "temperature", "top_p", "top_k",
                           "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff",
                           "repetition_penalty"})
# Tolerance of the one-time check (log-probabilities of the next token, cached vs full forward).
CHECK_TOLERANCE_FP32 = 1e-4
CHECK_TOLERANCE_16BIT = 5e-2


def parse_repeat_sampling(value: Any) -> bool:
    """The `repeat_sampling` model_arg (`model_args.parse_bool`)."""
    return parse_bool("repeat_sampling", value)


def kwargs_key(gen_kwargs: Any) -> str:
    """One string per distinct generation-kwargs dict (lists and dicts compare by value)."""
    return json.dumps(gen_kwargs, sort_keys=True, default=repr)


@dataclass
class RepeatedPrompt:
    """One distinct (context, gen_kwargs) request and the positions of its copies."""

    context: str
    gen_kwargs: dict
    positions: list[int] = field(default_factory=list)


def group_requests(args: Sequence[tuple[str, dict]]) -> dict[str, list[RepeatedPrompt]]:
    """Distinct requests per generation-kwargs key, in first-seen order."""
    by_kwargs: dict[str, dict[str, RepeatedPrompt]] = {}
    for position, (context, gen_kwargs) in enumerate(args):
        prompts = by_kwargs.setdefault(kwargs_key(gen_kwargs), {})
        prompt = prompts.setdefault(context, RepeatedPrompt(context, gen_kwargs))
        prompt.positions.append(position)
    return {key: list(prompts.values()) for key, prompts in by_kwargs.items()}


def unsupported_sampling_kwargs(kwargs: dict) -> str | None:
    """Why the one-prefill path would not reproduce lm-eval's sampling for these (normalized)
    generation kwargs, or None."""
    extra = sorted(set(kwargs) - SAMPLING_KEYS - {"num_beams"})
    if extra:
        return f"generation kwargs {', '.join(extra)} (handled by lm-eval's path only)"
    if int(kwargs.get("num_beams", 1) or 1) != 1:
        return "num_beams > 1 (beam sampling)"
    return None


def plan_chunks(counts: Sequence[int], row_limit: int) -> list[list[int]]:
    """Consecutive prompts (by index) per generate call: whole prompts, at most `row_limit` rows
    (k copies each) unless one prompt alone has more."""
    chunks: list[list[int]] = []
    current: list[int] = []
    rows = 0
    for index, count in enumerate(counts):
        if current and rows + count > row_limit:
            chunks.append(current)
            current, rows = [], 0
        current.append(index)
        rows += count
    if current:
        chunks.append(current)
    return chunks


def plain_dynamic_cache(cache: Any) -> bool:
    """A `DynamicCache` of full-attention `DynamicLayer`s only: rows can be copied with
    `index_select` (sliding-window, linear-attention, quantized or offloaded layers keep more)."""
    try:
        from transformers.cache_utils import DynamicCache, DynamicLayer
    except ImportError:  # transformers < 4.56 has no cache layers
        return False
    return (type(cache) is DynamicCache and len(cache.layers) > 0
            and not getattr(cache, "offloading", False)
            and all(type(layer) is DynamicLayer and layer.is_initialized
                    for layer in cache.layers))


def copy_cache_rows(cache: Any, rows: torch.Tensor) -> Any:
    """A new `DynamicCache` with rows `rows` of `cache` (repeats allowed); `cache` is untouched."""
    from transformers.cache_utils import DynamicCache

    return DynamicCache(ddp_cache_data=[(layer.keys.index_select(0, rows),
                                         layer.values.index_select(0, rows))
                                        for layer in cache.layers])


class OnePrefillSampler:
    """Prefill, copy, sample for one `HFLM` (`lm`). Holds no request state."""

    def __init__(self, lm) -> None:
        self.lm = lm
        self.model = lm.model
        params = inspect.signature(self.model.forward).parameters
        # transformers 5 renamed `past_key_values` to `cache` (the old name is deprecated)
        self.cache_arg = "cache" if "cache" in params else "past_key_values"

    def _autocast(self):
        dtype = self.lm.mixed_precision_dtype
        return torch.autocast(device_type=self.lm.device.type, dtype=dtype,
                              enabled=dtype is not None)

    def forward(self, ids, mask, cache=None):
        """Logits at the last position and the cache; position ids from the mask, as
        `generate` computes them."""
        position_ids = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        kwargs = {"input_ids": ids, "attention_mask": mask, "use_cache": True}
        if cache is not None:
            kwargs[self.cache_arg] = cache
            kwargs["position_ids"] = position_ids[:, -ids.shape[1]:]
        else:
            kwargs["position_ids"] = position_ids
        with torch.no_grad(), self._autocast():
            out = self.model(**kwargs)
        new_cache = getattr(out, "cache", None)
        if new_cache is None:
            new_cache = getattr(out, "past_key_values", None)
        return out.logits[:, -1, :], new_cache

    def probe(self) -> str | None:
        """None if this model's cache can be copied row-wise, else why not (one tiny forward)."""
        generation_config = getattr(self.model, "generation_config", None)
        implementation = getattr(generation_config, "cache_implementation", None)
        if implementation not in (None, "dynamic"):
            return f"the model's generation_config asks for cache_implementation={implementation}"
        token = int(self.lm.prefix_token_id)
        ids = torch.tensor([[token, token]], dtype=torch.long, device=self.lm.device)
        try:
            _, cache = self.forward(ids, torch.ones_like(ids))
        except Exception as exc:  # noqa: BLE001  (any failure means: use lm-eval's path)
            return f"a forward pass with use_cache=True failed ({type(exc).__name__}: {exc})"
        if cache is None:
            return "the model returns no key/value cache"
        if not plain_dynamic_cache(cache):
            return (f"the model's cache ({type(cache).__name__}) is not a plain DynamicCache of "
                    f"full-attention layers")
        return None

    def encode(self, contexts: Sequence[str], max_ctx_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each prompt tokenized alone by lm-eval's `tok_batch_encode` (as a batch of its own
        copies would be), then left-padded together."""
        rows = [self.lm.tok_batch_encode([context], left_truncate_len=max_ctx_len,
                                         truncation=self.lm.truncation)[0][0]
                for context in contexts]
        width = max(len(row) for row in rows)
        pad = self.lm.tokenizer.pad_token_id
        ids = torch.full((len(rows), width), 0 if pad is None else int(pad), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for index, row in enumerate(rows):
            if len(row):
                ids[index, width - len(row):] = row
                mask[index, width - len(row):] = 1
        return ids.to(self.lm.device), mask.to(self.lm.device)

    def check_next_token(self, ids, mask, cache) -> str | None:
        """Compare the next-token log-probabilities from the prefilled cache with a full forward
        pass over the whole prompts; why they differ, or None."""
        rows = torch.arange(ids.shape[0], device=ids.device)
        cached, _ = self.forward(ids[:, -1:], mask, copy_cache_rows(cache, rows))
        full, _ = self.forward(ids, mask)
        delta = float((F.log_softmax(cached.float(), -1) - F.log_softmax(full.float(), -1))
                      .abs().max())
        tolerance = CHECK_TOLERANCE_FP32 if full.dtype == torch.float32 else CHECK_TOLERANCE_16BIT
        if not delta <= tolerance:  # also catches NaN
            return (f"next-token log-probabilities from the copied cache differ from a full "
                    f"forward pass by {delta:.3g} (> {tolerance})")
        return None

    def sample(self, contexts: Sequence[str], counts: Sequence[int], kwargs: dict,
               until: list[str], max_gen_toks: int, max_ctx_len: int,
               check: bool) -> list[list[int]]:
        """Generated token ids, `counts[i]` rows for context i (in that order). Raises
        `CacheCopyError` when the cache cannot be copied or `check` fails."""
        ids, mask = self.encode(contexts, max_ctx_len)
        width = ids.shape[1]
        rows = torch.repeat_interleave(torch.arange(len(contexts), device=ids.device),
                                       torch.tensor(counts, device=ids.device))
        extra = {}
        if width > 1:
            _, cache = self.forward(ids[:, :-1], mask[:, :-1])
            if not plain_dynamic_cache(cache):
                raise CacheCopyError(f"the model returned a {type(cache).__name__}")
            if check:
                why = self.check_next_token(ids, mask, cache)
                if why:
                    raise CacheCopyError(why)
            extra[self.cache_arg] = copy_cache_rows(cache, rows)
            del cache
        out = self.lm._model_generate(
            context=ids.index_select(0, rows), attention_mask=mask.index_select(0, rows),
            stop=until, max_length=width + max_gen_toks, **extra, **kwargs)
        return [row[width:] for row in out.tolist()]


class CacheCopyError(Exception):
    pass


def decode_continuation(lm, tokens: list[int], until: list[str]) -> str:
    """Generated token ids to the string lm-eval's `generate_until` returns (its think-token
    handling and stop-sequence cut)."""
    think = lm.think_end_token
    if isinstance(think, int):
        marks = [i for i, token in enumerate(tokens) if token == think]
        if marks:
            tokens = tokens[marks[-1] + 1:]
    text = lm.tok_decode(tokens)
    if isinstance(think, int):
        text = text.lstrip()
    return postprocess_generated_text(generation=text, stop=until,
                                      think_end_token=think if isinstance(think, str) else None)


class RepeatSamplingMixin:
    """Put before `HFLM` in the bases: `generate_until` runs each repeated prompt once.

    The subclass sets `self.repeat_sampling` (bool) before `HFLM.__init__` runs.
    """

    repeat_sampling: bool = True

    def _repeat_record(self) -> dict:
        return self.__dict__.setdefault("_repeat_sampling_record", {
            "repeat_sampling": bool(self.repeat_sampling),
            "requests": dict.fromkeys(PATHS, 0), "fallback_reasons": []})

    def _repeat_fallback(self, reason: str, n_requests: int, level: int = logging.WARNING) -> None:
        record = self._repeat_record()
        record["requests"]["lm_eval"] += n_requests
        if reason not in record["fallback_reasons"]:
            record["fallback_reasons"].append(reason)
            eval_logger.log(level, "hf-quant repeat_sampling: using lm-eval's generation path "
                                   "for %d request(s): %s", n_requests, reason)

    def _repeat_sampling_reason(self, kwargs: dict) -> str | None:
        """Why a sampled group cannot take the one-prefill path (None: it can)."""
        if self.__dict__.get("_repeat_disabled"):
            return self.__dict__["_repeat_disabled"]
        if self.backend != "causal":
            return f"backend={self.backend!r} (only causal models continue a copied cache)"
        why = unsupported_sampling_kwargs(kwargs)
        if why:
            return why
        if self.max_length - kwargs["max_gen_toks"] <= 0:
            return "max_gen_toks leaves no room for the prompt (lm-eval refuses it)"
        peft_config = getattr(self.model, "active_peft_config", None)
        if peft_config is not None and getattr(peft_config, "is_prompt_learning", False):
            return "PEFT prompt-learning adapters add virtual tokens"
        if "_repeat_sampler" not in self.__dict__:
            sampler = OnePrefillSampler(self)
            why = sampler.probe()
            if why:
                self._repeat_disabled = why
                return why
            self._repeat_sampler = sampler
        return None

    def _repeat_path(self, prompts: Sequence[RepeatedPrompt]) -> tuple[str, str | None]:
        """(path, reason for lm-eval's path) for one generation-kwargs group."""
        if not self.repeat_sampling:
            return "lm_eval", "repeat_sampling=false"
        if all(len(prompt.positions) == 1 for prompt in prompts):
            return "lm_eval", "no repeated request"
        kwargs = normalize_gen_kwargs(prompts[0].gen_kwargs, self.max_gen_toks)
        if not kwargs["do_sample"]:
            return "greedy_deduplicated", None
        why = self._repeat_sampling_reason(dict(kwargs))
        return ("lm_eval", why) if why else ("one_prefill", None)

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        if not requests:
            return super().generate_until(requests, disable_tqdm=disable_tqdm)
        record = self._repeat_record()
        results: list[str | None] = [None] * len(requests)
        standard: list[int] = []  # positions that lm-eval's path runs as they are
        greedy: list[RepeatedPrompt] = []  # its first copy runs in lm-eval's path, for all copies
        sampled: list[list[RepeatedPrompt]] = []
        for prompts in group_requests([request.args for request in requests]).values():
            path, why = self._repeat_path(prompts)
            n_requests = sum(len(prompt.positions) for prompt in prompts)
            if path == "lm_eval":
                quiet = why in ("no repeated request", "repeat_sampling=false")
                self._repeat_fallback(why, n_requests, logging.INFO if quiet else logging.WARNING)
                standard += [position for prompt in prompts for position in prompt.positions]
            elif path == "greedy_deduplicated":
                record["requests"][path] += n_requests
                greedy += prompts
            else:
                sampled.append(prompts)
        for prompts in sampled:
            for prompt in self._repeat_sample_group(prompts, results, disable_tqdm):
                standard += prompt.positions  # the model failed the cache check: lm-eval's path
        firsts = [prompt.positions[0] for prompt in greedy]
        if standard or firsts:
            outputs = super().generate_until([requests[i] for i in standard + firsts],
                                             disable_tqdm=disable_tqdm)
            for position, output in zip(standard, outputs[:len(standard)], strict=True):
                results[position] = output
            for prompt, output in zip(greedy, outputs[len(standard):], strict=True):
                for position in prompt.positions:
                    results[position] = output
        assert all(result is not None for result in results)
        return results

    def _repeat_batch_size(self) -> int:
        if self.batch_size != "auto":
            return int(self.batch_size)
        if "_repeat_auto_batch" not in self.__dict__:
            print("Passed argument batch_size = auto. Detecting largest batch size")
            self._repeat_auto_batch = int(self._detect_batch_size())
            print(f"Determined Largest batch size: {self._repeat_auto_batch}")
        return self._repeat_auto_batch

    def _repeat_sample_group(self, prompts: Sequence[RepeatedPrompt], results: list,
                             disable_tqdm: bool) -> list[RepeatedPrompt]:
        """Sample every copy of `prompts` (one generation-kwargs group) into `results`; returns
        the prompts left to lm-eval's path if the cache turns out not to be copyable."""
        kwargs = dict(normalize_gen_kwargs(prompts[0].gen_kwargs, self.max_gen_toks))
        eos = self.tok_decode(self.eot_token_id, skip_special_tokens=False)
        until = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
        max_gen_toks = kwargs.pop("max_gen_toks")
        # longest prompts first, as lm-eval orders them (less padding per chunk)
        lengths = [len(self.tok_encode(prompt.context)) for prompt in prompts]
        order = sorted(range(len(prompts)), key=lambda i: (-lengths[i], prompts[i].context))
        ordered = [prompts[i] for i in order]
        chunks = plan_chunks([len(p.positions) for p in ordered], self._repeat_batch_size())
        sampler: OnePrefillSampler = self._repeat_sampler
        pbar = tqdm(total=sum(len(p.positions) for p in ordered),
                    disable=(disable_tqdm or (self.rank != 0)),
                    desc="Running generate_until requests (one prefill per repeated prompt)")
        try:
            for done, chunk in enumerate(chunks):
                chosen = [ordered[i] for i in chunk]
                try:
                    tokens = sampler.sample(
                        [p.context for p in chosen], [len(p.positions) for p in chosen], kwargs,
                        until, max_gen_toks, self.max_length - max_gen_toks,
                        check=not self.__dict__.get("_repeat_verified"))
                except CacheCopyError as exc:
                    self._repeat_disabled = str(exc)
                    left = [ordered[i] for c in chunks[done:] for i in c]
                    self._repeat_fallback(str(exc), sum(len(p.positions) for p in left))
                    return left
                self._repeat_verified = True
                rows = iter(tokens)
                for prompt in chosen:
                    for position in prompt.positions:
                        text = decode_continuation(self, next(rows), until)
                        results[position] = text
                        self.cache_hook.add_partial("generate_until",
                                                    (prompt.context, prompt.gen_kwargs), text)
                    self._repeat_record()["requests"]["one_prefill"] += len(prompt.positions)
                pbar.update(len(tokens))
        finally:
            pbar.close()
        return []

    def get_model_info(self) -> dict:
        """The parent's record plus `generation`: which generation path ran for how many
        requests, and why lm-eval's path was used where it was."""
        record = self._repeat_record()
        return {**super().get_model_info(),
                "generation": {**record, "requests": dict(record["requests"]),
                               "fallback_reasons": list(record["fallback_reasons"])}}
