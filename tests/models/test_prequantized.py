"""Checkpoints saved already quantized (written here with bitsandbytes and torchao themselves),
loaded by `hf-quant` without quant= and recorded as `prequantized` with their format."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import math
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig, TorchAoConfig

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.models.hf_quant import HFQuantLM
from lm_eval_bias.models.quant.base import describe_quantization_config
from tests.models._scoring import loglikelihoods

pytest.importorskip("bitsandbytes")
pytest.importorskip("torchao")


def _save_quantized(source: Path, out: Path, config) -> Path:
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32,
                                                 quantization_config=config,
                                                 device_map={"": "cpu"})
    model.save_pretrained(out)
    for tokenizer_file in source.glob("*token*"):
        shutil.copy(tokenizer_file, out)
    return out


@pytest.fixture(scope="module")
def checkpoints(tiny_llama_dir, tmp_path_factory) -> dict[str, Path]:
    from torchao.quantization import Int8WeightOnlyConfig

    root = tmp_path_factory.mktemp("prequantized")
    return {
        "nf4": _save_quantized(tiny_llama_dir, root / "nf4", BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)),
        "bnb8": _save_quantized(tiny_llama_dir, root / "bnb8",
                                BitsAndBytesConfig(load_in_8bit=True)),
        "torchao_int8": _save_quantized(tiny_llama_dir, root / "torchao",
                                        TorchAoConfig(Int8WeightOnlyConfig())),
    }


@pytest.mark.parametrize("name,fmt,library,bits", [
    ("nf4", "bitsandbytes nf4", "bitsandbytes", 4),
    ("bnb8", "bitsandbytes int8", "bitsandbytes", 8),
    ("torchao_int8", "torchao Int8WeightOnlyConfig", "torchao", None),
])
def test_loaded_as_saved_by_default_and_recorded(tiny_llama_dir, checkpoints, name, fmt,
                                                 library, bits):
    lm = HFQuantLM(pretrained=str(checkpoints[name]), device="cpu", batch_size=2)
    record = lm.get_model_info()["quantization"]
    assert record["method"] == "prequantized" and record["checkpoint_format"] == fmt
    assert record["library"] == library
    assert record["library_version"] == importlib.metadata.version(library)
    assert record.get("bits") == bits
    assert record["n_modules_quantized"] == 14 and record["modules_skipped"] == ["lm_head"]
    assert record["stage"] == "checkpoint" and "kl_fixed_text" not in record
    assert record["model_bytes_after"] < record["model_bytes_before"]
    # the same numbers as quantizing the original checkpoint with that library here
    fresh = HFQuantLM(pretrained=str(tiny_llama_dir), device="cpu", batch_size=2, quant=name)
    assert loglikelihoods(lm) == loglikelihoods(fresh)
    assert all(math.isfinite(s) for s in loglikelihoods(lm))


def test_quant_none_on_a_quantized_checkpoint_is_prequantized_too(checkpoints):
    lm = HFQuantLM.create_from_arg_string(f"pretrained={checkpoints['nf4']},quant=none,"
                                          f"device=cpu")
    assert lm.get_model_info()["quantization"]["method"] == "prequantized"


def test_the_same_bitsandbytes_format_loads_as_saved(checkpoints):
    lm = HFQuantLM(pretrained=str(checkpoints["nf4"]), device="cpu", quant="nf4")
    record = lm.get_model_info()["quantization"]
    assert record["method"] == "nf4" and record["stage"] == "checkpoint"
    assert record["checkpoint_format"] == "bitsandbytes nf4"


@pytest.mark.parametrize("name,quant,options", [
    ("nf4", "bnb8", {}),
    ("nf4", "rtn", {"bits": 4}),
    ("bnb8", "torchao_int8", {}),
    ("torchao_int8", "fp4", {}),
    ("torchao_int8", "quanto", {"weights": "int8"}),
])
def test_another_method_on_a_quantized_checkpoint_is_a_one_line_error(checkpoints, name, quant,
                                                                      options):
    found = describe_quantization_config(
        AutoModelForCausalLM.from_pretrained(checkpoints[name], device_map={"": "cpu"})
        .config.quantization_config)
    with pytest.raises(BiasEvalError) as err:
        HFQuantLM(pretrained=str(checkpoints[name]), device="cpu", quant=quant, **options)
    message = str(err.value)
    assert message == (f"quant={quant}: the checkpoint is already quantized ({found}); drop "
                       f"quant= to evaluate it as it is (recorded as quant=prequantized), or "
                       f"start from an unquantized checkpoint")


def test_prequantized_on_a_plain_checkpoint_is_an_error(tiny_llama_dir):
    with pytest.raises(BiasEvalError, match="quant=prequantized: the checkpoint's config has no "
                                            "quantization_config"):
        HFQuantLM(pretrained=str(tiny_llama_dir), device="cpu", quant="prequantized")


def test_missing_library_of_the_format_names_the_install(checkpoints, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    with pytest.raises(BiasEvalError) as err:
        HFQuantLM(pretrained=str(checkpoints["nf4"]), device="cpu")
    assert str(err.value) == ('quant=prequantized: the checkpoint is quantized as bitsandbytes '
                              'nf4, which needs bitsandbytes, which is not installed; run: pip '
                              'install "lm-eval-bias[bnb]"')


def test_a_built_quantized_model_passed_as_pretrained(tiny_llama_dir, checkpoints):
    model = AutoModelForCausalLM.from_pretrained(checkpoints["bnb8"], device_map={"": "cpu"})
    lm = HFQuantLM(pretrained=model, tokenizer=str(tiny_llama_dir), batch_size=2)
    record = lm.get_model_info()["quantization"]
    assert record["method"] == "prequantized"
    assert record["checkpoint_format"] == "bitsandbytes int8"
