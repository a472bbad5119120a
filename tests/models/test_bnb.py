"""bitsandbytes (bnb8, nf4, fp4), quantized while loading, on the tiny random-init Llama, scored
through lm-eval's HFLM path (`HFQuantLM`, device="cpu")."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import math

import pytest
import torch
from lm_eval.models.huggingface import HFLM

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.models.hf_quant import HFQuantLM
from lm_eval_bias.models.quant import QUANTIZERS
from lm_eval_bias.models.quant.bnb import NF4Quantizer
from tests.models._missing import error_without
from tests.models._scoring import loglikelihoods, mean_abs_diff

pytest.importorskip("bitsandbytes")


@pytest.fixture(scope="module")
def loaded(tiny_llama_dir):
    """One HFQuantLM per method (each load is well under a second)."""
    return {method: HFQuantLM(pretrained=str(tiny_llama_dir), device="cpu", batch_size=2,
                              quant=method)
            for method in ("bnb8", "nf4", "fp4")}


@pytest.mark.parametrize("method,bits,module_class", [
    ("bnb8", 8, "Linear8bitLt"), ("nf4", 4, "Linear4bit"), ("fp4", 4, "Linear4bit")])
def test_loads_quantized_scores_and_records(loaded, reference, method, bits, module_class):
    lm = loaded[method]
    scores = loglikelihoods(lm)
    assert all(math.isfinite(s) for s in scores)
    assert scores != reference
    classes = {type(m).__name__ for m in lm.model.modules()}
    assert module_class in classes
    record = lm.get_model_info()["quantization"]
    assert record["method"] == method and record["library"] == "bitsandbytes"
    assert record["library_version"] == importlib.metadata.version("bitsandbytes")
    assert record["bits"] == bits and record["simulated"] is False
    assert record["stage"] == "load"
    # 2 layers x 7 linears quantized; lm_head kept in full precision (transformers' rule)
    assert record["n_modules_quantized"] == 14
    assert record["modules_skipped"] == ["lm_head"]
    assert record["model_bytes_after"] < record["model_bytes_before"]
    assert "kl_fixed_text" not in record and "second load" in record["kl_unavailable"]
    assert record["load_seconds"] > 0 and record["quantize_seconds"] > 0


def test_model_bytes_by_hand(loaded):
    """Unquantized (fp32): 73728 quantized weights plus the rest. int8: 1 byte per weight plus
    one fp32 row scale per output row; nf4: half a byte per weight plus one fp32 absmax per
    block of 64."""
    dense = loaded["bnb8"].get_model_info()["quantization"]["model_bytes_before"]
    total = sum(p.numel() for p in HFLM(pretrained=loaded["bnb8"].pretrained, device="cpu")
                .model.parameters()) * 4
    assert dense == total
    rows = 2 * (64 + 32 + 32 + 64 + 128 + 128 + 64)
    int8 = loaded["bnb8"].get_model_info()["quantization"]["model_bytes_after"]
    assert int8 == total - 73728 * 4 + 73728 + rows * 4
    nf4 = loaded["nf4"].get_model_info()["quantization"]["model_bytes_after"]
    assert nf4 == total - 73728 * 4 + 73728 // 2 + (73728 // 64) * 4


def test_error_grows_as_bits_shrink(loaded, reference):
    err8 = mean_abs_diff(loglikelihoods(loaded["bnb8"]), reference)
    err4 = mean_abs_diff(loglikelihoods(loaded["nf4"]), reference)
    assert 0 < err8 < err4, (err8, err4)


def test_4bit_options_reach_the_config_and_the_record(tiny_llama_dir):
    lm = HFQuantLM.create_from_arg_string(
        f"pretrained={tiny_llama_dir},quant=nf4,bnb_4bit_compute_dtype=bfloat16,"
        f"double_quant=true,skip=down_proj,device=cpu")
    record = lm.get_model_info()["quantization"]
    assert record["bnb_4bit_compute_dtype"] == "bfloat16" and record["double_quant"] is True
    assert record["n_modules_quantized"] == 12
    assert record["modules_skipped"] == ["model.layers.0.mlp.down_proj",
                                         "model.layers.1.mlp.down_proj", "lm_head"]
    config = lm.model.config.quantization_config
    assert config.bnb_4bit_use_double_quant and config.bnb_4bit_compute_dtype == torch.bfloat16
    assert all(math.isfinite(s) for s in loglikelihoods(lm))


@pytest.mark.parametrize("method,options,message", [
    ("nf4", {"bnb_4bit_compute_dtype": "int8"}, "bnb_4bit_compute_dtype must be one of"),
    ("fp4", {"double_quant": "maybe"}, "double_quant must be true or false"),
    ("bnb8", {"threshold": "high"}, "threshold must be a number"),
    ("bnb8", {"double_quant": True}, "quant=bnb8 does not take double_quant"),
    ("nf4", {"bits": 4}, "quant=nf4 does not take bits=4"),
])
def test_bad_options_fail_before_loading(method, options, message):
    with pytest.raises(BiasEvalError, match=message) as err:
        HFQuantLM(pretrained="/nonexistent/checkpoint", device="cpu", quant=method, **options)
    assert "\n" not in str(err.value)


def test_missing_bitsandbytes_is_a_one_line_error_naming_the_install(monkeypatch):
    message = error_without(monkeypatch, "bitsandbytes", pretrained="/nonexistent/checkpoint",
                            quant="nf4")
    assert message.startswith("quant=nf4 needs bitsandbytes, which is not installed; run: pip "
                              "install \"lm-eval-bias[bnb]\"")
    assert "\n" not in message


def test_a_built_model_cannot_be_quantized_at_load_time(tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    with pytest.raises(BiasEvalError, match="quant=nf4 quantizes while loading"):
        HFQuantLM(pretrained=model, tokenizer=str(tiny_llama_dir), quant="nf4")


def test_registered_with_their_options():
    assert {"bnb8", "nf4", "fp4"} <= set(QUANTIZERS.names())
    assert QUANTIZERS.get("nf4") is NF4Quantizer and NF4Quantizer.stage == "load"
    assert {"bnb_4bit_compute_dtype", "double_quant", "threshold"} <= QUANTIZERS.option_names()
