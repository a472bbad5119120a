"""`lm-eval-bias quantize`: real checkpoints written by llmcompressor (in its own virtual
environment, built once here from PyPI) and by gptqmodel, loaded and scored by `lm_eval --model
hf` and by `hf-quant` (as prequantized)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lm_eval_bias.cli import main
from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.models import quantize_checkpoint as qc
from lm_eval_bias.models.llmcompressor_job import config_groups
from tests.conftest import NETGUARD_DIR, run_cli

# ----------------------------------------------------------------------------- refusals (fast)


@pytest.mark.parametrize("changes,message", [
    ({"method": "awq", "scheme": "W8A8"}, "--method awq writes W4A16, not W8A8"),
    ({"method": "smoothquant", "scheme": "W4A16"}, "writes W8A8, not W4A16"),
    ({"scheme": "W8A8", "group_size": 64}, "one weight scale per output row"),
    ({"scheme": "W8A8", "symmetric": False}, "drop --asym"),
    ({"calib": "wikitext2"}, "--calib would be unused"),
    ({"fmt": "gptq"}, "--format gptq takes --method gptq"),
    ({"fmt": "gptq", "method": "gptq", "python": "/usr/bin/python3"}, "drop --python"),
    ({"fmt": "gptq", "method": "gptq", "ignore": ()}, "keeps exactly lm_head"),
    ({"group_size": 0}, "--group-size must be a positive number"),
])
def test_impossible_requests_are_one_line_errors(tmp_path, changes, message):
    base = {"model": str(tmp_path), "output": tmp_path / "out", "method": "rtn",
            "scheme": "W4A16"}
    with pytest.raises(BiasEvalError, match=message) as info:
        qc.check_spec(qc.QuantizeSpec(**{**base, **changes}))
    assert "\n" not in str(info.value)


def test_an_existing_output_is_refused(tiny_llama_dir, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("x")
    spec = qc.QuantizeSpec(model=str(tiny_llama_dir), output=tmp_path / "out", method="rtn",
                           scheme="W4A16")
    with pytest.raises(BiasEvalError, match="not an empty folder"):
        qc.check_spec(spec)


def test_without_llmcompressor_the_error_names_the_side_environment_command(
        tiny_llama_dir, tmp_path, monkeypatch, capsys):
    if qc.importlib.util.find_spec("llmcompressor") is not None:
        pytest.skip("llmcompressor is installed in this environment")
    monkeypatch.setenv("LM_EVAL_BIAS_CACHE_DIR", str(tmp_path / "cache"))
    code = main(["quantize", str(tiny_llama_dir), "--method", "rtn", "--scheme", "W4A16",
                 "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    venv = tmp_path / "cache" / "llmcompressor-venv"
    assert f"python -m venv {venv} && {venv}/bin/pip install torch==2.13.0 " \
           "llmcompressor==0.14.0" in err
    assert not (tmp_path / "out").exists()


def test_a_python_without_llmcompressor_is_refused(tiny_llama_dir, tmp_path):
    if qc.importlib.util.find_spec("llmcompressor") is not None:
        pytest.skip("llmcompressor is installed in this environment")
    spec = qc.QuantizeSpec(model=str(tiny_llama_dir), output=tmp_path / "out", method="rtn",
                           scheme="W4A16", python=sys.executable)
    with pytest.raises(BiasEvalError, match="cannot import llmcompressor"):
        qc.find_python(spec)


def test_w8a8_quantizes_inputs_per_token_at_run_time():
    job = qc.job_dict(qc.QuantizeSpec(model="m", output=Path("o"), method="smoothquant",
                                      scheme="W8A8"), None, "r.json")
    group = config_groups(job)["group_0"]
    assert group["weights"] == {"num_bits": 8, "type": "int", "symmetric": True,
                                "strategy": "channel"}
    assert group["input_activations"] == {"num_bits": 8, "type": "int", "symmetric": True,
                                          "strategy": "token", "dynamic": True}
    w4 = qc.job_dict(qc.QuantizeSpec(model="m", output=Path("o"), method="rtn",
                                     scheme="W4A16", group_size=32), None, "r.json")
    assert config_groups(w4)["group_0"] == {"targets": ["Linear"], "weights": {
        "num_bits": 4, "type": "int", "symmetric": True, "strategy": "group", "group_size": 32}}


# ----------------------------------------------------------------------------- real checkpoints


def _without_netguard() -> dict:
    """The environment for pip: the one step of the suite that needs PyPI."""
    env = dict(os.environ)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
             if p and Path(p) != NETGUARD_DIR]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


@pytest.fixture(scope="session")
def llmcompressor_python() -> str:
    """The side environment of the README, built once under LM_EVAL_BIAS_CACHE_DIR (reused by
    later runs); its install time is written next to it."""
    python = qc.side_venv_python()
    probe = [str(python), "-c", "import llmcompressor"]
    if python.is_file() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return str(python)
    start = time.monotonic()
    # the README's command, with this interpreter's python (the suite's `python` may not be on PATH)
    done = subprocess.run(["bash", "-c", qc.side_venv_command(python=sys.executable)],
                          env=_without_netguard(),
                          capture_output=True, text=True, timeout=1800, check=False)
    seconds = time.monotonic() - start
    assert done.returncode == 0, done.stderr[-2000:]
    (qc.side_venv() / "install-seconds.txt").write_text(f"{seconds:.0f}\n")
    print(f"built {qc.side_venv()} in {seconds:.0f} s")
    return str(python)


@pytest.fixture(scope="module")
def calib_file(tmp_path_factory, data_dir) -> Path:
    """Real text (BBQ contexts) as a local calibration file."""
    rows = [json.loads(line) for line in
            (data_dir / "bbq" / "data" / "Age.jsonl").read_text().splitlines()[:300]]
    path = tmp_path_factory.mktemp("calib") / "bbq_contexts.txt"
    path.write_text(" ".join(r["context"] for r in rows), encoding="utf-8")
    return path


def _scores(model: str, ckpt: Path) -> tuple[dict, list]:
    from lm_eval import simple_evaluate

    out = simple_evaluate(model=model, model_args={"pretrained": str(ckpt)},
                          tasks=["bias_bbq_lite"], limit=1, device="cpu", batch_size=4,
                          log_samples=True)
    # one response per answer option: (log-likelihood, is_greedy)
    lls = [float(resp[0][0]) for task in sorted(out["samples"])
           for sample in out["samples"][task] for resp in sample["resps"]]
    return out, lls


CASES = {
    # name: (arguments, bits, group size in the record, act_bits, checkpoint format)
    "rtn_w4a16": (["--method", "rtn", "--scheme", "W4A16", "--group-size", "32"], 4, 32, None,
                  "compressed-tensors pack-quantized"),
    "rtn_w8a16": (["--method", "rtn", "--scheme", "W8A16"], 8, -1, None,
                  "compressed-tensors pack-quantized"),
    "smoothquant_w8a8": (["--method", "smoothquant", "--scheme", "W8A8"], 8, -1, 8,
                         "compressed-tensors int-quantized"),
    "gptq_w4a16": (["--method", "gptq", "--scheme", "W4A16", "--group-size", "32"], 4, 32, None,
                   "compressed-tensors pack-quantized"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_llmcompressor_checkpoint_loads_and_scores_in_hf_and_hf_quant(
        tiny_llama_dir, llmcompressor_python, calib_file, tmp_path, name):
    from lm_eval_bias.models.hf_quant import HFQuantLM

    args, bits, group, act_bits, fmt = CASES[name]
    calibrated = args[1] in qc.CALIBRATED
    calib = ["--calib", str(calib_file), "--n-calib", "8", "--calib-len", "32"] if calibrated \
        else []
    out = tmp_path / name
    done = run_cli(["lm-eval-bias", "quantize", str(tiny_llama_dir), *args, *calib,
                    "--python", llmcompressor_python, "--output", str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((out / qc.RECORD_FILE).read_text())
    assert record["library"] == "llmcompressor" and record["versions"]["llmcompressor"] == "0.14.0"
    assert record["versions"]["transformers"] == "5.17.0"  # the side environment's own pin
    assert record["quant_method"] == "compressed-tensors" and record["group_size"] == group
    assert len(record["quantized_modules"]) == 14 and "lm_head" not in record["quantized_modules"]
    assert "Modifier" in record["recipe"]
    if calibrated:
        assert record["calibration"]["calib"] == str(calib_file)
        assert len(record["calibration"]["calib_file_sha256"]) == 64
        assert (record["calibration"]["n_windows"], record["calibration"]["window_len"],
                record["calibration"]["seed"]) == (8, 32, 0)
    else:
        assert record["calibration"] is None

    info = HFQuantLM(pretrained=str(out), device="cpu").get_model_info()["quantization"]
    assert info["method"] == "prequantized" and info["checkpoint_format"] == fmt
    assert (info["bits"], info["group_size"], info.get("act_bits")) == (bits, group, act_bits)
    assert info["n_modules_quantized"] == 14 and info["modules_skipped"] == ["lm_head"]

    _, hf_lls = _scores("hf", out)
    hq, hq_lls = _scores("hf-quant", out)
    assert hq["config"]["quantization"]["method"] == "prequantized"
    assert all(math.isfinite(x) for x in hf_lls) and len(hf_lls) >= 30
    # the same weights through lm-eval's own hf model and through hf-quant
    assert hf_lls == pytest.approx(hq_lls, rel=1e-6, abs=1e-5)


@pytest.mark.slow
def test_rtn_w4a16_weights_are_the_simulated_ones(tiny_llama_dir, llmcompressor_python,
                                                   tmp_path):
    """The real format's dequantized weights equal hf-quant's simulation (quant=rtn with the same
    bits, group size and symmetry; scale convention of compressed-tensors)."""
    from transformers import AutoModelForCausalLM, CompressedTensorsConfig

    from lm_eval_bias.models.quant.rtn import quantize_dequantize

    out = tmp_path / "w4"
    done = run_cli(["lm-eval-bias", "quantize", str(tiny_llama_dir), "--method", "rtn",
                    "--scheme", "W4A16", "--group-size", "32", "--python", llmcompressor_python,
                    "--output", str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    original = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    # decompressed at load: the dense weights the packed int4 codes and scales stand for
    real = AutoModelForCausalLM.from_pretrained(
        out, dtype=torch.float32, quantization_config=CompressedTensorsConfig(dequantize=True))
    linears = [(name, m) for name, m in original.named_modules()
               if isinstance(m, torch.nn.Linear) and name != "lm_head"]
    assert len(linears) == 14
    for name, module in linears:
        got = real.get_submodule(name).weight.data
        torch.testing.assert_close(got, quantize_dequantize(module.weight.data, 4, 32, sym=True,
                                                            grid="gptq"), rtol=0, atol=1e-6)
        # the default grid (scale max|w| / 7) is not the format's
        assert not torch.allclose(got, quantize_dequantize(module.weight.data, 4, 32, sym=True),
                                  rtol=0, atol=1e-6)
    assert torch.equal(real.lm_head.weight, original.lm_head.weight)  # lm_head kept


@pytest.mark.slow
def test_gptqmodel_checkpoint_loads_as_prequantized_gptq(tiny_llama_dir, calib_file, tmp_path,
                                                         monkeypatch):
    """--format gptq: GPTQ with gptqmodel in this environment (no side venv), saved in the GPTQ
    format, loaded by hf-quant as prequantized."""
    pytest.importorskip("gptqmodel")
    from lm_eval_bias.models.hf_quant import HFQuantLM
    from tests.models._scoring import loglikelihoods

    monkeypatch.setenv("GPTQMODEL_CPU_WORKERS", "2")
    out = tmp_path / "gptq"
    done = run_cli(["lm-eval-bias", "quantize", str(tiny_llama_dir), "--method", "gptq",
                    "--scheme", "W4A16", "--group-size", "32", "--format", "gptq",
                    "--calib", str(calib_file), "--n-calib", "8", "--calib-len", "32",
                    "--output", str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((out / qc.RECORD_FILE).read_text())
    assert record["library"] == "gptqmodel" and record["quant_method"] == "gptq"
    assert record["calibration"]["n_windows"] == 8 and record["recipe"] is None
    lm = HFQuantLM(pretrained=str(out), device="cpu")
    info = lm.get_model_info()["quantization"]
    assert (info["method"], info["bits"], info["group_size"]) == ("prequantized", 4, 32)
    assert info["n_modules_quantized"] == 14 and info["modules_skipped"] == ["lm_head"]
    scores = loglikelihoods(lm)
    reference = loglikelihoods(HFQuantLM(pretrained=str(tiny_llama_dir), device="cpu"))
    assert all(math.isfinite(s) for s in scores) and scores != reference
    assert max(abs(a - b) for a, b in zip(scores, reference)) < 0.5


@pytest.mark.slow
def test_awq_without_a_gpu_is_a_one_line_error(tiny_llama_dir, llmcompressor_python,
                                               calib_file, tmp_path):
    """llmcompressor 0.14's AWQ pins memory, which torch refuses without an accelerator: the
    side script says so in one line instead of a traceback."""
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: AWQ runs")
    done = run_cli(["lm-eval-bias", "quantize", str(tiny_llama_dir), "--method", "awq",
                    "--scheme", "W4A16", "--group-size", "32", "--calib", str(calib_file),
                    "--n-calib", "4", "--calib-len", "32", "--python", llmcompressor_python,
                    "--output", str(tmp_path / "awq")])
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "lm-eval-bias: error: llmcompressor 0.14 runs AWQ only with a GPU (it pins memory, "
        "which needs an accelerator); run quantize --method awq on a GPU machine")
    assert not (tmp_path / "awq").exists()
