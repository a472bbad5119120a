"""Runs of every backend read on the right bits, and cross-backend pairs refused.

The vLLM-shaped runs are what ``lm_eval --model vllm ... --log_samples --output_path OUT`` writes
with lm-eval 0.4.13, built with lm-eval's own `EvaluationTracker` (not by hand): the per-sample
content is a real in-process run of ``bias_bbq_lite_age`` on the tiny test model, and the
results' ``config`` is what `simple_evaluate` puts there for a vLLM model (``model``,
``model_args``, no ``get_model_info`` keys: `VLLM` has no such method, then the execution keys).
vLLM itself is not installed here and is not imported.

Quantized checkpoints: folders whose config.json carries the ``quantization_config`` that
llmcompressor 0.14 and gptqmodel 7.7 wrote through ``lm-eval-bias quantize`` on the tiny model
(`tests/analysis/backends/*.json`, see its README.md); only config.json is read by the analysis.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from lm_eval_bias.analysis import quantization as q
from lm_eval_bias.analysis.compare import compare_runs
from lm_eval_bias.analysis.quantization import CheckpointConfig, UnknownQuantization
from lm_eval_bias.analysis.report import is_unquantized, run_bits
from lm_eval_bias.analysis.runs import read_run
from lm_eval_bias.cli import main
from lm_eval_bias.errors import BiasEvalError

CONFIGS = Path(__file__).parent / "backends"
TASK = "bias_bbq_lite_age"


def _config(name: str) -> dict:
    return json.loads((CONFIGS / f"{name}.json").read_text())


# ----------------------------------------------------------------------------- real runs


@pytest.fixture(scope="module")
def evaluated(tiny_llama_dir) -> dict:
    """One real run of our BBQ task on the tiny model, as `simple_evaluate` returns it."""
    from lm_eval import simple_evaluate

    from lm_eval_bias.tasks._data import files_read, forget_files_read

    forget_files_read()
    out = simple_evaluate(model="hf", model_args={"pretrained": str(tiny_llama_dir)},
                          tasks=[TASK], limit=6, device="cpu", batch_size=4, log_samples=True)
    # what our hook adds to every lm_eval command's results JSON, whatever the --model
    # (_lm_eval_outputs.guard_tracker): the provenance of the data the tasks read
    out["data_files"] = files_read()
    assert any(key.startswith("bbq/") for key in out["data_files"]), out["data_files"]
    return out


_HF_MODEL_INFO = ("model_num_parameters", "model_dtype", "model_revision", "model_sha")


def write_lm_eval_run(evaluated: dict, out: Path, model: str, model_args, *,
                      model_info: dict | None = None) -> Path:
    """Write `evaluated` through lm-eval's EvaluationTracker as lm_eval run --model `model`
    --model_args `model_args` would (the CLI passes model_args parsed into a dict; the Python
    API may pass the string). `model_info`: what the model's get_model_info adds (HFLM and
    hf-quant have one, VLLM has none)."""
    from lm_eval.loggers import EvaluationTracker

    results = copy.deepcopy(evaluated)
    samples = results.pop("samples")
    execution = {k: v for k, v in results["config"].items()
                 if k not in ("model", "model_args", "quantization", *_HF_MODEL_INFO)}
    if model == "vllm":
        execution["batch_sizes"] = []  # VLLM has no batch_sizes attribute
    results["config"] = {"model": model, "model_args": model_args, **(model_info or {}),
                         **execution}
    tracker = EvaluationTracker(output_path=str(out))
    tracker.general_config_tracker.log_experiment_args(
        model_source=model, model_args=model_args, system_instruction=None, chat_template=None,
        fewshot_as_multiturn=False)
    tracker.save_results_aggregated(results=results, samples=samples)
    for task in results["configs"]:
        tracker.save_results_samples(task_name=task, samples=samples[task])
    return out


def checkpoint(tmp_path: Path, tiny: Path, name: str) -> Path:
    """A copy of the tiny model's folder whose config.json has the quantization_config `name`."""
    folder = tmp_path / f"ckpt-{name}"
    shutil.copytree(tiny, folder)
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = _config(name)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


def _vllm_args(pretrained, **extra) -> dict:
    """What lm-eval's CLI records for --model_args pretrained=...,... (parsed, values cast)."""
    from lm_eval.utils import simple_parse_args_string

    text = ",".join([f"pretrained={pretrained}"] + [f"{k}={v}" for k, v in extra.items()])
    return simple_parse_args_string(text)


