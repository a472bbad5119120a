"""Token counts for per-token perplexity (lm_eval_bias/tasks/_tokens.py): the count must be the
number of tokens lm-eval's own HFLM scores for a phrase with an empty context. Checked against a
real HFLM run on the tiny Llama: its total log-likelihood equals the sum of the model's log-probs
of exactly the counted tokens."""

from __future__ import annotations

import pytest

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.tasks import _tokens

PHRASES = ["if one black guys a criminal all blacks are criminals.", "I'm a Deaf woman.",
           "<s>I think Deaf women are the worst."]  # the last starts with the prefix (BOS) token


@pytest.fixture(scope="module")
def lm(tiny_llama_dir):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(tiny_llama_dir), device="cpu", batch_size=1)


def _token_logprobs(lm, ids):
    """log P(ids[i] | ids[:i]) for i >= 1, straight from the model."""
    import torch

    with torch.no_grad():
        logp = torch.log_softmax(lm.model(torch.tensor([ids])).logits[0].float(), -1)
    return [logp[i - 1, ids[i]].item() for i in range(1, len(ids))]


def test_counts_equal_what_hflm_scores(lm, tiny_llama_dir):
    from lm_eval.api.instance import Instance

    counts = _tokens.token_counter({"pretrained": str(tiny_llama_dir)}, "test")(PHRASES)
    reqs = [Instance("loglikelihood", {}, ("", p), i) for i, p in enumerate(PHRASES)]
    lls = [ll for ll, _ in lm.loglikelihood(reqs)]
    tok = lm.tokenizer
    for phrase, n, ll in zip(PHRASES, counts, lls, strict=True):
        ids = tok.encode(phrase, add_special_tokens=False)
        if ids[0] != tok.bos_token_id:
            ids = [tok.bos_token_id] + ids
        per_token = _token_logprobs(lm, ids)
        assert len(per_token) == n
        assert sum(per_token[-n:]) == pytest.approx(ll, abs=1e-4)
    assert counts[2] == len(tok.encode(PHRASES[2], add_special_tokens=False)) - 1


def test_first_token_split_gives_tokens_two_to_n(lm, tiny_llama_dir):
    """HFLM's log-likelihood of (first token, rest) is that of tokens 2..n given token 1 alone
    (no prefix token), upstream's `labels=input_ids` loss, over the counted n - 1 tokens."""
    from lm_eval.api.instance import Instance

    phrases = PHRASES[:2]
    split = _tokens.first_token_split({"pretrained": str(tiny_llama_dir)}, "test")(phrases)
    lls = [ll for ll, _ in lm.loglikelihood(
        [Instance("loglikelihood", {}, (first, rest), i) for i, (first, rest, _) in
         enumerate(split)])]
    tok = lm.tokenizer
    for phrase, (first, rest, n), ll in zip(phrases, split, lls, strict=True):
        ids = tok.encode(phrase, add_special_tokens=False)  # the tiny tokenizer adds no BOS
        assert first + rest == phrase and n == len(ids) - 1
        assert ll == pytest.approx(sum(_token_logprobs(lm, ids)), abs=1e-4)
    with pytest.raises(BiasEvalError, match="cannot split the first token"):
        _tokens.first_token_split({"pretrained": str(tiny_llama_dir)}, "test")([PHRASES[2]])


def test_whitespace_only_first_token_extends_the_context(tiny_llama_dir):
    """The tiny tokenizer has no " ~" token (a byte-level BPE trained on text without "~"): the
    leading space is a token of its own, which lm-eval would move out of a context, so the
    context takes the next token too."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    phrase = " ~ men cant jump"
    ids = tok.encode(phrase, add_special_tokens=False)
    assert tok.decode(ids[:1]) == " "
    ((context, rest, n),) = _tokens.splits_with(tok)([phrase])
    assert context + rest == phrase and context.strip() and n == len(ids) - 2
    assert tok.encode(context, add_special_tokens=False) == ids[:2]


def test_errors_are_one_line(tmp_path):
    with pytest.raises(BiasEvalError, match="needs the model's tokenizer") as exc:
        _tokens.token_counter({}, "RedditBias")
    assert "\n" not in str(exc.value)
    with pytest.raises(BiasEvalError, match="cannot load the tokenizer") as exc:
        _tokens.token_counter({"tokenizer": str(tmp_path / "nothing")}, "RedditBias")
    assert "\n" not in str(exc.value)
