"""k repeated generation requests from one prefill (`hf-quant`, repeat_sampling=true) against
lm-eval's own path.

Real tiny random-init models and real lm-eval requests, cloned k times as lm-eval's evaluator
clones them for a task's `repeats`. Greedy outputs must equal plain `hf`'s; sampling with
top_k=1 (deterministic, but through the one-prefill path) must equal plain `hf`'s too, which pins
cache copying, padding, positions, stop sequences and the order of the k outputs; the sampled
first token must follow the model's own next-token distribution (chi-square test).
"""

from __future__ import annotations

import json
import logging
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from scipy import stats
from transformers import AutoTokenizer

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.models.hf_quant import HFQuantLM
from lm_eval_bias.models.repeat_sampling import (
    group_requests,
    parse_repeat_sampling,
    plan_chunks,
    unsupported_sampling_kwargs,
)

PROMPTS = [  # different lengths, one long enough to be left-truncated at max_length=48
    "I saw a grandson and their grandfather last week outside the Walmart",
    "Who was late?",
    "A",
    "The doctor and the nurse were talking about the long shift they had worked together. " * 4,
    "Two friends met for lunch. ",
]
REPEATS = [3, 1, 4, 2, 5]


def _requests(prompts, repeats, gen_kwargs_list) -> list[Instance]:
    """Each (prompt, gen_kwargs) cloned `repeats` times, as lm-eval's evaluator does, then the
    kwargs groups interleaved (so that one call mixes them)."""
    groups = []
    for g, gen_kwargs in enumerate(gen_kwargs_list):
        reqs = []
        for i, (prompt, k) in enumerate(zip(prompts, repeats, strict=True)):
            request = Instance(request_type="generate_until", doc={"i": i, "g": g}, idx=0,
                               arguments=(prompt, gen_kwargs), repeats=k)
            reqs += [request] * k
        groups.append(reqs)
    return [r for batch in zip(*groups, strict=False) for r in batch] + [
        r for reqs in groups for r in reqs[min(len(x) for x in groups):]]


def _stops(tiny_llama_dir) -> tuple[str, str]:
    """Two stop strings that do occur in the model's greedy continuations."""
    hf = HFLM(pretrained=str(tiny_llama_dir), device="cpu", batch_size=1)
    out = hf.generate_until([Instance(request_type="generate_until", doc={}, idx=0, arguments=(
        p, {"until": [], "max_gen_toks": 16, "do_sample": False})) for p in PROMPTS[:2]])
    return out[0][4:7], out[1][2:4]


@pytest.fixture(scope="module")
def greedy_kwargs(tiny_llama_dir) -> list[dict]:
    stop_a, stop_b = _stops(tiny_llama_dir)
    return [
        {"until": ["\n\n"], "max_gen_toks": 12, "do_sample": False},
        {"until": [stop_a, "zzz"], "max_gen_toks": 16, "do_sample": False},
        {"until": stop_b, "max_gen_toks": 5, "temperature": 0.0},  # greedy by lm-eval's rule
    ]


def _run(lm, requests):
    torch.manual_seed(1234)
    return lm.generate_until(requests)


@pytest.mark.parametrize(("batch_size", "max_length"), [(1, None), (3, 48), ("auto", None)])
def test_greedy_equals_plain_hf(tiny_llama_dir, greedy_kwargs, batch_size, max_length):
    requests = _requests(PROMPTS, REPEATS, greedy_kwargs)
    extra = {} if max_length is None else {"max_length": max_length}
    ref = _run(HFLM(pretrained=str(tiny_llama_dir), device="cpu", batch_size=batch_size,
                    **extra), requests)
    hfq = HFQuantLM(pretrained=str(tiny_llama_dir), device="cpu", batch_size=batch_size, **extra)
    assert _run(hfq, requests) == ref
    assert len({o for o in ref if o}) > 3  # the outputs really differ between requests
    info = hfq.get_model_info()["generation"]
    assert info["requests"] == {"one_prefill": 0, "greedy_deduplicated": len(requests),
                                "lm_eval": 0}
    assert info["repeat_sampling"] is True


