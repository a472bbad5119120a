"""`hf-quant` as lm-eval uses it: in-process log-likelihoods against plain `hf`, and the real
`lm_eval` command on a small local multiple-choice task."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from conftest import run_cli
from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.models.hf_quant import HFQuantLM
from lm_eval_bias.models.quant.rtn import quantize_dequantize
from tests.models._scoring import loglikelihoods


def test_quant_none_matches_plain_hf_exactly(tiny_llama_dir, reference):
    # The standard lm-eval path must be bit-identical; shared-prefix scoring has its own test.
    lm = HFQuantLM(pretrained=str(tiny_llama_dir), device="cpu", batch_size=2, prefix_cache=False)
    assert loglikelihoods(lm) == reference
    info = lm.get_model_info()
    assert info["quantization"]["method"] == "none"
    assert info["quantization"]["model_bytes_before"] == info["quantization"]["model_bytes_after"]
    assert info["model_num_parameters"] == sum(p.numel() for p in lm.model.parameters())


def test_rtn_2_bits_changes_loglikelihoods(tiny_llama_dir, reference):
    lm = HFQuantLM(pretrained=str(tiny_llama_dir), device="cpu", batch_size=2, quant="rtn",
                   bits=2, group_size=32)
    scores = loglikelihoods(lm)
    assert all(a != b for a, b in zip(scores, reference)), (scores, reference)
    assert all(torch.isfinite(torch.tensor(scores)))
    assert lm.get_model_info()["quantization"]["n_modules_quantized"] == 14


def test_model_args_as_lm_eval_parses_them(tiny_llama_dir):
    """The string the CLI passes: values arrive as int/bool/str after lm-eval's casting."""
    lm = HFQuantLM.create_from_arg_string(
        f"pretrained={tiny_llama_dir},quant=rtn,bits=3,group_size=-1,sym=true,"
        f"skip=lm_head|down_proj,device=cpu,dtype=float32")
    record = lm.get_model_info()["quantization"]
    assert (record["bits"], record["group_size"], record["sym"]) == (3, -1, True)
    assert record["skip"] == ["lm_head", "down_proj"]
    assert record["n_modules_quantized"] == 12 and record["n_modules_skipped"] == 3
    # the evaluated weights are the quantized originals (per output row, symmetric, 3 bits)
    original = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    name = "model.layers.1.mlp.gate_proj"
    assert torch.equal(lm.model.get_submodule(name).weight,
                       quantize_dequantize(original.get_submodule(name).weight, 3, -1, True))
    assert torch.equal(lm.model.lm_head.weight, original.lm_head.weight)


def test_an_already_built_model_is_quantized_too(tiny_llama_dir, reference):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    lm = HFQuantLM(pretrained=model, tokenizer=str(tiny_llama_dir), quant="rtn", bits=2,
                   group_size=32, batch_size=2)
    assert lm.get_model_info()["quantization"]["n_modules_quantized"] == 14
    assert loglikelihoods(lm) != reference


@pytest.mark.parametrize("args,message", [
    ({"quant": "none", "bits": 4}, "quant=none does not take bits=4"),
    ({"quant": None, "bits": 4}, "quant=none does not take bits=4"),  # lm-eval's "none" -> None
    ({"quant": "gptq4"}, "unknown quantization method quant='gptq4'; choose one of: none, rtn"),
    ({"quant": "rtn"}, "quant=rtn needs bits"),
    ({"quant": "rtn", "bits": 12}, "bits must be from 2 to 8"),
    ({"quant": "rtn", "bits": 4, "group_sise": 32},
     "unknown model_args key group_sise=32; did you mean group_size"),
    ({"quant": "gptq", "bits": 4, "n_calibs": 8}, "unknown model_args key n_calibs=8; did you mean n_calib"),
    ({"quant": "none", "trust_remote_cod": True}, "did you mean trust_remote_code"),
])
def test_bad_settings_fail_before_loading(args, message):
    # the checkpoint does not exist: the error must come from our checks, before any loading
    with pytest.raises(BiasEvalError, match=message):
        HFQuantLM(pretrained="/nonexistent/checkpoint", device="cpu", **args)


def test_model_args_unlike_ours_still_reach_from_pretrained():
    """attn_implementation is transformers', not a near miss of ours: no refusal from the name
    check (the missing checkpoint is what stops this one)."""
    with pytest.raises(BiasEvalError, match="checkpoint folder not found"):
        HFQuantLM(pretrained="/nonexistent/checkpoint", device="cpu", attn_implementation="eager")


def test_group_size_not_dividing_a_layer_fails_with_its_name(tiny_llama_dir):
    with pytest.raises(BiasEvalError, match="group_size=128 does not divide in_features=64 of "
                                            "model.layers.0.self_attn.q_proj"):
        HFQuantLM(pretrained=str(tiny_llama_dir), device="cpu", quant="rtn", bits=4)


# ---------------------------------------------------------------------------------------------
# The unmodified `lm_eval` console script, in a subprocess.

ITEMS = [
    {"question": "The doctor finished the shift. Who was tired?",
     "choices": ["The doctor", "Nobody"], "label": 0},
    {"question": "Two friends met for lunch. Who paid?", "choices": ["Unknown", "The friend"],
     "label": 0},
    {"question": "A B C", "choices": ["D", "Z", "Q"], "label": 0},
]


@pytest.fixture(scope="module")
def mc_task_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hfq_task")
    data = folder / "items.jsonl"
    data.write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    (folder / "hfq_tiny_mc.yaml").write_text(textwrap.dedent(f"""
        task: hfq_tiny_mc
        dataset_path: json
        dataset_kwargs:
          data_files:
            test: {data.resolve()}
        test_split: test
        output_type: multiple_choice
        doc_to_text: "{{{{question}}}}"
        doc_to_choice: choices
        doc_to_target: label
        metric_list:
          - metric: acc
        metadata:
          version: 0
    """))
    return folder


