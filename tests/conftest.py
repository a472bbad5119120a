"""Shared fixtures: offline settings, the network guard, the real data folder, and tiny
random-init Llama checkpoints.

The tiny models are real transformers models (random weights, a real BPE tokenizer trained here on
BBQ text), so lm-eval, transformers and the quantizers run for real; only the weights are small.

Network: tests connect to nothing but loopback. tests/_netguard/ patches the socket module in this
process (from here on, so collection is covered too) and, through its sitecustomize.py put first on
PYTHONPATH, in every Python child process (lm_eval, lm-eval-bias runs); a blocked attempt fails
the test phase it happened in (netguard_plugin.py), even when the code under test swallowed it.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
NETGUARD_DIR = Path(__file__).resolve().parent / "_netguard"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")  # pip in tests must not ask PyPI
if "LM_EVAL_BIAS_DATA_DIR" not in os.environ and SHARED_DATA.is_dir():
    os.environ["LM_EVAL_BIAS_DATA_DIR"] = str(SHARED_DATA)

# ---- network guard: this process, then child processes (PYTHONPATH -> sitecustomize.py)
sys.path.insert(0, str(NETGUARD_DIR))
import netguard
from netguard_plugin import (  # noqa: F401  (hooks, registered by being in this module)
    pytest_runtest_call,
    pytest_runtest_setup,
    pytest_runtest_teardown,
)

netguard.install()
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(NETGUARD_DIR)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
_netguard_tmp = tempfile.mkdtemp(prefix="lm-eval-bias-netguard-")
atexit.register(shutil.rmtree, _netguard_tmp, ignore_errors=True)
os.environ[netguard.LOG_ENV] = os.path.join(_netguard_tmp, "blocked.log")


@pytest.fixture(scope="session", autouse=True)
def no_network():
    """Session-wide: the socket guard is in place for every test (installed at import above, so
    that imports during collection are covered too); removed when the session ends."""
    netguard.install()
    yield netguard
    netguard.uninstall()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ.get("LM_EVAL_BIAS_DATA_DIR", SHARED_DATA))
    if not path.is_dir():
        pytest.fail(f"benchmark data folder not found: {path} (set LM_EVAL_BIAS_DATA_DIR)")
    return path


def _training_text() -> list[str]:
    """A few thousand real sentences (BBQ contexts and questions) to train the tiny tokenizer on."""
    lines = []
    age = SHARED_DATA / "bbq" / "data" / "Age.jsonl"
    if age.is_file():
        with age.open() as fh:
            for i, line in enumerate(fh):
                if i >= 2000:
                    break
                row = json.loads(line)
                lines += [row["context"], row["question"], row["ans0"], row["ans1"], row["ans2"]]
    lines += ["The quick brown fox jumps over the lazy dog.", "A B C D E F G H I J"]
    return lines


def build_tiny_llama(out_dir: Path, *, hidden_size: int = 64, intermediate_size: int = 128,
                     num_layers: int = 2, seed: int = 0) -> Path:
    """Save a random-init Llama (safetensors) with a real BPE tokenizer to `out_dir`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out_dir.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_training_text(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", pad_token="</s>")
    fast.save_pretrained(out_dir)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=512, bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id, tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(out_dir, safe_serialization=True)
    return out_dir


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def run_cli(args: list[str], *, cwd: Path | None = None, env: dict | None = None,
            timeout: int = 900) -> subprocess.CompletedProcess:
    """Run a console script (`lm_eval`, `lm-eval-bias`) as a user would: a real subprocess."""
    full_env = {**os.environ, **(env or {})}
    bindir = Path(sys.executable).parent
    exe = bindir / args[0]
    cmd = [str(exe) if exe.exists() else args[0], *args[1:]]
    return subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def make_venv_without_this_package(env_dir: Path) -> Path:
    """A virtual environment that sees this environment's installed packages (symlinked) except
    lm_eval_bias, its editable-install finder and its start-up hook; returns its python. Used to
    install the built wheel alone, and to run lm-eval where this package cannot be imported."""
    import venv

    venv.EnvBuilder(system_site_packages=False, with_pip=False, symlinks=True).create(env_dir)
    src = next((Path(sys.executable).parent.parent / "lib").glob("python3*/site-packages"))
    dst = next((env_dir / "lib").glob("python3*/site-packages"))
    for entry in src.iterdir():
        if entry.name.startswith(("lm_eval_bias", "_editable_impl_lm_eval_bias",
                                  "__editable__.lm_eval_bias", "_lm_eval_bias")):
            continue
        (dst / entry.name).symlink_to(entry)
    return env_dir / "bin" / "python"