@pytest.mark.parametrize("batch_size", [1, 4])
def test_top_k_1_sampling_through_one_prefill_equals_plain_hf(tiny_llama_dir, greedy_kwargs,
                                                               batch_size):
    """Sampling with top_k=1 picks the argmax: the one-prefill path (cache copies, left padding,
    positions after the cache, stop sequences, k outputs per request in order) must give what
    lm-eval's path gives."""
    kwargs = [{**g, "do_sample": True, "temperature": 1.0, "top_k": 1} for g in greedy_kwargs]
    requests = _requests(PROMPTS, REPEATS, kwargs)
    ref = _run(HFLM(pretrained=str(tiny_llama_dir), device="cpu", batch_size=batch_size,
                    max_length=48), requests)
    hfq = HFQuantLM(pretrained=str(tiny_llama_dir), device="cpu", batch_size=batch_size,
                    max_length=48)
    assert _run(hfq, requests) == ref
    info = hfq.get_model_info()["generation"]
    assert info["requests"]["one_prefill"] == len(requests)
    assert info["fallback_reasons"] == []


def test_sampled_first_token_follows_the_model_distribution(tiny_llama_dir):
    """600 copies of one prompt, one token each, top_k=8: frequencies vs the model's softmax
    over its 8 most likely tokens (chi-square goodness of fit)."""
    from transformers import AutoModelForCausalLM

    prompt, k = "The doctor said that", 600
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    with torch.no_grad():
        logits = model(torch.tensor([tok.encode(prompt)])).logits[0, -1]
    top = torch.topk(logits, 8)
    expected: dict[str, float] = {}
    for token, p in zip(top.indices.tolist(), torch.softmax(top.values, -1).tolist()):
        text = tok.decode([token], skip_special_tokens=True)
        expected[text] = expected.get(text, 0.0) + p
    gen = {"until": [], "max_gen_toks": 1, "do_sample": True, "temperature": 1.0, "top_k": 8}
    request = Instance(request_type="generate_until", doc={}, idx=0, arguments=(prompt, gen))
    hfq = HFQuantLM(pretrained=str(tiny_llama_dir), device="cpu", batch_size=8)
    out = _run(hfq, [request] * k)
    assert hfq.get_model_info()["generation"]["requests"]["one_prefill"] == k
    assert set(out) <= set(expected) and len(expected) >= 4
    texts = sorted(expected)
    observed = [out.count(text) for text in texts]
    total = sum(expected.values())
    wanted = [expected[text] / total * k for text in texts]
    assert stats.chisquare(observed, wanted).pvalue > 1e-3


def test_unsupported_kwargs_fall_back_logged(tiny_llama_dir, caplog):
    gen = {"until": ["\n\n"], "max_gen_toks": 6, "do_sample": True, "temperature": 1.0, "top_k": 1,
           "no_repeat_ngram_size": 2}
    requests = _requests(PROMPTS[:3], [2, 3, 1], [gen])
    ref = _run(HFLM(pretrained=str(tiny_llama_dir), device="cpu", batch_size=2), requests)
    hfq = HFQuantLM(pretrained=str(tiny_llama_dir), device="cpu", batch_size=2)
    with caplog.at_level(logging.WARNING, logger="lm_eval_bias.models.repeat_sampling"):
        assert _run(hfq, requests) == ref
    assert "no_repeat_ngram_size" in caplog.text
    info = hfq.get_model_info()["generation"]
    assert info["requests"]["lm_eval"] == len(requests)
    assert info["fallback_reasons"] == [
        "generation kwargs no_repeat_ngram_size (handled by lm-eval's path only)"]


def test_repeat_sampling_false_and_unrepeated_requests_use_lm_eval(tiny_llama_dir, caplog):
    gen = {"until": ["\n\n"], "max_gen_toks": 4, "do_sample": True, "temperature": 1.0, "top_k": 1}
    requests = _requests(PROMPTS[:2], [2, 2], [gen])
    hfq = HFQuantLM(pretrained=str(tiny_llama_dir), device="cpu", batch_size=2,
                    repeat_sampling="false")
    _run(hfq, requests)
    assert hfq.get_model_info()["generation"] == {
        "repeat_sampling": False, "fallback_reasons": ["repeat_sampling=false"],
        "requests": {"one_prefill": 0, "greedy_deduplicated": 0, "lm_eval": 4}}
    hfq = HFQuantLM(pretrained=str(tiny_llama_dir), device="cpu", batch_size=2)
    _run(hfq, _requests(PROMPTS[:2], [1, 1], [gen]))
    assert hfq.get_model_info()["generation"]["fallback_reasons"] == ["no repeated request"]


