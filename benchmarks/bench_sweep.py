"""Time `lm-eval-bias sweep` against the same settings run as separate `lm_eval` commands.

    python benchmarks/bench_sweep.py [--settings none,rtn:8:g64,...] [--limit 4] [--batch-size 8]
                                     [--task bias_bbq]

Not a test. Model: the embedded SmolLM2-135M-Instruct checkpoint
(`lm_eval_bias.models.smollm2.ensure_checkpoint()`; fp32 weights decoded from a Q4_1 GGUF file, so
already lossy), dtype=float32, on the CPU. Task: `--task`, by default `bias_bbq` (11 categories),
on the BBQ sample that ships with the package (LM_EVAL_BIAS_DATA_DIR =
`lm_eval_bias.tasks._data.DEMO_DATA_DIR`), first `--limit` items per category.

Both ways run the same runs: (1) one `lm-eval-bias sweep` process (weights loaded once, tasks built
once, then the report); (2) the commands `lm-eval-bias sweep --plan` prints: one `lm_eval` process
per setting, then `lm-eval-bias report`. Each process runs under `/usr/bin/time -v`; the table gives
wall time and CPU time (user + system; less sensitive than wall time to other work on a shared
machine), each summed over the processes of a way, and peak resident memory (largest process).
The samples files of each setting are compared between the two ways (they must be identical).
Prints a Markdown table, then the sweep's peak RSS as a multiple of one `lm_eval` run's (the
largest of the separate runs, and the `none` run); the target is at most 1.2x. Peak RSS does not
depend on other load on the machine, so it can be measured under `nice -n 19`.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_SETTINGS = "none,rtn:8:g64,rtn:6:g64,rtn:4:g64,rtn:3:g64"
TASK = "bias_bbq"


def timed(cmd: list[str], env: dict, log: Path) -> tuple[float, float, float]:
    """Run `cmd` under /usr/bin/time -v; (wall seconds, CPU seconds (user + system), peak RSS in
    MiB). Output goes to `log`."""
    rss_file = log.with_suffix(".time")
    full = ["/usr/bin/time", "-v", "-o", str(rss_file), *cmd]
    start = time.monotonic()
    with open(log, "ab") as fh:
        proc = subprocess.run(full, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"failed (exit {proc.returncode}): {shlex.join(cmd)}; see {log}")
    text = rss_file.read_text()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    cpu = sum(float(re.search(rf"{kind} time \(seconds\): ([\d.]+)", text).group(1))
              for kind in ("User", "System"))
    return wall, cpu, rss / 1024


def bin_path(name: str) -> str:
    exe = Path(sys.executable).parent / name
    return str(exe) if exe.exists() else name


def samples_of(folder: Path) -> dict[str, bytes]:
    """{task: bytes of its samples file} of one run folder."""
    out = {}
    for p in folder.glob("*/samples_*.jsonl"):
        out[p.name.rsplit("_", 1)[0]] = p.read_bytes()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", default=DEFAULT_SETTINGS)
    parser.add_argument("--limit", default="4", help="items per BBQ category (default 4)")
    parser.add_argument("--batch-size", default="8")
    parser.add_argument("--task", default=TASK, help=f"lm-eval task or group (default {TASK})")
    parser.add_argument("--workdir", help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()

    from lm_eval_bias.models import smollm2
    from lm_eval_bias.tasks._data import DEMO_DATA_DIR

    checkpoint = smollm2.ensure_checkpoint()
    env = {**os.environ, "LM_EVAL_BIAS_DATA_DIR": str(DEMO_DATA_DIR), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    for sub in ("sweep", "separate"):
        if (work / sub).exists():
            shutil.rmtree(work / sub)
    work.mkdir(parents=True, exist_ok=True)
    common = ["--model-args", f"pretrained={checkpoint},dtype=float32", "--settings",
              args.settings, "--tasks", args.task, "--limit", args.limit, "--batch-size",
              args.batch_size, "--device", "cpu"]

    # the separate commands: exactly what --plan prints for an output folder of their own
    plan = subprocess.run([bin_path("lm-eval-bias"), "sweep", *common, "--output",
                           str(work / "separate"), "--plan"], env=env, capture_output=True,
                          text=True, check=True).stdout
    commands = [shlex.split(line) for line in plan.splitlines() if line and line[0] != "#"]
    n_runs = len(commands) - 1

    print(f"model {checkpoint} (fp32 decoded from Q4_1 GGUF), task {args.task}, --limit {args.limit} "
          f"per category, settings {args.settings}, batch {args.batch_size}, "
          f"{os.cpu_count()} CPUs; logs in {work}", flush=True)
    sweep_wall, sweep_cpu, sweep_rss = timed(
        [bin_path("lm-eval-bias"), "sweep", *common, "--output", str(work / "sweep")], env,
        work / "sweep.log")
    print(f"sweep: {sweep_wall:.1f} s wall, {sweep_cpu:.1f} s CPU, peak {sweep_rss:.0f} MiB",
          flush=True)

    per_run = []
    for i, cmd in enumerate(commands[:-1]):
        cmd[0] = bin_path(cmd[0])
        per_run.append(timed(cmd, env, work / f"separate_{i}.log"))
        wall, cpu, rss = per_run[-1]
        print(f"lm_eval {i + 1}/{n_runs}: {wall:.1f} s wall, {cpu:.1f} s CPU, peak {rss:.0f} MiB",
              flush=True)
    report_cmd = commands[-1]
    report_cmd[0] = bin_path(report_cmd[0])
    report_wall, report_cpu, report_rss = timed(report_cmd, env, work / "separate_report.log")

    folders = [Path(c[c.index("--output_path") + 1]).name for c in commands[:-1]]
    same = all(samples_of(work / "sweep" / f) == samples_of(work / "separate" / f)
               and samples_of(work / "sweep" / f) for f in folders)

    sep_wall = sum(r[0] for r in per_run)
    sep_cpu = sum(r[1] for r in per_run)
    sep_rss = max(r[2] for r in per_run)
    print()
    print("| way | processes | wall time (s) | CPU time (s) | peak RSS (MiB) |")
    print("|---|---|---|---|---|")
    print(f"| `lm-eval-bias sweep` ({n_runs} settings + report) | 1 | {sweep_wall:.1f} | "
          f"{sweep_cpu:.1f} | {sweep_rss:.0f} |")
    print(f"| separate `lm_eval` commands ({n_runs} settings) | {n_runs} | {sep_wall:.1f} | "
          f"{sep_cpu:.1f} | {sep_rss:.0f} |")
    print(f"| separate `lm_eval` commands + `lm-eval-bias report` | {n_runs + 1} | "
          f"{sep_wall + report_wall:.1f} | {sep_cpu + report_cpu:.1f} | "
          f"{max(sep_rss, report_rss):.0f} |")
    print()
    print(f"per separate lm_eval command (wall s): {', '.join(f'{r[0]:.1f}' for r in per_run)}; "
          f"report alone {report_wall:.1f} s")
    print(f"samples files identical between the two ways for all {n_runs} settings: "
          f"{'yes' if same else 'NO'}")
    none_rss = next(r[2] for r, f in zip(per_run, folders) if f.startswith("none"))
    print(f"peak RSS: sweep {sweep_rss:.0f} MiB = {sweep_rss / sep_rss:.2f}x the largest single "
          f"lm_eval run ({sep_rss:.0f} MiB), {sweep_rss / none_rss:.2f}x the none run "
          f"({none_rss:.0f} MiB); target <= 1.2x: {'met' if sweep_rss <= 1.2 * sep_rss else 'NOT met'}")


if __name__ == "__main__":
    main()
