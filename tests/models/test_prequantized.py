"""Checkpoints saved already quantized (written here with bitsandbytes, torchao and
compressed-tensors themselves), loaded by `hf-quant` without quant= and recorded as
`prequantized` with their format."""

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
from tests.models._missing import error_without
from tests.models._scoring import loglikelihoods


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
    # skipped here rather than for the whole file, so the compressed-tensors tests below
    # depend on compressed-tensors alone
    pytest.importorskip("bitsandbytes")
    pytest.importorskip("torchao")
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
    message = error_without(monkeypatch, "bitsandbytes", pretrained=str(checkpoints["nf4"]))
    assert message == ('quant=prequantized: the checkpoint is quantized as bitsandbytes '
                       'nf4, which needs bitsandbytes, which is not installed; run: pip '
                       'install "lm-eval-bias[bnb]"')


def test_a_built_quantized_model_passed_as_pretrained(tiny_llama_dir, checkpoints):
    model = AutoModelForCausalLM.from_pretrained(checkpoints["bnb8"], device_map={"": "cpu"})
    lm = HFQuantLM(pretrained=model, tokenizer=str(tiny_llama_dir), batch_size=2)
    record = lm.get_model_info()["quantization"]
    assert record["method"] == "prequantized"
    assert record["checkpoint_format"] == "bitsandbytes int8"


# --- compressed-tensors (the format llmcompressor writes), built with compressed_tensors only ---

CT_GROUP = 32


def _write_compressed_tensors(source: Path, out: Path, weights, input_activations=None) -> Path:
    """`source` as a compressed-tensors checkpoint: the scheme attached by
    apply_quantization_config, min-max weight scales written into it, compressed by
    ModelCompressor (which picks the format: pack-quantized for int4 weights only, int-quantized
    when activations are quantized too) and saved with its quantization_config, as llmcompressor
    saves one."""
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import (
        QuantizationConfig,
        QuantizationScheme,
        QuantizationStatus,
        apply_quantization_config,
    )
    from compressed_tensors.quantization.utils import (
        calculate_qparams,
        compute_dynamic_scales_and_zp,
    )

    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    scheme = QuantizationScheme(targets=["Linear"], weights=weights,
                                input_activations=input_activations)
    apply_quantization_config(model, QuantizationConfig(
        config_groups={"group_0": scheme}, ignore=["lm_head"],
        quantization_status=QuantizationStatus.INITIALIZED))
    for module in model.modules():
        if getattr(module, "quantization_scheme", None) is None:
            continue
        # the min-max weight calibration: initialization leaves placeholder scales
        w = module.weight.data
        if weights.strategy == "channel":  # one (min, max) per output row
            scale, zero_point = calculate_qparams(w.amin(dim=1, keepdim=True),
                                                  w.amax(dim=1, keepdim=True), weights)
        else:
            scale, zero_point = compute_dynamic_scales_and_zp(w, weights, module)
        module.weight_scale.data.copy_(scale)
        module.weight_zero_point.data.copy_(zero_point)
        module.quantization_status = QuantizationStatus.FROZEN
    compressor = ModelCompressor.from_pretrained_model(model)
    compressor.compress_model(model)
    model.save_pretrained(out)
    compressor.update_config(out)
    for tokenizer_file in source.glob("*token*"):
        shutil.copy(tokenizer_file, out)
    return out


@pytest.fixture(scope="module")
def compressed_tensors_w4(tiny_llama_dir, tmp_path_factory) -> Path:
    """The tiny Llama as an int4 weight-only, group-32 compressed-tensors checkpoint (W4A16)."""
    pytest.importorskip("compressed_tensors")
    from compressed_tensors.quantization import QuantizationArgs

    weights = QuantizationArgs(num_bits=4, type="int", strategy="group", group_size=CT_GROUP,
                               symmetric=True, dynamic=False)
    return _write_compressed_tensors(
        tiny_llama_dir, tmp_path_factory.mktemp("prequantized-ct") / "w4a16", weights)


@pytest.fixture(scope="module")
def compressed_tensors_w8(tiny_llama_dir, tmp_path_factory) -> dict[str, Path]:
    """int8 weights, one scale per output row: weight-only (W8A16) and with int8 activations
    quantized per token at run time (W8A8, the format of llmcompressor's SmoothQuant recipes;
    smoothing changes the weights' values, not the format)."""
    pytest.importorskip("compressed_tensors")
    from compressed_tensors.quantization import QuantizationArgs

    weights = QuantizationArgs(num_bits=8, type="int", strategy="channel", symmetric=True,
                               dynamic=False)
    tokens = QuantizationArgs(num_bits=8, type="int", strategy="token", symmetric=True,
                              dynamic=True)
    root = tmp_path_factory.mktemp("prequantized-ct8")
    return {"w8a16": _write_compressed_tensors(tiny_llama_dir, root / "w8a16", weights),
            "w8a8": _write_compressed_tensors(tiny_llama_dir, root / "w8a8", weights, tokens)}


def _int_rtn(weight: torch.Tensor, bits: int, group: int) -> torch.Tensor:
    """Symmetric round-to-nearest to `bits`-bit integers per group of `group` inputs, written out
    by hand: scale = max|w| / ((2^bits - 1) / 2), codes clamped to [-2^(bits-1), 2^(bits-1) - 1]
    (int4: max|w| / 7.5, range [-8, 7])."""
    groups = weight.unflatten(-1, (-1, group))
    half_steps = (2 ** bits - 1) / 2
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    scale = groups.abs().amax(dim=-1, keepdim=True) / half_steps
    return (torch.clamp(torch.round(groups / scale), low, high) * scale).flatten(-2)