def test_the_files_have_lm_evals_shape(evaluated, tiny_llama_dir, tmp_path):
    out = write_lm_eval_run(evaluated, tmp_path / "vllm", "vllm",
                            _vllm_args(tiny_llama_dir, quantization="fp8"))
    results = sorted(out.rglob("results_*.json"))
    samples = sorted(out.rglob(f"samples_{TASK}_*.jsonl"))
    assert len(results) == 1 and len(samples) == 1 and results[0].parent == samples[0].parent
    doc = json.loads(results[0].read_text())
    assert doc["config"]["model"] == "vllm"
    assert doc["config"]["model_args"] == {"pretrained": str(tiny_llama_dir),
                                           "quantization": "fp8"}
    assert doc["model_name"] == str(tiny_llama_dir) and doc["task_hashes"][TASK]
    run = read_run(out)
    assert run.backend == "vllm" and len(run.items) == 6 and run.tasks == [TASK]


def test_vllm_fp8_reads_as_8_bits(evaluated, tiny_llama_dir, tmp_path):
    for i, args in enumerate((_vllm_args(tiny_llama_dir, quantization="fp8"),
                              f"pretrained={tiny_llama_dir},quantization=fp8")):  # Python API
        run = read_run(write_lm_eval_run(evaluated, tmp_path / f"fp8-{i}", "vllm", args))
        assert run.quantization == q.VLLM_ON_THE_FLY["fp8"]
        assert run.quantization["act_bits"] == 8 and run_bits(run) == 8.0
        assert not is_unquantized(run)
    plain = read_run(write_lm_eval_run(evaluated, tmp_path / "plain", "vllm",
                                       _vllm_args(tiny_llama_dir, dtype="float32")))
    assert plain.quantization is None and is_unquantized(plain) and run_bits(plain) == 32.0


@pytest.mark.parametrize("name,bits,group,act_bits,fmt", [
    ("llmcompressor_rtn_w4a16_g32", 4, 32, None, "compressed-tensors pack-quantized"),
    ("llmcompressor_smoothquant_w8a8", 8, -1, 8, "compressed-tensors int-quantized"),
    ("gptqmodel_gptq_w4_g32", 4, 32, None, "gptq 4-bit"),
])
@pytest.mark.parametrize("model", ["vllm", "hf"])
def test_quantized_checkpoint_reads_with_its_bits(evaluated, tiny_llama_dir, tmp_path, name,
                                                  bits, group, act_bits, fmt, model):
    """The figures hf-quant records for the same checkpoints (tests/models/
    test_quantize_checkpoint.py: bits, group size, act_bits, checkpoint_format)."""
    folder = checkpoint(tmp_path, tiny_llama_dir, name)
    extra = {}
    if model == "vllm":
        extra["quantization"] = "gptq" if name.startswith("gptq") else "compressed-tensors"
    run = read_run(write_lm_eval_run(evaluated, tmp_path / "run", model,
                                     _vllm_args(folder, **extra)))
    rec = run.quantization
    assert (rec["method"], rec["bits"], rec["group_size"], rec.get("act_bits"),
            rec["checkpoint_format"]) == ("prequantized", bits, group, act_bits, fmt)
    assert rec["sym"] is True and rec["simulated"] is False and rec["stage"] == "checkpoint"
    assert run_bits(run) == float(bits) and not is_unquantized(run)


def test_vllm_infers_the_format_from_the_checkpoint_without_quantization_arg(
        evaluated, tiny_llama_dir, tmp_path):
    folder = checkpoint(tmp_path, tiny_llama_dir, "llmcompressor_rtn_w4a16_g32")
    run = read_run(write_lm_eval_run(evaluated, tmp_path / "run", "vllm", _vllm_args(folder)))
    assert run_bits(run) == 4.0


def test_a_quantized_run_whose_bits_are_unknown_is_refused(evaluated, tiny_llama_dir, tmp_path):
    missing = tmp_path / "moved-away"
    cases = [("vllm", _vllm_args("org/Some-Model-GPTQ", quantization="gptq"),
              "quantization=gptq takes its bits from the checkpoint's config.json"),
             ("hf", _vllm_args(missing, autogptq=True), "autogptq=true takes its bits"),
             ("hf", _vllm_args(missing), "whether its checkpoint is quantized"),
             ("vllm", _vllm_args(tiny_llama_dir, quantization="awq"), "has no quantization_config")]
    for i, (model, args, reason) in enumerate(cases):
        run = read_run(write_lm_eval_run(evaluated, tmp_path / f"r{i}", model, args))
        with pytest.raises(BiasEvalError) as info:
            _ = run.quantization
        msg = str(info.value)
        assert reason in msg and "\n" not in msg
        name = args["pretrained"]
        assert (f"hf download {name} config.json" if i == 0 else
                f"where the checkpoint folder {name} is, with its config.json") in msg