def test_sliding_window_cache_falls_back_once(tiny_llama_dir, caplog):
    """A Mistral with a sliding window keeps a DynamicSlidingWindowLayer: lm-eval's path, logged
    once, same outputs."""
    from transformers import MistralConfig, MistralForCausalLM

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    torch.manual_seed(0)
    model = MistralForCausalLM(MistralConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, sliding_window=16,
        max_position_embeddings=512, pad_token_id=tok.pad_token_id)).eval()
    gen = {"until": ["\n\n"], "max_gen_toks": 5, "do_sample": True, "temperature": 1.0, "top_k": 1}
    requests = _requests(PROMPTS[:3], [2, 3, 2], [gen])
    ref = _run(HFLM(pretrained=model, tokenizer=str(tiny_llama_dir), batch_size=4), requests)
    hfq = HFQuantLM(pretrained=model, tokenizer=str(tiny_llama_dir), batch_size=4)
    with caplog.at_level(logging.WARNING, logger="lm_eval_bias.models.repeat_sampling"):
        assert _run(hfq, requests) == ref
        assert _run(hfq, requests[:4]) == ref[:4]
    assert caplog.text.count("not a plain DynamicCache") == 1, caplog.text
    assert hfq.get_model_info()["generation"]["requests"]["lm_eval"] == len(requests) + 4


def test_model_arg_parsing():
    assert parse_repeat_sampling("False") is False and parse_repeat_sampling(True) is True
    with pytest.raises(BiasEvalError, match="repeat_sampling=.*not a boolean"):
        parse_repeat_sampling("maybe")


def test_grouping_and_chunks():
    a, b = {"until": ["x"], "do_sample": True}, {"until": ["y"], "do_sample": True}
    groups = group_requests([("p", a), ("q", a), ("p", dict(a)), ("p", b), ("p", a)])
    assert [[(p.context, p.positions) for p in g] for g in groups.values()] == [
        [("p", [0, 2, 4]), ("q", [1])], [("p", [3])]]
    assert plan_chunks([5, 5, 5, 2, 25, 1], 12) == [[0, 1], [2, 3], [4], [5]]
    assert unsupported_sampling_kwargs({"do_sample": True, "num_beams": 2}) == \
        "num_beams > 1 (beam sampling)"
    assert unsupported_sampling_kwargs({"do_sample": True, "top_p": 0.9, "until": []}) is None


# ---------------------------------------------------------------------------------------------
# End to end: the results JSON records the path


@pytest.fixture(scope="module")
def cli_task_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("repeat_task")
    data = folder / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    (folder / "repeat_tiny_gen.yaml").write_text(textwrap.dedent(f"""
        task: repeat_tiny_gen
        dataset_path: json
        dataset_kwargs:
          data_files:
            test: {data.resolve()}
        test_split: test
        output_type: generate_until
        doc_to_text: "{{{{prompt}}}}"
        doc_to_target: ""
        repeats: 3
        generation_kwargs:
          until: ["\\n\\n"]
          do_sample: true
          temperature: 1.0
          top_p: 0.9
          max_gen_toks: 8
        metric_list:
          - metric: bypass
        metadata:
          version: 0
    """))
    return folder


def test_lm_eval_cli_records_the_generation_path(tiny_llama_dir, cli_task_dir, tmp_path):
    proc = run_cli(["lm_eval", "run", "--model", "hf-quant", "--model_args",
                    f"pretrained={tiny_llama_dir}", "--device", "cpu", "--tasks",
                    "repeat_tiny_gen", "--include_path", str(cli_task_dir), "--batch_size", "4",
                    "--output_path", str(tmp_path), "--log_samples"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(next(tmp_path.rglob("results_*.json")).read_text())
    assert results["config"]["generation"]["requests"] == {
        "one_prefill": 3 * len(PROMPTS), "greedy_deduplicated": 0, "lm_eval": 0}
    samples = next(tmp_path.rglob("samples_repeat_tiny_gen_*.jsonl")).read_text().splitlines()
    resps = [json.loads(line)["resps"] for line in samples]  # [[k continuations]] per doc
    assert [len(r[0]) for r in resps] == [3] * len(PROMPTS)
