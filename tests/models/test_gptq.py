"""GPTQ (`quant=gptq`) on the tiny random-init Llama with the real optimum + gptqmodel, scored
through lm-eval's HFLM path; GPTQ and AWQ checkpoints written here by gptqmodel, loaded as saved;
lm-eval's `autogptq=` / `gptqmodel=` routed to quant=gptq."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lm_eval.models.huggingface import HFLM

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.models.hf_quant import HFQuantLM, route_legacy_gptq
from lm_eval_bias.models.quant import QUANTIZERS
from lm_eval_bias.models.quant._inspect import census
from tests.conftest import build_tiny_llama
from tests.models._missing import error_without
from tests.models._scoring import loglikelihoods, mean_abs_diff

pytest.importorskip("gptqmodel")
pytest.importorskip("optimum.gptq")

# small enough for a tiny model on 2 cores (about a second per model)
SMALL = {"group_size": 32, "n_calib": 16, "calib_len": 64}
# Quantizing (packing) and loading GPTQ/AWQ layers compile gptqmodel's CPU extensions on first use
# (about 80 s once per machine, cached in ~/.cache/gptqmodel): those tests are `slow`; the ones
# that fail before any GPTQ work are not.
compiles = pytest.mark.slow


@pytest.fixture(scope="module")
def calib_file(data_dir, tmp_path_factory) -> Path:
    """Real English text: 300 BBQ contexts and questions, one JSON line each."""
    path = tmp_path_factory.mktemp("calib") / "bbq_contexts.jsonl"
    with (data_dir / "bbq" / "data" / "Age.jsonl").open() as fh, path.open("w") as out:
        for i, line in enumerate(fh):
            if i >= 300:
                break
            row = json.loads(line)
            out.write(json.dumps({"text": f"{row['context']} {row['question']}"}) + "\n")
    return path


def gptq_lm(model_dir, calib_file, **options):
    return HFQuantLM(pretrained=str(model_dir), device="cpu", batch_size=2, quant="gptq",
                     calib=str(calib_file), **{**SMALL, **options})


@pytest.fixture(scope="module")
def gptq4(tiny_llama_dir, calib_file):
    return gptq_lm(tiny_llama_dir, calib_file, bits=4)


@compiles
def test_quantizes_scores_and_records(gptq4, calib_file, reference):
    scores = loglikelihoods(gptq4)
    assert all(math.isfinite(s) for s in scores) and scores != reference
    layer = gptq4.model.model.layers[1].mlp.down_proj
    assert layer.qweight.dtype.is_floating_point is False and layer.bits == 4
    record = gptq4.get_model_info()["quantization"]
    assert record["method"] == "gptq" and record["library"] == "gptqmodel"
    assert record["library_version"] == importlib.metadata.version("gptqmodel")
    assert record["optimum_version"] == importlib.metadata.version("optimum")
    assert (record["bits"], record["group_size"], record["sym"], record["desc_act"]) == \
        (4, 32, True, False)
    assert record["damp_percent"] == 0.1
    assert record["n_modules_quantized"] == 14 and record["modules_skipped"] == ["lm_head"]
    assert record["calib"] == str(calib_file)
    assert len(record["calib_file_sha256"]) == 64
    assert (record["n_calib"], record["calib_len"], record["calib_seed"]) == (16, 64, 0)
    assert record["stage"] == "post_load" and record["simulated"] is False
    assert record["kl_text_id"] == "fixed-text-v1" and record["kl_fixed_text"] > 0
    # int4 codes + per-group scales and zeros vs fp32 weights; embeddings and lm_head (half of
    # this tiny model) stay fp32
    assert record["model_bytes_after"] < 0.6 * record["model_bytes_before"]
    # the token windows are not kept in the model's config (they would reach saved checkpoints)
    assert gptq4.model.config.quantization_config.dataset is None


@compiles
def test_error_grows_as_bits_shrink_and_stays_below_rtn(tiny_llama_dir, calib_file, reference):
    kls, diffs = {}, {}
    for bits in (8, 4, 3, 2):
        lm = gptq_lm(tiny_llama_dir, calib_file, bits=bits)
        kls[bits] = lm.get_model_info()["quantization"]["kl_fixed_text"]
        diffs[bits] = mean_abs_diff(loglikelihoods(lm), reference)
    assert 0 < kls[8] < kls[4] < kls[3] < kls[2], kls
    assert diffs[8] < diffs[4] and diffs[3] < diffs[2], diffs
    # GPTQ's second-order updates: a smaller output error than round-to-nearest with the same
    # bits, groups and symmetric codes (measured: about half the KL at 3 and 2 bits)
    for bits in (3, 2):
        rtn = HFQuantLM(pretrained=str(tiny_llama_dir), device="cpu", batch_size=2, quant="rtn",
                        bits=bits, group_size=32, sym=True)
        assert kls[bits] < 0.8 * rtn.get_model_info()["quantization"]["kl_fixed_text"]


@compiles
def test_same_seed_same_model_and_the_seed_is_recorded(tiny_llama_dir, calib_file, gptq4):
    again = gptq_lm(tiny_llama_dir, calib_file, bits=4)
    assert loglikelihoods(again) == loglikelihoods(gptq4)
    other = gptq_lm(tiny_llama_dir, calib_file, bits=4, calib_seed=1)
    assert other.get_model_info()["quantization"]["calib_seed"] == 1
    assert loglikelihoods(other) != loglikelihoods(gptq4)


@compiles
def test_options_as_lm_eval_parses_them(tiny_llama_dir, calib_file):
    lm = HFQuantLM.create_from_arg_string(
        f"pretrained={tiny_llama_dir},quant=gptq,bits=3,group_size=-1,sym=false,desc_act=true,"
        f"damp_percent=0.05,calib={calib_file},n_calib=8,calib_len=32,calib_seed=7,device=cpu")
    record = lm.get_model_info()["quantization"]
    assert (record["bits"], record["group_size"], record["sym"], record["desc_act"]) == \
        (3, -1, False, True)
    assert (record["damp_percent"], record["n_calib"], record["calib_len"],
            record["calib_seed"]) == (0.05, 8, 32, 7)
    assert census(lm.model).classes and len(census(lm.model).quantized) == 14
    assert all(math.isfinite(s) for s in loglikelihoods(lm))


# -- checkpoints saved quantized ----------------------------------------------------------------


@pytest.fixture(scope="module")
def gptq_checkpoint(gptq4, tiny_llama_dir, tmp_path_factory) -> Path:
    """The 4-bit model above, saved by transformers as a GPTQ checkpoint."""
    out = tmp_path_factory.mktemp("gptq-checkpoint")
    gptq4.model.save_pretrained(out)
    gptq4.tokenizer.save_pretrained(out)
    return out


@compiles
def test_gptq_checkpoint_loads_as_saved_with_the_same_scores(gptq_checkpoint, gptq4):
    qc = json.loads((gptq_checkpoint / "config.json").read_text())["quantization_config"]
    assert qc["quant_method"] == "gptq" and qc["bits"] == 4 and qc.get("dataset") is None
    lm = HFQuantLM(pretrained=str(gptq_checkpoint), device="cpu", batch_size=2)
    assert loglikelihoods(lm) == loglikelihoods(gptq4)
    record = lm.get_model_info()["quantization"]
    assert record["method"] == "prequantized" and record["checkpoint_format"] == "gptq 4-bit"
    assert record["library"] == "gptqmodel" and record["bits"] == 4
    assert record["group_size"] == 32 and record["n_modules_quantized"] == 14


@compiles
@pytest.mark.parametrize("model_args", [
    {"autogptq": True}, {"gptqmodel": True}, {"quant": "gptq"}, {"quant": "gptq", "bits": 4},
])
def test_legacy_flags_and_quant_gptq_load_a_gptq_checkpoint_as_saved(gptq_checkpoint, gptq4,
                                                                     model_args):
    lm = HFQuantLM(pretrained=str(gptq_checkpoint), device="cpu", batch_size=2, **model_args)
    record = lm.get_model_info()["quantization"]
    # recorded like the plain load of the same checkpoint, so the runs pool as one condition
    assert record["method"] == "prequantized" and record["checkpoint_format"] == "gptq 4-bit"
    assert loglikelihoods(lm) == loglikelihoods(gptq4)


@compiles
def test_autogptq_on_a_plain_checkpoint_calibrates(tiny_llama_dir, calib_file):
    lm = HFQuantLM.create_from_arg_string(
        f"pretrained={tiny_llama_dir},autogptq=true,bits=8,group_size=32,calib={calib_file},"
        f"n_calib=4,calib_len=32,device=cpu")
    record = lm.get_model_info()["quantization"]
    assert record["method"] == "gptq" and record["bits"] == 8 and record["stage"] == "post_load"


@compiles
@pytest.mark.parametrize("model_args,message", [
    ({"quant": "gptq", "n_calib": 8}, (r"GPTQ-quantized already \(gptq 4-bit\), so n_calib "
                                      r"cannot apply; drop them")),
    ({"quant": "gptq", "bits": 8}, r"bits=8 but the checkpoint is GPTQ with bits=4"),
    ({"quant": "rtn", "bits": 4}, (r"quant=rtn: the checkpoint is already quantized "
                                  r"\(gptq 4-bit\)")),
    ({"autogptq": "gptq_model-4bit-128g.safetensors"},
     r"autogptq=gptq_model-4bit-128g.safetensors names a weights file"),
    ({"autogptq": True, "quant": "nf4"}, (r"autogptq=true means quant=gptq, but quant=nf4 was "
                                         r"given too")),
])
def test_wrong_requests_on_a_gptq_checkpoint_are_one_line_errors(gptq_checkpoint, model_args,
                                                                 message):
    with pytest.raises(BiasEvalError, match=message) as err:
        HFQuantLM(pretrained=str(gptq_checkpoint), device="cpu", batch_size=2, **model_args)
    assert "\n" not in str(err.value)


_WRITE_AWQ = """
import sys
from gptqmodel import GPTQModel
from gptqmodel.quantization import AWQConfig
from transformers import AutoTokenizer
source, calib, out = sys.argv[1:4]
tokenizer = AutoTokenizer.from_pretrained(source)
texts = [line for line in open(calib, encoding="utf-8")][:64]
model = GPTQModel.load(source, AWQConfig(bits=4, group_size=32), device="cpu")
model.quantize(texts, tokenizer=tokenizer, batch_size=1)
model.save(out)
tokenizer.save_pretrained(out)
"""


@pytest.fixture(scope="module")
def wider_llama_dir(tmp_path_factory) -> Path:
    """AWQ's clipping search takes output channels in batches of 64: a tiny Llama twice as wide
    as the shared one (k_proj/v_proj 64 outputs)."""
    return build_tiny_llama(tmp_path_factory.mktemp("wider-llama"), hidden_size=128,
                            intermediate_size=256)


@pytest.fixture(scope="module")
def awq_checkpoint(wider_llama_dir, calib_file, tmp_path_factory) -> Path:
    """An AWQ checkpoint written by gptqmodel's own AWQ (in a child process: gptqmodel's loader
    needs GPTQMODEL_CPU_WORKERS >= 2 on a 2-core machine, read when its thread pool starts)."""
    out = tmp_path_factory.mktemp("awq") / "tiny-awq"
    env = {**os.environ, "GPTQMODEL_CPU_WORKERS": "2"}
    # cwd: gptqmodel writes its AWQ log files under ./logs
    proc = subprocess.run([sys.executable, "-c", _WRITE_AWQ, str(wider_llama_dir),
                           str(calib_file), str(out)], env=env, capture_output=True, text=True,
                          timeout=600, check=False, cwd=out.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@compiles
def test_awq_checkpoint_loads_as_saved_and_scores_near_the_reference(awq_checkpoint,
                                                                     wider_llama_dir):
    reference = loglikelihoods(HFLM(pretrained=str(wider_llama_dir), device="cpu", batch_size=2))
    qc = json.loads((awq_checkpoint / "config.json").read_text())["quantization_config"]
    assert qc["quant_method"] == "awq" and qc["bits"] == 4
    lm = HFQuantLM(pretrained=str(awq_checkpoint), device="cpu", batch_size=2)
    record = lm.get_model_info()["quantization"]
    assert record["method"] == "prequantized" and record["checkpoint_format"] == "awq 4-bit"
    assert record["library"] == "gptqmodel" and record["bits"] == 4
    assert record["group_size"] == 32 and record["n_modules_quantized"] == 14
    assert "Awq" in type(lm.model.model.layers[0].mlp.down_proj).__name__
    scores = loglikelihoods(lm)
    # a 4-bit copy of the same weights: close to the unquantized scores, but not equal
    assert scores != reference and mean_abs_diff(scores, reference) < 0.5


# -- errors before any work -----------------------------------------------------------------------


@pytest.mark.parametrize("options,message", [
    ({"bits": 5}, r"bits must be one of 2, 3, 4, 8, got 5"),
    ({"bits": 4, "group_size": 0}, r"group_size must be a positive number"),
    ({"bits": 4, "damp_percent": 1.5}, r"damp_percent must be a number between 0 and 1"),
    ({"bits": 4, "n_calib": 0}, r"n_calib must be at least 1"),
    ({"bits": 4, "calib_len": "long"}, r"calib_len must be an integer"),
    ({"bits": 4, "desc_act": "maybe"}, r"desc_act must be true or false"),
    ({"bits": 4, "skip": "lm_head"}, r"quant=gptq does not take skip='lm_head'"),
])
def test_bad_options_fail_before_loading(options, message):
    with pytest.raises(BiasEvalError, match=message) as err:
        HFQuantLM(pretrained="/nonexistent/checkpoint", device="cpu", quant="gptq", **options)
    assert "\n" not in str(err.value)


def test_bits_are_required_to_calibrate(tiny_llama_dir):
    with pytest.raises(BiasEvalError, match=r"quant=gptq needs bits \(2, 3, 4, 8\)"):
        HFQuantLM(pretrained=str(tiny_llama_dir), device="cpu", quant="gptq")


@pytest.mark.parametrize("options,message", [
    ({"group_size": 48}, r"group_size=48 does not divide in_features=64"),
    ({"calib_len": 1000}, r"calib_len=1000 is longer than the model's context \(512 tokens\)"),
    ({"calib_len": 400}, (r"calib=.*too short: after 1600 random draws only 0 of 16 documents "
                         r"had more than 400 tokens")),
])
def test_impossible_settings_are_refused_before_quantizing(tiny_llama_dir, calib_file, options,
                                                           message):
    with pytest.raises(BiasEvalError, match=message) as err:
        gptq_lm(tiny_llama_dir, calib_file, bits=4, **options)
    assert "\n" not in str(err.value)


def test_missing_gptqmodel_is_a_one_line_error_naming_the_install(monkeypatch):
    message = error_without(monkeypatch, "gptqmodel", pretrained="/nonexistent/checkpoint",
                            quant="gptq", bits=4)
    assert message.startswith('quant=gptq needs gptqmodel, which is not installed; run: pip '
                              'install "lm-eval-bias[gptq]"')
    assert "\n" not in message


def test_routing_of_lm_evals_flags():
    assert route_legacy_gptq("none", False, False) == "none"
    assert route_legacy_gptq("rtn", None, None) == "rtn"
    assert route_legacy_gptq("none", True, False) == "gptq"
    assert route_legacy_gptq("gptq", False, "true") == "gptq"


def test_registered_with_its_options():
    assert QUANTIZERS.get("gptq").stage == "post_load"
    assert {"calib", "n_calib", "calib_len", "calib_seed", "desc_act", "damp_percent"} <= \
        QUANTIZERS.option_names()


@compiles
def test_a_sweep_calibrates_a_copy_of_the_weights_it_loaded_once(tiny_llama_dir, calib_file,
                                                                 tmp_path):
    from lm_eval_bias.analysis.runs import read_run
    from lm_eval_bias.sweep import make_spec, run_sweep

    setting = f"gptq:4:g32:calib={calib_file}:n_calib=4:calib_len=32"
    lines: list[str] = []
    spec = make_spec(model_args=f"pretrained={tiny_llama_dir}", settings=f"none,{setting}",
                     tasks="bias_bbq_age", output=tmp_path / "study", limit=2.0, device="cpu")
    result = run_sweep(spec, n_boot=100, log=lines.append)
    assert sum("loading the full-precision weights once" in line for line in lines) == 1
    folder = result["ran"][1]
    assert folder.startswith("gptq_4_g32_calib-")
    record = read_run(tmp_path / "study" / folder).quantization
    assert (record["method"], record["bits"], record["group_size"]) == ("gptq", 4, 32)
    assert (record["n_calib"], record["calib_len"], record["calib"]) == (4, 32, str(calib_file))
    assert record["kl_fixed_text"] > 0
    assert (tmp_path / "study" / "report" / "report.json").is_file()


@compiles
@pytest.mark.parametrize("fmt", ["gptq", "awq"])
def test_shared_prefix_scoring_matches_the_standard_path(request, fmt):
    """GPTQ and AWQ layers keep transformers' key/value cache: hf-quant's shared-prefix path
    gives lm-eval's own path's scores (within 1e-4, same is_greedy and argmax)."""
    from tests.models.test_prefix_scoring import ITEMS, _build, assert_same_scores

    checkpoint = request.getfixturevalue(f"{fmt}_checkpoint")
    requests, positions = _build(ITEMS)
    common = {"pretrained": str(checkpoint), "device": "cpu", "batch_size": 4,
              "dtype": "float32"}
    on = HFQuantLM(prefix_cache=True, **common)
    off = HFQuantLM(prefix_cache=False, **common)
    assert_same_scores(on.loglikelihood(requests), off.loglikelihood(requests), positions)
    assert on.__dict__.get("_prefix_verified") is True