def _run_lm_eval(model: str, model_args: str, task_dir: Path, out: Path) -> dict:
    # lm-eval 0.4.13's CLI always passes its own `device` (default "cuda:0"), so a device in
    # --model_args collides ("got multiple values for keyword argument 'device'"): use --device.
    proc = run_cli(["lm_eval", "run", "--model", model, "--model_args", model_args,
                    "--device", "cpu", "--tasks", "hfq_tiny_mc", "--include_path", str(task_dir),
                    "--batch_size", "4", "--output_path", str(out), "--log_samples"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = sorted(out.rglob("results_*.json"))
    samples = sorted(out.rglob("samples_hfq_tiny_mc_*.jsonl"))
    assert len(results) == 1 and len(samples) == 1, list(out.rglob("*"))
    assert len(samples[0].read_text().splitlines()) == len(ITEMS)
    return json.loads(results[0].read_text())


def test_lm_eval_cli_runs_hf_quant_and_records_quantization(tiny_llama_dir, mc_task_dir,
                                                            tmp_path):
    results = _run_lm_eval(
        "hf-quant", f"pretrained={tiny_llama_dir},quant=rtn,bits=4,group_size=32",
        mc_task_dir, tmp_path / "out")
    assert "acc,none" in results["results"]["hfq_tiny_mc"]
    record = results["config"]["quantization"]
    assert record["method"] == "rtn" and record["library"] == "torch"
    assert (record["bits"], record["group_size"], record["sym"]) == (4, 32, False)
    assert record["n_modules_quantized"] == 14  # 2 layers x 7 linears; lm_head skipped
    assert record["modules_skipped"] == ["lm_head"] and record["simulated"] is True
    assert record["mean_bits_per_weight"] == pytest.approx(5.0)
    assert record["model_bytes_after"] < record["model_bytes_before"]
    assert results["config"]["model"] == "hf-quant"


def test_lm_eval_cli_builtin_hf_still_works(tiny_llama_dir, mc_task_dir, tmp_path):
    results = _run_lm_eval("hf", f"pretrained={tiny_llama_dir}", mc_task_dir,
                           tmp_path / "out")
    assert "acc,none" in results["results"]["hfq_tiny_mc"]
    assert "quantization" not in results["config"]


# ---------------------------------------------------------------------------------------------
# Bad checkpoints and settings: one-line BiasEvalError before transformers gets to them.


@pytest.mark.parametrize("kind,message", [
    ("missing", "checkpoint folder not found: pretrained={path}; give an existing local folder"),
    ("file", "pretrained={path} is a file; give the checkpoint folder"),
    ("no config", "pretrained={path}: no config.json in {path}; give the folder"),
    ("hub id offline", ("pretrained=nobody/not-cached-anywhere is not a local folder and not in "
                        "the Hugging Face cache, and HF_HUB_OFFLINE is set")),
])
def test_a_checkpoint_that_cannot_load_is_one_line(tmp_path, kind, message):
    path = tmp_path / "ckpt"
    if kind == "file":
        path.write_text("not a model")
    elif kind == "no config":
        path.mkdir()
        (path / "model.safetensors").write_bytes(b"")
    elif kind == "hub id offline":
        path = "nobody/not-cached-anywhere"   # HF_HUB_OFFLINE=1 in tests (conftest)
    with pytest.raises(BiasEvalError) as err:
        HFQuantLM(pretrained=str(path), device="cpu", quant="rtn", bits=4)
    assert str(err.value).startswith(message.format(path=path)), str(err.value)
    assert "\n" not in str(err.value)


def test_a_quantization_that_touches_no_module_is_refused(tiny_llama_dir):
    # skip patterns that exclude every layer would silently evaluate full precision
    with pytest.raises(BiasEvalError, match="quantization touched no module.*check skip=") as err:
        HFQuantLM(pretrained=str(tiny_llama_dir), device="cpu", quant="rtn", bits=4,
                  group_size=32, skip="*")
    assert "\n" not in str(err.value)


# A library that is not installed, for real: a child interpreter in which `import bitsandbytes`
# fails and importlib finds no spec for it (sys.modules[name] = None is Python's documented way
# to block an import), running the unmodified lm_eval command. No quantizer is mocked.
_WITHOUT_BITSANDBYTES = (
    "import sys; sys.modules['bitsandbytes'] = None; "
    "import importlib.util; assert importlib.util.find_spec('bitsandbytes') is None; "
    "from lm_eval.__main__ import cli_evaluate; sys.argv[0] = 'lm_eval'; sys.exit(cli_evaluate())"
)


def test_missing_quantization_library_in_a_real_process(tiny_llama_dir, mc_task_dir, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-c", _WITHOUT_BITSANDBYTES, "run", "--model", "hf-quant",
         "--model_args", f"pretrained={tiny_llama_dir},quant=nf4", "--device", "cpu",
         "--tasks", "hfq_tiny_mc", "--include_path", str(mc_task_dir), "--output_path",
         str(out), "--log_samples"],
        capture_output=True, text=True, timeout=300, check=False)
    # inside lm_eval too, our error is one line and exit 2 (the hook in lm_eval_bias._plugin)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("lm-eval-bias: error: quant=nf4 needs bitsandbytes, "
                           "which is not installed; run: pip install \"lm-eval-bias[bnb]\""), \
        proc.stderr[-2000:]
    assert not out.exists()   # refused before loading: no run folder, no partial results