def test_a_gguf_run_is_refused(evaluated, tiny_llama_dir, tmp_path):
    run = read_run(write_lm_eval_run(evaluated, tmp_path / "gguf", "hf",
                                     _vllm_args(tiny_llama_dir, gguf_file="m-Q4_1.gguf")))
    with pytest.raises(BiasEvalError, match="gguf_file=m-Q4_1.gguf loads weights stored in "
                                            "GGUF's quantized types.*save_pretrained"):
        _ = run.quantization


def test_unknown_bits_are_one_line_cli_errors(evaluated, tiny_llama_dir, tmp_path, capsys):
    ref = write_lm_eval_run(evaluated, tmp_path / "ref", "vllm", _vllm_args(tiny_llama_dir))
    other = write_lm_eval_run(evaluated, tmp_path / "other", "vllm",
                              _vllm_args("org/Some-Model-AWQ", quantization="awq"))
    assert main(["compare", str(ref), str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot tell the bits of run" in err


# ----------------------------------------------------------------------------- backends as pairs


def _hf_quant_info(evaluated, quant: dict) -> dict:
    # the real model info of the evaluated run (export checks the weights folder against the
    # parameter count), plus hf-quant's quantization record
    return {**{k: evaluated["config"][k] for k in _HF_MODEL_INFO}, "quantization": quant}


@pytest.fixture
def three_runs(evaluated, tiny_llama_dir, tmp_path) -> dict[str, Path]:
    none = {"method": "none", "model_bytes_before": 1, "model_bytes_after": 1}
    return {
        "hf-quant": write_lm_eval_run(evaluated, tmp_path / "hfq", "hf-quant",
                                      _vllm_args(tiny_llama_dir, quant="none"),
                                      model_info=_hf_quant_info(evaluated, none)),
        "hf": write_lm_eval_run(evaluated, tmp_path / "hf", "hf", _vllm_args(tiny_llama_dir),
                                model_info={k: evaluated["config"][k] for k in _HF_MODEL_INFO}),
        "vllm": write_lm_eval_run(evaluated, tmp_path / "vllm", "vllm",
                                  _vllm_args(tiny_llama_dir, quantization="fp8")),
    }


def test_cross_backend_compare_is_refused_unless_allowed(three_runs, capsys):
    base, other = str(three_runs["hf-quant"]), str(three_runs["vllm"])
    assert main(["compare", base, other]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "ran on transformers (--model hf-quant) but OTHER" in err
    assert "on vllm (--model vllm)" in err and "counted as flips caused by quantization" in err
    assert "--allow-different-backends" in err
    assert main(["compare", base, other, "--allow-different-backends"]) == 0
    captured = capsys.readouterr()
    assert "note: different backends (allowed)" in captured.err
    result = compare_runs(read_run(base), read_run(other), allow_different_backends=True)
    assert result["backend_difference"] == {"base": "hf-quant", "other": "vllm",
                                            "base_engine": "transformers",
                                            "other_engine": "vllm"}
    assert result["all_tasks"]["n_paired"] == 6
    # the same items on both sides: no flip at all
    assert result["all_tasks"]["flips"]["response_flips"] == 0


def test_hf_and_hf_quant_are_the_same_engine(three_runs):
    result = compare_runs(read_run(three_runs["hf"]), read_run(three_runs["hf-quant"]))
    assert "backend_difference" not in result and result["all_tasks"]["n_paired"] == 6


def test_report_refuses_cross_backend_pairs_unless_allowed(three_runs, tmp_path, capsys):
    runs = [str(three_runs["hf-quant"]), str(three_runs["vllm"])]
    args = ["report", *runs, "--output", str(tmp_path / "rep"), "--n-boot", "100"]
    assert main(args) == 2
    assert "--allow-different-backends" in capsys.readouterr().err
    assert main([*args, "--allow-different-backends"]) == 0
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    bits = {c["label"]: c["bits"] for c in report["conditions"]}
    assert sorted(bits.values()) == [8.0, 32.0]
    assert any("run on vllm (--model vllm) but the reference on transformers" in n
               for n in report["notes"])


def test_export_and_verify_take_the_flag(three_runs, tmp_path, capsys):
    sub = tmp_path / "submission.json"
    base = ["export", str(three_runs["vllm"]), "--reference", str(three_runs["hf-quant"]),
            "--output", str(sub)]
    assert main(base) == 2 and not sub.exists()
    assert "--allow-different-backends" in capsys.readouterr().err
    assert main([*base, "--allow-different-backends"]) == 0
    doc = json.loads(sub.read_text())
    assert doc["quantization"]["bits"] == 8 and doc["model"]["lm_eval_model"] == "vllm"
    verify = ["verify", str(sub), "--runs", str(three_runs["vllm"]), str(three_runs["hf-quant"])]
    assert main(verify) == 2
    assert main([*verify, "--allow-different-backends"]) == 0


# ----------------------------------------------------------------------------- the pure mapping


def test_backend_and_engine():
    assert [q.backend(m) for m in ("hf", "hf-auto", "huggingface", "hf-quant", "vllm", None)] \
        == ["hf", "hf", "hf", "hf-quant", "vllm", None]
    assert {q.engine(m) for m in ("hf", "hf-auto", "hf-quant")} == {"transformers"}
    assert q.engine("vllm") == "vllm" and q.engine("sglang") == "sglang"


def test_compressed_tensors_w4a16_asym():
    qc = _config("llmcompressor_rtn_w4a16_g32")
    qc["config_groups"]["group_0"]["weights"]["symmetric"] = False
    assert q.from_checkpoint_config(qc) == {
        "method": "prequantized", "library": "compressed-tensors", "bits": 4, "group_size": 32,
        "sym": False, "simulated": False,
        "checkpoint_format": "compressed-tensors pack-quantized", "stage": "checkpoint"}


def test_compressed_tensors_fp8_dynamic():
    qc = {"quant_method": "compressed-tensors", "format": "float-quantized", "config_groups": {
        "group_0": {"targets": ["Linear"],
                    "weights": {"num_bits": 8, "type": "float", "strategy": "channel",
                                "symmetric": True},
                    "input_activations": {"num_bits": 8, "type": "float", "strategy": "token",
                                          "dynamic": True, "symmetric": True}}}}
    rec = q.from_checkpoint_config(qc)
    assert (rec["bits"], rec["act_bits"], rec["group_size"], rec["weight_dtype"]) == \
        (8, 8, -1, "float8")


def test_compressed_tensors_per_tensor_keeps_the_strategy():
    qc = {"quant_method": "compressed-tensors", "format": "int-quantized", "config_groups": {
        "g": {"weights": {"num_bits": 8, "type": "int", "strategy": "tensor",
                          "symmetric": True}}}}
    rec = q.from_checkpoint_config(qc)
    assert rec["bits"] == 8 and rec["strategy"] == "tensor" and "group_size" not in rec


@pytest.mark.parametrize("qc,reason", [
    ({"quant_method": "compressed-tensors", "config_groups": {
        "a": {"weights": {"num_bits": 4, "group_size": 128, "strategy": "group"}},
        "b": {"weights": {"num_bits": 8, "strategy": "channel"}}}}, "mix weights schemes"),
    ({"quant_method": "compressed-tensors", "config_groups": {}, "sparsity_config": {
        "format": "sparse-24"}}, "quantizes no weights"),
    ({"quant_method": "hqq", "nbits": 4}, "quant_method=hqq, whose bits"),
    ({"quant_method": "gptq", "group_size": 128}, "gptq None-bit quantization_config has no bit"),
    ({"quant_method": "bitsandbytes"}, "sets neither load_in_4bit nor load_in_8bit"),
    (["gptq"], "not a JSON object"),
])
def test_formats_without_one_bit_width_are_refused(qc, reason):
    with pytest.raises(UnknownQuantization, match=reason):
        q.from_checkpoint_config(qc)


def test_gptq_and_awq():
    gptq = q.from_checkpoint_config({"quant_method": "gptq", "bits": 3, "group_size": 128,
                                     "sym": False, "desc_act": True})
    assert (gptq["bits"], gptq["group_size"], gptq["sym"], gptq["desc_act"],
            gptq["checkpoint_format"], gptq["library"]) == (3, 128, False, True, "gptq 3-bit",
                                                            "gptqmodel")
    # AutoAWQ's own spelling (w_bit, q_group_size) and transformers' (bits, group_size)
    for qc in ({"quant_method": "awq", "w_bit": 4, "q_group_size": 128, "zero_point": True,
                "version": "GEMM"},
               {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True}):
        awq = q.from_checkpoint_config(qc)
        assert (awq["bits"], awq["group_size"], awq["sym"], awq["checkpoint_format"]) == \
            (4, 128, False, "awq 4-bit")


def test_bitsandbytes_fp8_quanto_checkpoints():
    nf4 = q.from_checkpoint_config({"quant_method": "bitsandbytes", "_load_in_4bit": True,
                                    "bnb_4bit_quant_type": "nf4"})
    assert (nf4["bits"], nf4["checkpoint_format"]) == (4, "bitsandbytes nf4")
    int8 = q.from_checkpoint_config({"quant_method": "bitsandbytes", "load_in_8bit": True})
    assert (int8["bits"], int8["checkpoint_format"]) == (8, "bitsandbytes int8")
    fp8 = q.from_checkpoint_config({"quant_method": "fp8", "activation_scheme": "dynamic",
                                    "weight_block_size": [128, 128]})
    assert (fp8["bits"], fp8["act_bits"], fp8["weight_block_size"]) == (8, 8, [128, 128])
    quanto = q.from_checkpoint_config({"quant_method": "quanto", "weights": "int4",
                                       "activations": None})
    assert (quanto["bits"], quanto.get("act_bits")) == (4, None)
    assert q.from_checkpoint_config(None) is None and q.from_checkpoint_config({}) is None


def test_hf_load_in_args():
    assert q.from_hf_args({"load_in_4bit": True, "bnb_4bit_quant_type": "nf4"})["method"] == "nf4"
    assert q.from_hf_args({"load_in_4bit": "True"})["method"] == "fp4"  # transformers' default
    assert q.from_hf_args({"load_in_8bit": True}) == {
        "method": "bnb8", "library": "bitsandbytes", "simulated": False, "stage": "load",
        "bits": 8}
    assert q.from_hf_args({"pretrained": "x"}) is None


def test_run_quantization_sources():
    plain = CheckpointConfig(where="/c/config.json")
    gptq = CheckpointConfig(where="/c/config.json",
                            quantization_config={"quant_method": "gptq", "bits": 4})
    unreadable = CheckpointConfig(where=None)
    recorded = {"method": "rtn", "bits": 3}
    # what the run recorded wins
    assert q.run_quantization("vllm", {"quantization": "fp8"}, recorded, gptq) is recorded
    assert q.run_quantization("hf", {}, None, plain) is None
    assert q.run_quantization("hf", {"load_in_8bit": True}, None, plain)["bits"] == 8
    # a quantized checkpoint is loaded with its own config whatever the args say
    assert q.run_quantization("hf", {"load_in_8bit": True}, None, gptq)["bits"] == 4
    assert q.run_quantization("vllm", {"quantization": "gptq_marlin"}, None, gptq)["bits"] == 4
    assert q.run_quantization("vllm", {"quantization": "fp8"}, None, unreadable)["bits"] == 8
    assert q.run_quantization("vllm", {"quantization": "bitsandbytes"}, None, plain)["bits"] == 4
    assert q.run_quantization("vllm", {"quantization": None}, None, plain) is None
    assert q.run_quantization("hf-quant", {"quant": "rtn", "bits": "4"}, None, None) == \
        {"method": "rtn", "bits": 4}
    assert q.run_quantization("openai-completions", {}, None, None) is None
    for model, args in (("vllm", {"quantization": "bitsandbytes"}), ("vllm", {}), ("hf", {}),
                        ("hf", {"gptqmodel": True})):
        with pytest.raises(UnknownQuantization):
            q.run_quantization(model, args, None, unreadable)
    with pytest.raises(UnknownQuantization, match="autogptq=true loads a GPTQ checkpoint"):
        q.run_quantization("hf", {"autogptq": True}, None, plain)


def test_read_checkpoint_config(tmp_path, tiny_llama_dir):
    folder = checkpoint(tmp_path, tiny_llama_dir, "gptqmodel_gptq_w4_g32")
    found = q.read_checkpoint_config({"pretrained": str(folder)})
    assert found.where == str(folder / "config.json")
    assert found.quantization_config["quant_method"] == "gptq"
    plain = q.read_checkpoint_config({"pretrained": str(tiny_llama_dir)})
    assert plain.where is not None and plain.quantization_config is None
    assert q.read_checkpoint_config({"pretrained": "org/not-cached"}).where is None
    # an AutoGPTQ checkpoint that keeps its settings in quantize_config.json only
    (tmp_path / "ckpt-plain").mkdir()
    shutil.copy(tiny_llama_dir / "config.json", tmp_path / "ckpt-plain" / "config.json")
    (tmp_path / "ckpt-plain" / "quantize_config.json").write_text(json.dumps(
        {"bits": 4, "group_size": 128, "desc_act": False, "sym": True}))
    legacy = q.read_checkpoint_config({"pretrained": str(tmp_path / "ckpt-plain")})
    assert q.run_quantization("hf", {"autogptq": True}, None, legacy)["bits"] == 4
    assert q.read_checkpoint_config({}).where is None
