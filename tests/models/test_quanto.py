"""optimum-quanto (int8, float8; slow: int4, int2, whose first forward pass compiles a C++
extension, about 90 s once per machine) on the tiny random-init Llama, scored through lm-eval's
HFLM path (`HFQuantLM`, device="cpu")."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import math

import pytest
from transformers import GPT2Config, GPT2LMHeadModel

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.models.hf_quant import HFQuantLM
from lm_eval_bias.models.quant import QUANTIZERS
from tests.models._missing import error_without
from tests.models._scoring import loglikelihoods, mean_abs_diff

pytest.importorskip("optimum.quanto")


def quanto_lm(model_dir, weights, **options):
    return HFQuantLM(pretrained=str(model_dir), device="cpu", batch_size=2, quant="quanto",
                     weights=weights, **options)


@pytest.mark.parametrize("weights,bits", [("int8", 8), ("float8", 8)])
def test_quantizes_scores_and_records(tiny_llama_dir, reference, weights, bits):
    lm = quanto_lm(tiny_llama_dir, weights)
    scores = loglikelihoods(lm)
    assert all(math.isfinite(s) for s in scores) and scores != reference
    layer = lm.model.model.layers[0].mlp.up_proj
    assert type(layer).__name__ == "QLinear"
    assert type(layer.weight).__name__ == "WeightQBytesTensor"
    assert type(lm.model.lm_head).__name__ == "Linear"
    record = lm.get_model_info()["quantization"]
    assert record["method"] == "quanto" and record["library"] == "optimum-quanto"
    assert record["library_version"] == importlib.metadata.version("optimum-quanto")
    assert (record["bits"], record["weights"], record["group_size"]) == (bits, weights, -1)
    assert record["n_modules_quantized"] == 14 and record["modules_skipped"] == ["lm_head"]
    assert record["kl_fixed_text"] > 0 and record["stage"] == "post_load"
    assert record["model_bytes_after"] < 0.65 * record["model_bytes_before"]


def test_skip_keeps_layers_in_full_precision(tiny_llama_dir):
    lm = HFQuantLM.create_from_arg_string(
        f"pretrained={tiny_llama_dir},quant=quanto,weights=int8,skip=lm_head|layers.1,device=cpu")
    record = lm.get_model_info()["quantization"]
    assert record["n_modules_quantized"] == 7 and record["n_modules_skipped"] == 8
    assert type(lm.model.model.layers[1].mlp.up_proj).__name__ == "Linear"


@pytest.mark.parametrize("options,message", [
    ({}, "quant=quanto needs weights"),
    ({"weights": "int3"}, "weights must be one of int8, int4, int2, float8"),
    ({"weights": "int8", "bits": 8}, "quant=quanto does not take bits=8"),
])
def test_bad_options_fail_before_loading(options, message):
    with pytest.raises(BiasEvalError, match=message):
        HFQuantLM(pretrained="/nonexistent/checkpoint", device="cpu", quant="quanto", **options)


def test_gpt2_conv1d_layers_are_refused_not_silently_skipped():
    model = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=1,
                                       n_head=2))
    with pytest.raises(BiasEvalError, match="Conv1D layers .*silently"):
        QUANTIZERS.build("quanto", {"weights": "int8"}).quantize(model)


def test_missing_quanto_is_a_one_line_error_naming_the_install(monkeypatch):
    message = error_without(monkeypatch, "optimum.quanto",
                            pretrained="/nonexistent/checkpoint", quant="quanto", weights="int8")
    assert message.startswith("quant=quanto needs optimum.quanto, which is not installed; "
                              "run: pip install \"lm-eval-bias[quanto]\"")


@pytest.mark.slow
def test_error_grows_as_bits_shrink_int8_int4_int2(tmp_path_factory, reference, tiny_llama_dir):
    """int4 and int2 compile quanto's CPU extension on first use (about 90 s once)."""
    kls, diffs = [], []
    for weights in ("int8", "int4", "int2"):
        lm = quanto_lm(tiny_llama_dir, weights)
        assert lm.get_model_info()["quantization"]["n_modules_quantized"] == 14
        kls.append(lm.get_model_info()["quantization"]["kl_fixed_text"])
        diffs.append(mean_abs_diff(loglikelihoods(lm), reference))
    assert kls == sorted(kls) and kls[0] > 0, kls
    assert diffs == sorted(diffs), diffs


@pytest.mark.slow
def test_int4_groups_of_128_on_a_wider_model(tmp_path_factory):
    from conftest import build_tiny_llama

    wide = build_tiny_llama(tmp_path_factory.mktemp("wide-llama"), hidden_size=256,
                            intermediate_size=512, num_layers=1)
    lm = quanto_lm(wide, "int4")
    record = lm.get_model_info()["quantization"]
    assert record["group_size"] == 128 and record["n_modules_quantized"] == 7
    assert type(lm.model.model.layers[0].mlp.down_proj.weight).__name__ == "WeightQBitsTensor"
    assert all(math.isfinite(s) for s in loglikelihoods(lm))
