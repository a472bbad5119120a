"""`hf-quant` under lm-eval's data parallelism (`accelerate launch -m lm_eval` / torchrun), as `hf`.

Two real processes started by torchrun, joined by torch.distributed (gloo, on 127.0.0.1),
accelerate's `Accelerator` and lm-eval's own data-parallel path: each rank builds and scores its
share of the documents and rank 0 gathers them into one samples file. One thing is pretended:
lm-eval 0.4.13 takes that path only when it counts more than one GPU (`HFLM.__init__`:
`gpus > 1`), and these machines have none, so the launcher makes `torch.cuda.device_count()`
answer 2 (`torch.cuda.is_available()` stays False; every tensor stays on the CPU). What a GPU
adds (one device per rank) is not exercised here.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

TASK = "bias_bbq_age"
LIMIT = 8

_LAUNCHER = """\
import sys
import torch
torch.cuda.device_count = lambda: 2  # see the module docstring of tests/models/test_data_parallel.py
from lm_eval.__main__ import cli_evaluate
sys.argv[0] = "lm_eval"
sys.exit(cli_evaluate())
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _lm_eval(tmp: Path, name: str, model: str, model_args: str, processes: int) -> tuple[dict, str]:
    """Run lm_eval (`processes` ranks under torchrun, or the plain command); return the samples
    by doc_id and the log."""
    out = tmp / name
    args = ["run", "--model", model, "--model_args", model_args, "--tasks", TASK,
            "--limit", str(LIMIT), "--device", "cpu", "--batch_size", "2", "--output_path",
            str(out), "--log_samples"]
    if processes > 1:
        launcher = tmp / "launch_lm_eval.py"
        launcher.write_text(_LAUNCHER)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
               "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
               str(launcher), *args]
    else:
        cmd = [sys.executable, "-m", "lm_eval", *args]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "GLOO_SOCKET_IFNAME": "lo",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    (samples_file,) = out.glob(f"*/samples_{TASK}_*.jsonl")
    samples = {}
    for line in samples_file.read_text().splitlines():
        row = json.loads(line)
        samples[row["doc_id"]] = row
    return samples, log


def _assert_same_samples(got: dict, ref: dict) -> None:
    assert sorted(got) == sorted(ref) == list(range(LIMIT))
    for doc_id, row in got.items():
        want = ref[doc_id]
        assert row["doc_hash"] == want["doc_hash"]
        scores = [float(r[0][0]) for r in row["resps"]]
        expected = [float(r[0][0]) for r in want["resps"]]
        assert max(abs(a - b) for a, b in zip(scores, expected)) < 1e-4, (doc_id, scores,
                                                                          expected)
        assert (row["bias_item"]["pred"], row["bias_item"]["biased"]) == \
            (want["bias_item"]["pred"], want["bias_item"]["biased"])


@pytest.fixture(scope="module")
def runs(tiny_llama_dir, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("data-parallel")
    rtn = f"pretrained={tiny_llama_dir},quant=rtn,bits=4,group_size=32"
    return {
        "rtn_2": _lm_eval(tmp, "rtn_2", "hf-quant", rtn, processes=2),
        "rtn_1": _lm_eval(tmp, "rtn_1", "hf-quant", rtn, processes=1),
        "none_2": _lm_eval(tmp, "none_2", "hf-quant", f"pretrained={tiny_llama_dir}", 2),
        "hf_2": _lm_eval(tmp, "hf_2", "hf", f"pretrained={tiny_llama_dir}", 2),
    }


def test_each_rank_scores_its_share_and_rank_0_writes_them_all(runs):
    _, log = runs["rtn_2"]
    for rank in (0, 1):
        assert f"Building contexts for {TASK} on rank {rank}..." in log
    # lm-eval's progress bars: each rank built LIMIT / 2 documents, not LIMIT
    assert log.count(f"{LIMIT // 2}/{LIMIT // 2} [") >= 2 and f"{LIMIT}/{LIMIT} [" not in log
    assert "Using `accelerate launch`" in log


def test_two_ranks_give_the_single_process_samples(runs):
    _assert_same_samples(runs["rtn_2"][0], runs["rtn_1"][0])


def test_hf_quant_and_hf_agree_under_data_parallelism(runs):
    _assert_same_samples(runs["none_2"][0], runs["hf_2"][0])
