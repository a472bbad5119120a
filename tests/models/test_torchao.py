"""torchao (torchao_int8, torchao_w8a8, torchao_intx) after loading, on the tiny random-init
Llama, scored through lm-eval's HFLM path (`HFQuantLM`, device="cpu")."""

from __future__ import annotations

import copy
import importlib.metadata
import importlib.util
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.models.hf_quant import HFQuantLM
from lm_eval_bias.models.quant import QUANTIZERS
from lm_eval_bias.models.quant._inspect import census
from lm_eval_bias.models.quant.torchao import TorchAoIntxQuantizer
from tests.models._missing import error_without
from tests.models._scoring import loglikelihoods, mean_abs_diff

pytest.importorskip("torchao")


def quantized_lm(tiny_llama_dir, quant, **options):
    return HFQuantLM(pretrained=str(tiny_llama_dir), device="cpu", batch_size=2, quant=quant,
                     **options)


@pytest.mark.parametrize("quant,options,weight_class,act_bits", [
    ("torchao_int8", {}, "Int8Tensor", None),
    ("torchao_w8a8", {}, "Int8Tensor", 8),
    ("torchao_intx", {"bits": 4, "group_size": 32}, "IntxUnpackedToInt8Tensor", None),
])
def test_quantizes_scores_and_records(tiny_llama_dir, reference, quant, options, weight_class,
                                      act_bits):
    lm = quantized_lm(tiny_llama_dir, quant, **options)
    scores = loglikelihoods(lm)
    assert all(math.isfinite(s) for s in scores) and scores != reference
    assert type(lm.model.model.layers[1].mlp.down_proj.weight).__name__ == weight_class
    assert type(lm.model.lm_head.weight) is torch.nn.Parameter  # skipped by default
    record = lm.get_model_info()["quantization"]
    assert record["method"] == quant and record["library"] == "torchao"
    assert record["library_version"] == importlib.metadata.version("torchao")
    assert record["n_modules_quantized"] == 14 and record["modules_skipped"] == ["lm_head"]
    assert record.get("act_bits") == act_bits
    assert record["stage"] == "post_load" and record["simulated"] is False
    assert record["kl_text_id"] == "fixed-text-v1" and record["kl_fixed_text"] > 0
    # int8 codes (1 byte) + fp32 scale and int8 zero point per row or group, vs 4 bytes fp32
    assert record["model_bytes_after"] < 0.65 * record["model_bytes_before"]


def test_intx_error_grows_as_bits_shrink(tiny_llama_dir, reference):
    kls, diffs = [], []
    for bits in (8, 4, 2, 1):
        lm = quantized_lm(tiny_llama_dir, "torchao_intx", bits=bits, group_size=32)
        kls.append(lm.get_model_info()["quantization"]["kl_fixed_text"])
        diffs.append(mean_abs_diff(loglikelihoods(lm), reference))
    assert kls == sorted(kls) and kls[0] > 0, kls
    assert diffs[0] < diffs[1] < diffs[2], diffs


def test_intx_options_as_lm_eval_parses_them(tiny_llama_dir):
    lm = HFQuantLM.create_from_arg_string(
        f"pretrained={tiny_llama_dir},quant=torchao_intx,bits=3,group_size=-1,sym=false,"
        f"skip=lm_head|down_proj,device=cpu")
    record = lm.get_model_info()["quantization"]
    assert (record["bits"], record["group_size"], record["sym"]) == (3, -1, False)
    assert record["n_modules_quantized"] == 12 and record["n_modules_skipped"] == 3
    codes = lm.model.model.layers[0].self_attn.q_proj.weight.qdata
    assert codes.min() >= -4 and codes.max() <= 3  # 3-bit range held in int8


@pytest.mark.parametrize("options,message", [
    ({}, "quant=torchao_intx needs bits"),
    ({"bits": 9}, "bits must be from 1 to 8"),
    ({"bits": 4, "group_size": 0}, "group_size must be a positive number"),
    ({"bits": 4, "sym": "perhaps"}, "sym must be true or false"),
])
def test_bad_options_fail_before_loading(options, message):
    with pytest.raises(BiasEvalError, match=message):
        HFQuantLM(pretrained="/nonexistent/checkpoint", device="cpu", quant="torchao_intx",
                  **options)


def test_group_size_not_dividing_a_layer_is_refused(tiny_llama_dir):
    with pytest.raises(BiasEvalError, match="quant=torchao_intx: group_size=128 does not divide "
                                            "in_features=64 .*group_size=64"):
        quantized_lm(tiny_llama_dir, "torchao_intx", bits=4)


def test_gpt2_conv1d_layers_are_refused_not_silently_skipped():
    model = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=1,
                                       n_head=2))
    with pytest.raises(BiasEvalError, match="4 GPT-2-style Conv1D layers .*silently"):
        QUANTIZERS.build("torchao_int8", {}).quantize(model)


def test_a_silent_no_op_of_the_library_is_an_error(tiny_llama_dir, monkeypatch):
    import torchao.quantization

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    monkeypatch.setattr(torchao.quantization, "quantize_", lambda *args, **kwargs: None)
    with pytest.raises(BiasEvalError, match="14 of 14 selected layers .* still hold "
                                            "full-precision weights"):
        TorchAoIntxQuantizer(bits=4, group_size=32).quantize(copy.deepcopy(model))
    assert census(model).quantized == []


def test_missing_torchao_is_a_one_line_error_naming_the_install(monkeypatch):
    message = error_without(monkeypatch, "torchao", pretrained="/nonexistent/checkpoint",
                            quant="torchao_int8")
    assert message.startswith("quant=torchao_int8 needs torchao, which is not installed; "
                              "run: pip install \"lm-eval-bias[torchao]\"")
