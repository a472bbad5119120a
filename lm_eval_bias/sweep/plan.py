"""The plan of `lm-eval-bias sweep`: its arguments checked into a `SweepSpec`, the jobs (one per
setting and seed, each with its run folder), the `lm_eval` command line of each job (what the
sweep runs and what ``--plan`` prints, also for ``--backend vllm``), and sweep.json's identity.
Runs nothing, writes nothing."""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.sweep.settings import (
    Setting,
    lm_eval_model_args,
    parse_model_args,
    parse_seeds,
    parse_settings,
    quantize_args_of,
)
from lm_eval_bias.sweep.store import REPORT_DIR, SCHEMA, SCHEMA_VERSION

#: lm-eval's own options that a sweep passes through to every run: (flag, takes a value: "yes",
#: or "optional" for flags whose value may be left out).
LM_EVAL_OPTIONS = (
    ("--apply_chat_template", "optional"), ("--system_instruction", "yes"),
    ("--fewshot_as_multiturn", "optional"), ("--num_fewshot", "yes"), ("--gen_kwargs", "yes"),
    ("--metadata", "yes"), ("--include_path", "yes"), ("--hf_hub_log_args", "yes"),
)
BACKENDS = ("hf-quant", "vllm")
#: vLLM engine options the sweep passes into every `--model vllm` run's model_args.
VLLM_OPTIONS = ("tensor_parallel_size", "data_parallel_size", "gpu_memory_utilization")
DEFAULT_HUB_REPO = "lm-eval-results"  # EvaluationTracker's default details/results repo name


@dataclass(frozen=True)
class Job:
    """One lm-eval run of the sweep: a setting at one seed, into one folder."""

    index: int
    setting: Setting
    seed: int | None
    folder: str
    model_args: str

    @property
    def title(self) -> str:
        return self.setting.text + ("" if self.seed is None else f" seed {self.seed}")


@dataclass(frozen=True)
class SweepSpec:
    model_args: str
    settings: list[Setting]
    tasks: list[str]
    output: Path
    seeds: list[int] | None = None
    limit: float | None = None
    batch_size: str = "1"
    device: str = "cpu"
    #: lm-eval options passed to every run: (flag, value), value None for a bare flag
    lm_eval_options: tuple[tuple[str, str | None], ...] = ()
    backend: str = "hf-quant"
    #: vllm backend: engine options (VLLM_OPTIONS) and the folder of the quantized checkpoints
    vllm_args: tuple[tuple[str, str], ...] = ()
    checkpoints: Path | None = None

    @property
    def pretrained(self) -> str:
        return str(lm_eval_model_args(self.model_args)["pretrained"])

    def checkpoint_of(self, setting: Setting) -> str:
        """Where the vllm backend's run of `setting` reads its weights."""
        if setting.method == "none":
            return self.pretrained
        return str((self.checkpoints or self.output / "checkpoints") / setting.folder)

    def _vllm_model_args(self, setting: Setting) -> str:
        from lm_eval_bias.sweep.runner import split_top_level

        items = [item for item in split_top_level(self.model_args)
                 if item.split("=", 1)[0] != "pretrained"]
        return ",".join([f"pretrained={self.checkpoint_of(setting)}", *items,
                         *[f"{k}={v}" for k, v in self.vllm_args]])

    @property
    def jobs(self) -> list[Job]:
        seeds = self.seeds or [None]
        out = []
        for setting in self.settings:
            model_args = (self._vllm_model_args(setting) if self.backend == "vllm"
                          else f"{self.model_args},{setting.quant_args}")
            for seed in seeds:
                folder = setting.folder + (f"_seed{seed}" if len(seeds) > 1 else "")
                out.append(Job(len(out) + 1, setting, seed, folder, model_args))
        return out

    def lm_eval_args(self, job: Job, output_path: Path) -> list[str]:
        """The arguments of `lm_eval` for `job` (what --plan prints and what the sweep runs)."""
        if self.backend == "vllm":
            args = ["run", "--model", "vllm", "--model_args", job.model_args,
                    "--tasks", ",".join(self.tasks), "--batch_size", self.batch_size,
                    "--log_samples", "--output_path", str(output_path)]
        else:
            args = ["run", "--model", "hf-quant", "--model_args", job.model_args,
                    "--tasks", ",".join(self.tasks), "--batch_size", self.batch_size,
                    "--device", self.device, "--log_samples", "--output_path", str(output_path)]
        if self.limit is not None:
            args += ["--limit", f"{self.limit:g}"]
        if job.seed is not None:
            args += ["--seed", str(job.seed)]
        for flag, value in self.lm_eval_options:
            if flag == "--hf_hub_log_args":
                value = json.dumps(hub_args_for(value, job.folder))
            args += [flag] if value is None else [flag, value]
        return args

    def identity(self) -> dict[str, Any]:
        options = [[f, v] for f, v in self.lm_eval_options] or None
        backend = None if self.backend == "hf-quant" else {
            "name": self.backend, **dict(self.vllm_args),
            "checkpoints": str(self.checkpoints) if self.checkpoints else None}
        return {"model_args": self.model_args, "settings": [s.text for s in self.settings],
                "seeds": self.seeds, "tasks": self.tasks, "limit": self.limit,
                "batch_size": self.batch_size, "device": self.device,
                "lm_eval_options": options, "backend": backend}

    def manifest(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, **self.identity(),
                "runs": [{"setting": j.setting.text, "seed": j.seed, "folder": j.folder,
                          "model_args": j.model_args} for j in self.jobs]}