def test_compressed_tensors_checkpoint_loads_as_saved(tiny_llama_dir, compressed_tensors_w4,
                                                      reference):
    import json

    from compressed_tensors.quantization import QuantizationStatus
    from safetensors.torch import load_file

    saved = json.loads((compressed_tensors_w4 / "config.json").read_text())
    assert saved["quantization_config"]["format"] == "pack-quantized"

    lm = HFQuantLM(pretrained=str(compressed_tensors_w4), device="cpu", batch_size=2)
    record = lm.get_model_info()["quantization"]
    assert record["method"] == "prequantized" and record["stage"] == "checkpoint"
    assert record["checkpoint_format"] == "compressed-tensors pack-quantized"
    assert record["library"] == "compressed-tensors"
    assert record["library_version"] == importlib.metadata.version("compressed-tensors")
    assert record["n_modules_quantized"] == 14 and record["modules_skipped"] == ["lm_head"]
    assert (record["bits"], record["group_size"]) == (4, 32)  # read from the scheme group
    assert record["model_bytes_after"] < record["model_bytes_before"]

    # transformers built compressed-tensors layers holding the packed int4 weights, not a
    # dense copy: a scheme on each Linear but lm_head, and no float `weight` until first use
    linears = {name: m for name, m in lm.model.named_modules()
               if isinstance(m, torch.nn.Linear)}
    down = linears["model.layers.0.mlp.down_proj"]
    assert down.quantization_scheme.weights.num_bits == 4
    assert down.quantization_scheme.weights.group_size == CT_GROUP
    assert down.quantization_status == QuantizationStatus.COMPRESSED
    params = dict(down.named_parameters())
    assert "weight" not in params and params["weight_packed"].dtype == torch.int32
    assert params["weight_scale"].shape == (64, 128 // CT_GROUP)
    quantized = [n for n, m in linears.items() if getattr(m, "quantization_scheme", None)]
    assert len(quantized) == 14 and "lm_head" not in quantized

    scores = loglikelihoods(lm)
    assert all(math.isfinite(s) for s in scores)
    # int4 moves the scores, but only a little on the same probes
    assert scores != reference
    assert max(abs(a - b) for a, b in zip(scores, reference)) < 0.5

    # the forward unpacked the saved weights: they are the original ones rounded to int4 per
    # group of 32, so the checkpoint round-tripped the quantization it was written with
    original = load_file(tiny_llama_dir / "model.safetensors")[
        "model.layers.0.mlp.down_proj.weight"]
    assert not torch.equal(down.weight.data, original)
    torch.testing.assert_close(down.weight.data, _int_rtn(original, 4, CT_GROUP), rtol=0,
                               atol=1e-6)


def test_compressed_tensors_checkpoint_with_quant_prequantized(compressed_tensors_w4):
    lm = HFQuantLM(pretrained=str(compressed_tensors_w4), device="cpu", quant="prequantized")
    record = lm.get_model_info()["quantization"]
    assert record["method"] == "prequantized"
    assert record["checkpoint_format"] == "compressed-tensors pack-quantized"


@pytest.mark.parametrize("name,fmt,act_bits", [
    ("w8a16", "compressed-tensors pack-quantized", None),
    ("w8a8", "compressed-tensors int-quantized", 8),
])
def test_compressed_tensors_int8_checkpoints_load_as_saved(tiny_llama_dir, compressed_tensors_w8,
                                                           reference, name, fmt, act_bits):
    from safetensors.torch import load_file

    lm = HFQuantLM(pretrained=str(compressed_tensors_w8[name]), device="cpu", batch_size=2)
    record = lm.get_model_info()["quantization"]
    assert record["method"] == "prequantized" and record["checkpoint_format"] == fmt
    assert (record["bits"], record["group_size"]) == (8, -1)
    assert record.get("act_bits") == act_bits
    assert record["n_modules_quantized"] == 14 and record["modules_skipped"] == ["lm_head"]
    down = lm.model.model.layers[0].mlp.down_proj
    assert down.quantization_scheme.weights.num_bits == 8
    assert (down.quantization_scheme.input_activations is not None) == (act_bits is not None)

    scores = loglikelihoods(lm)
    assert all(math.isfinite(s) for s in scores) and scores != reference
    assert max(abs(a - b) for a, b in zip(scores, reference)) < 0.1  # 8 bits: a small change
    # the saved weights are the original ones rounded to int8 per output row
    original = load_file(tiny_llama_dir / "model.safetensors")[
        "model.layers.0.mlp.down_proj.weight"]
    torch.testing.assert_close(down.weight.data, _int_rtn(original, 8, original.shape[1]),
                               rtol=0, atol=1e-6)


def test_w8a8_quantizes_activations_at_run_time(compressed_tensors_w8):
    """Same int8 weights; W8A8 also rounds each token's input to int8, so scores move."""
    def load(name):
        return HFQuantLM(pretrained=str(compressed_tensors_w8[name]), device="cpu", batch_size=2)

    w8a16, w8a8 = load("w8a16"), load("w8a8")
    assert loglikelihoods(w8a8) != loglikelihoods(w8a16)
    # (the dense weight exists only once a forward pass has decompressed it)
    assert torch.equal(w8a16.model.model.layers[0].mlp.down_proj.weight,
                       w8a8.model.model.layers[0].mlp.down_proj.weight)
