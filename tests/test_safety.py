"""What the tool will not do with untrusted input: run a checkpoint's own code unless asked, load
pickled weights when safetensors are there, or unpickle anything from result files."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT
from transformers import AutoModelForCausalLM

from lm_eval_bias.models.hf_quant import HFQuantLM

# Code a checkpoint ships for trust_remote_code: importing it leaves a marker file.
_REMOTE_CODE = '''
from pathlib import Path
Path({marker!r}).write_text("the checkpoint's own code ran")
from transformers import LlamaConfig, LlamaForCausalLM
class EvilConfig(LlamaConfig):
    pass
class EvilForCausalLM(LlamaForCausalLM):
    config_class = EvilConfig
'''


@pytest.fixture
def remote_code_checkpoint(tiny_llama_dir, tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_llama_dir, ckpt)
    marker = tmp_path / "remote-code-ran"
    (ckpt / "evil.py").write_text(_REMOTE_CODE.format(marker=str(marker)))
    config = json.loads((ckpt / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig",
                          "AutoModelForCausalLM": "evil.EvilForCausalLM"}
    (ckpt / "config.json").write_text(json.dumps(config))
    return ckpt, marker


def test_hf_quant_does_not_run_checkpoint_code_unless_asked(remote_code_checkpoint, tmp_path):
    ckpt, marker = remote_code_checkpoint
    # as lm_eval builds it from --model_args, with and without a quantization method
    for args in (f"pretrained={ckpt}", f"pretrained={ckpt},quant=rtn,bits=4,group_size=32"):
        lm = HFQuantLM.create_from_arg_string(args, {"device": "cpu"})
        assert type(lm.model).__name__ == "LlamaForCausalLM"   # transformers' own class
        assert not marker.exists()
    # control: the checkpoint's code does run when the user passes trust_remote_code=True
    # (in a child, so that transformers' module cache goes to a temporary folder)
    probe = ("import sys; from lm_eval_bias.models.hf_quant import HFQuantLM; "
             f"lm = HFQuantLM(pretrained={str(ckpt)!r}, device='cpu', trust_remote_code=True); "
             "print(type(lm.model).__name__)")
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")}
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-1] == "EvilForCausalLM" and marker.exists()


def test_safetensors_are_preferred_over_pickled_weights(tiny_llama_dir, tmp_path):
    """A checkpoint with both formats: the weights evaluated are the safetensors ones."""
    ckpt = tmp_path / "both"
    shutil.copytree(tiny_llama_dir, ckpt)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    zeros = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    torch.save(zeros, ckpt / "pytorch_model.bin")   # a different (pickled) set of weights
    assert (ckpt / "model.safetensors").is_file()
    name = "model.layers.0.mlp.up_proj.weight"
    # control: the .bin is loadable and really differs
    from_bin = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32,
                                                    use_safetensors=False)
    assert torch.count_nonzero(from_bin.state_dict()[name]) == 0
    lm = HFQuantLM(pretrained=str(ckpt), device="cpu", dtype="float32")
    assert torch.equal(lm.model.state_dict()[name], model.state_dict()[name])
    assert torch.count_nonzero(lm.model.state_dict()[name]) > 0


# Reading lm-eval output, submissions and reports: JSON only. Any of these would deserialize
# arbitrary objects (code execution on a crafted file).
_UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve",
                   "marshal", "jsonpickle"}
_UNSAFE_CALLS = {"load", "loads", "read_pickle", "Unpickler", "unsafe_load"}


def _unsafe_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in _UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in \
                _UNSAFE_MODULES:
            found.append(node.module)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            owner_name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
            call = f"{owner_name}.{node.func.attr}"
            if node.func.attr == "read_pickle" or (
                    owner_name in ("torch", "np", "numpy", "yaml", "pd", "pandas")
                    and node.func.attr in _UNSAFE_CALLS):
                # np.load is safe only with allow_pickle=False spelled out
                if call in ("np.load", "numpy.load") and any(
                        k.arg == "allow_pickle" and isinstance(k.value, ast.Constant)
                        and k.value.value is False for k in node.keywords):
                    continue
                found.append(f"{call} (line {node.lineno})")
    return found


def test_nothing_is_unpickled_from_result_files():
    package = REPO_ROOT / "lm_eval_bias"
    files = sorted((package / "analysis").glob("*.py")) + [package / "cli.py",
                                                          package / "demo.py"]
    assert len(files) >= 8
    offenders = {str(p.relative_to(REPO_ROOT)): u for p in files if (u := _unsafe_uses(p))}
    assert offenders == {}


def test_the_unpickling_check_sees_what_it_looks_for(tmp_path):
    # the scan above must be able to fail: each of these is found
    sample = tmp_path / "sample.py"
    sample.write_text("import pickle\nfrom joblib import load\nimport torch, numpy as np\n"
                      "import pandas as pd\n"
                      "torch.load('x')\nnp.load('y')\npd.read_pickle('z')\n"
                      "np.load('ok', allow_pickle=False)\n")
    assert _unsafe_uses(sample) == ["pickle", "joblib", "torch.load (line 5)",
                                    "np.load (line 6)", "pd.read_pickle (line 7)"]