def hub_args_for(text: str, folder: str) -> dict[str, Any]:
    """--hf_hub_log_args of one run: the given ones, with the repository names suffixed by the
    run folder, so runs of one checkpoint at several settings do not overwrite each other."""
    args = parse_dict_option("--hf_hub_log_args", text)
    suffix = "-" + folder.replace("+", "-")
    if args.get("hub_repo_name"):
        args["hub_repo_name"] = f"{args['hub_repo_name']}{suffix}"
        return args
    details = args.get("details_repo_name") or DEFAULT_HUB_REPO
    args["details_repo_name"] = details + suffix
    args["results_repo_name"] = (args.get("results_repo_name") or details) + suffix
    return args


def parse_dict_option(flag: str, text: str) -> dict[str, Any]:
    """A dict option as lm-eval parses it: a JSON object or key=value,key=value."""
    from lm_eval_bias.sweep.runner import try_parse_json

    value = try_parse_json(text)
    if isinstance(value, dict):
        return dict(value)
    try:
        return lm_eval_model_args(text)
    except BiasEvalError:
        raise BiasEvalError(f"{flag} {text!r}: give a JSON object or key=value,key=value"
                            ) from None


def check_lm_eval_options(options: dict[str, Any]) -> tuple[tuple[str, str | None], ...]:
    """The lm-eval options given to the sweep (dest -> value; True for a bare flag), checked
    and in LM_EVAL_OPTIONS order."""
    out = []
    for flag, kind in LM_EVAL_OPTIONS:
        value = options.get(flag[2:])
        if value is None or value is False:
            continue
        if value is True and kind == "optional":
            out.append((flag, None))
            continue
        value = str(value)
        if flag in ("--gen_kwargs", "--metadata", "--hf_hub_log_args"):
            parse_dict_option(flag, value)
        elif flag == "--num_fewshot" and not re.fullmatch(r"\d+", value):
            raise BiasEvalError(f"--num_fewshot must be a non-negative integer, got {value!r}")
        elif flag == "--include_path" and not Path(value).is_dir():
            raise BiasEvalError(f"--include_path {value} is not a folder of task YAMLs")
        out.append((flag, value))
    return tuple(out)


def make_spec(*, model_args: str, settings: str, tasks: str, output: str | Path,
              seeds: str | None = None, limit: float | None = None,
              batch_size: str | None = None,
              device: str | None = None, lm_eval_options: dict[str, Any] | None = None,
              backend: str = "hf-quant", vllm_args: dict[str, Any] | None = None,
              checkpoints: str | Path | None = None) -> SweepSpec:
    """Check every argument (one error line each) and return the sweep's plan."""
    if backend not in BACKENDS:
        raise BiasEvalError(f"--backend {backend}: choose one of {', '.join(BACKENDS)}")
    model_args = (model_args or "").strip().strip(",")
    parse_model_args(model_args)
    parsed = parse_settings(settings, backend)
    task_list = [t.strip() for t in (tasks or "").split(",") if t.strip()]
    if not task_list:
        raise BiasEvalError("--tasks is empty; give e.g. --tasks bias_bbq")
    if limit is not None and not limit > 0:
        raise BiasEvalError(f"--limit must be > 0, got {limit:g}")
    if batch_size is None:  # vLLM schedules its own batches
        batch_size = "auto" if backend == "vllm" else "1"
    batch_size = str(batch_size).strip()
    if not re.fullmatch(r"\d+|auto(:\d+(\.\d+)?)?", batch_size) or batch_size == "0":
        raise BiasEvalError(f"--batch-size must be a positive integer or auto, got {batch_size!r}")
    engine = tuple((k, str(v)) for k, v in (vllm_args or {}).items() if v is not None)
    if engine and backend != "vllm":
        raise BiasEvalError(f"--{engine[0][0]} is an option of --backend vllm; add --backend vllm "
                            "or drop it")
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return SweepSpec(model_args=model_args, settings=parsed, tasks=task_list,
                     output=Path(output), seeds=parse_seeds(seeds), limit=limit,
                     batch_size=batch_size, device=device,
                     lm_eval_options=check_lm_eval_options(lm_eval_options or {}),
                     backend=backend, vllm_args=engine,
                     checkpoints=Path(checkpoints) if checkpoints else None)


def plan_lines(spec: SweepSpec, n_boot: int = 1000) -> list[str]:
    """One self-contained shell command per run, then the report command."""
    from lm_eval_bias.analysis.report import check_n_boot

    check_n_boot(n_boot)  # the report's own limit, checked before the runs, not after them
    lines = [f"# lm-eval-bias sweep: {len(spec.jobs)} lm_eval runs, then the report"]
    if os.environ.get("LM_EVAL_BIAS_DATA_DIR"):
        lines.append(f"# benchmark data: LM_EVAL_BIAS_DATA_DIR="
                     f"{shlex.quote(os.environ['LM_EVAL_BIAS_DATA_DIR'])}")
    if spec.backend == "vllm":
        lines.append("# backend vllm: each quantized setting is written once by lm-eval-bias "
                     "quantize, then evaluated by lm_eval --model vllm")
    quantized = set()
    for job in spec.jobs:
        if spec.backend == "vllm" and job.setting.method != "none" and \
                job.setting not in quantized:
            quantized.add(job.setting)
            lines.append(shlex.join(["lm-eval-bias", "quantize", spec.pretrained,
                                     *quantize_args_of(job.setting), "--output",
                                     spec.checkpoint_of(job.setting)]))
        lines.append(shlex.join(["lm_eval", *spec.lm_eval_args(job, spec.output / job.folder)]))
    lines.append(shlex.join(["lm-eval-bias", "report",
                             *[str(spec.output / j.folder) for j in spec.jobs],
                             "--output", str(spec.output / REPORT_DIR), "--n-boot", str(n_boot)]))
    return lines
