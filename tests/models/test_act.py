"""rtn_act: simulated weight + per-token activation quantization (W8A8, W4A8) and SmoothQuant, on
hand-computed tensors and the tiny random-init Llama through lm-eval's HFLM path."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from lm_eval.models.huggingface import HFLM
from torch.testing import assert_close
from transformers import AutoModelForCausalLM, AutoTokenizer

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.models.hf_quant import HFQuantLM
from lm_eval_bias.models.quant._inspect import fixed_text_logprobs, mean_kl
from lm_eval_bias.models.quant.act import (
    CALIBRATION_TEXT_ID,
    CALIBRATION_TEXTS,
    RTNActQuantizer,
    count_activation_quantized,
    fake_quantize_per_token,
    smooth_,
)
from lm_eval_bias.models.quant.rtn import quantize_dequantize
from tests.models._scoring import loglikelihoods


@pytest.mark.parametrize("x,bits,expected", [
    # qmax = 1, s = max|x| = 1: round([-1, .5, .26, 0]) = [-1, 0 (half to even), 0, 0]
    ([[-1.0, 0.5, 0.26, 0.0]], 2, [[-1.0, 0.0, 0.0, 0.0]]),
    # qmax = 7, s = 1/7: round([-7, 3.85, 1.82, 0]) = [-7, 4, 2, 0]
    ([[-1.0, 0.55, 0.26, 0.0]], 4, [[-1.0, 4 / 7, 2 / 7, 0.0]]),
    # per token: the second row has its own scale (s = 2/127) and is exact; a zero row stays 0
    ([[0.0, 0.0], [2.0, -2.0]], 8, [[0.0, 0.0], [2.0, -2.0]]),
])
def test_fake_quantize_per_token_by_hand(x, bits, expected):
    assert_close(fake_quantize_per_token(torch.tensor(x), bits), torch.tensor(expected),
                 rtol=0, atol=1e-6)


def test_at_most_two_to_the_bits_levels_per_token():
    x = torch.randn(2, 5, 256, generator=torch.Generator().manual_seed(0))
    out = fake_quantize_per_token(x, 4)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert all(len(torch.unique(token)) <= 15 for token in out.reshape(-1, 256))


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(tiny_llama_dir)


def test_w8a8_through_hflm_records_and_hooks(tiny_llama_dir):
    reference = loglikelihoods(HFLM(pretrained=str(tiny_llama_dir), device="cpu", batch_size=2))
    lm = HFQuantLM.create_from_arg_string(
        f"pretrained={tiny_llama_dir},quant=rtn_act,bits=8,act_bits=8,group_size=-1,sym=true,"
        f"device=cpu,batch_size=2")
    scores = loglikelihoods(lm)
    assert all(math.isfinite(s) for s in scores) and scores != reference
    record = lm.get_model_info()["quantization"]
    assert record["method"] == "rtn_act" and (record["bits"], record["act_bits"]) == (8, 8)
    assert record["n_modules_quantized"] == 14 and record["modules_skipped"] == ["lm_head"]
    assert record["simulated"] is True and record["kl_fixed_text"] > 0
    assert "smooth_alpha" not in record and "calibration_text" not in record
    assert count_activation_quantized(lm.model) == 14


def test_activation_error_grows_as_act_bits_shrink(tiny):
    model, tokenizer = tiny
    reference = fixed_text_logprobs(model, tokenizer)
    kls = []
    for act_bits in (16, 8, 6, 4, 3):
        quantized = copy.deepcopy(model)
        RTNActQuantizer(bits=8, act_bits=act_bits, group_size=-1, sym=True).quantize(quantized)
        kls.append(mean_kl(reference, fixed_text_logprobs(quantized, tokenizer)))
    assert kls == sorted(kls) and kls[0] > 0, kls


def test_weights_are_exactly_rtn(tiny):
    model, _ = tiny
    quantized = copy.deepcopy(model)
    RTNActQuantizer(bits=4, act_bits=8, group_size=32).quantize(quantized)
    name = "model.layers.0.mlp.gate_proj"
    assert torch.equal(quantized.get_submodule(name).weight,
                       quantize_dequantize(model.get_submodule(name).weight, 4, 32, False))


def _with_outlier_channel(model, factor=40.0):
    """The same function with one activation outlier channel per layer: input_layernorm's
    channel 3 is multiplied by `factor` and q/k/v's input column 3 divided by it."""
    model = copy.deepcopy(model)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.input_layernorm.weight[3] *= factor
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.weight[:, 3] /= factor
    return model


def test_smoothing_keeps_the_full_precision_function(tiny):
    model, tokenizer = tiny
    outlier = _with_outlier_channel(model)
    ids = tokenizer(CALIBRATION_TEXTS[CALIBRATION_TEXT_ID], return_tensors="pt").input_ids
    with torch.no_grad():
        before = outlier(ids).logits
        selected = {n for n, m in outlier.named_modules()
                    if isinstance(m, torch.nn.Linear) and n != "lm_head"}
        assert smooth_(outlier, selected, ids, 0.5) == 12  # 2 layers x (q, k, v, gate, up, down)
        assert_close(outlier(ids).logits, before, rtol=1e-4, atol=1e-4)
        # the outlier has moved into the weights: channel 3 of q's input is no longer 40x
        assert outlier.model.layers[0].input_layernorm.weight[3] < 40 * 0.5


def test_smoothquant_reduces_w8a8_error_with_activation_outliers(tiny):
    model, tokenizer = tiny
    outlier = _with_outlier_channel(model)
    reference = fixed_text_logprobs(outlier, tokenizer)
    kl = {}
    for alpha in (None, 0.5):
        quantized = copy.deepcopy(outlier)
        quantizer = RTNActQuantizer(bits=8, act_bits=6, group_size=-1, sym=True,
                                    smooth_alpha=alpha)
        quantizer.bind_tokenizer(tokenizer)
        report = quantizer.quantize(quantized)
        kl[alpha] = mean_kl(reference, fixed_text_logprobs(quantized, tokenizer))
    assert report.settings["calibration_text"] == "calib-v1"
    assert report.settings["n_modules_smoothed"] == 12
    assert kl[0.5] < kl[None] / 2, kl


@pytest.mark.parametrize("options,message", [
    ({"bits": 8}, "quant=rtn_act needs act_bits"),
    ({"act_bits": 8}, "quant=rtn_act needs bits"),
    ({"bits": 8, "act_bits": 1}, "act_bits must be from 2 to 16"),
    ({"bits": 8, "act_bits": 8, "smooth_alpha": 1.5}, "smooth_alpha must be a number from 0"),
    ({"bits": 8, "act_bits": 8, "smooth_alpha": "strong"}, "smooth_alpha must be a number"),
])
def test_bad_options_fail_before_loading(options, message):
    with pytest.raises(BiasEvalError, match=message):
        HFQuantLM(pretrained="/nonexistent/checkpoint", device="cpu", quant="rtn_act", **options)


def test_rtn_does_not_take_act_bits():
    with pytest.raises(BiasEvalError, match="quant=rtn does not take act_bits=8 .*pick a method"):
        HFQuantLM(pretrained="/nonexistent/checkpoint", device="cpu", quant="rtn", bits=8,
                  act_bits=8)


def test_smoothing_needs_the_tokenizer(tiny):
    model, _ = tiny
    with pytest.raises(BiasEvalError, match="smooth_alpha needs the tokenizer"):
        RTNActQuantizer(bits=8, act_bits=8, group_size=-1, smooth_alpha=0.5).quantize(
            copy.deepcopy(model))
