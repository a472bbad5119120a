"""`lm-eval-bias sweep`: one model at several quantization settings (and seeds), each evaluated by
lm-eval's own evaluator, then the report over all of them.

    lm-eval-bias sweep --model-args pretrained=PATH --settings none,rtn:8,rtn:4:g64,nf4 \\
                       --tasks bias_suite_lite --output runs/study [--seeds 0,1,2] [--limit N]

Settings
--------
A setting is a `quant=` method of hf-quant's registry (`QUANTIZERS.names()`: none, rtn, rtn_act,
bnb8, nf4, fp4, torchao_int8, torchao_w8a8, torchao_intx, quanto, ...) followed by ``:``-separated
parts, each one of:

    BITS         an integer                -> bits=BITS            rtn:4
    gSIZE        "g" and an integer        -> group_size=SIZE      rtn:4:g64  (g-1: one group per row)
    KEY=VALUE    any option of the method  -> KEY=VALUE            rtn:4:g64:sym=true, quanto:weights=int4

Lists inside a value use "|" (as in model_args): ``rtn:4:skip=lm_head|mlp.down_proj``. Each
setting becomes hf-quant model_args appended to ``--model-args`` (``rtn:4:g64`` ->
``quant=rtn,bits=4,group_size=64``), checked by the method itself before anything runs (an unknown
method or an option the method does not take is one error line). Settings are written back in a
canonical order (method, bits, gSIZE, the rest as given); that text names the run folder, with
``:`` -> ``_``, ``=`` -> ``-``, ``|`` -> ``+`` (``rtn:4:g64`` -> ``rtn_4_g64``), and ``_seed<k>``
appended when more than one seed is given. ``none`` is required: it is the report's reference.

Output folder
-------------
::

    OUT/sweep.json                 the arguments (a rerun with other arguments is refused)
    OUT/.sweep.lock                held while a sweep runs (a second one into OUT is refused)
    OUT/<setting>[_seed<k>]/       exactly what `lm_eval ... --log_samples --output_path` writes
    OUT/<setting>.partial/         a run in progress; never read, removed by the next sweep
    OUT/report/                    report.json, report.md, report.html, plots/

Each run is evaluated into ``<folder>.partial/`` and renamed to its final name only after lm-eval
wrote its results and samples files (and they are synced to disk), so a final folder is always a
complete run, and a rerun of a killed sweep skips the finished runs and redoes the rest.

What runs, and what is shared
-----------------------------
Every run is the `lm_eval run` command that ``--plan`` prints (but for its output folder, the
.partial one), parsed by lm-eval's own parser (`EvaluatorConfig`) and executed as its CLI does
(`simple_evaluate`, `EvaluationTracker`), in this process, with three things shared across runs
instead of redone:

- the full-precision weights: loaded once (through hf-quant with quant=none, i.e. HFLM's own
  loading) on the CPU; each run gets a deep copy, moved to ``--device`` and quantized by
  `HFQuantLM`, so the quantization record (`config.quantization`) is the one a normal run writes,
  with that one load's time as ``load_seconds``. Methods that quantize while loading (bitsandbytes:
  bnb8, nf4, fp4) cannot start from loaded weights: they load from the checkpoint, as lm_eval does.
- the task objects (datasets, prompts): built once. lm-eval rebuilds every request in
  `build_all_requests`, reseeds the few-shot sampler in `simple_evaluate`, and keeps responses
  only on those requests, so nothing of one run leaks into the next. What differs per run is the
  task metadata (lm_eval merges the model_args into it, and it is written to the results), so it
  is set per run to what lm_eval would have given. The datasets were built once, with the
  model_args minus the quantization keys: a task whose data depended on quant= would have to be
  built per run. None does: StereoSet, RedditBias and HolisticBias read only the tokenizer keys
  (`pretrained`, `tokenizer`, ...; tasks/_tokens.py), which every setting shares.
- the task index (`TaskManager`).

Seeds: ``--seeds 0,1,2`` runs every setting once per seed, passing the seed to lm-eval for all
four of its generators (as ``lm_eval --seed k``); the global generators are seeded before the model
is derived, as lm_eval seeds them before it loads, so a method that draws random numbers sees the
run's seed. The seeds are recorded by lm-eval (``config.random_seed`` ...) and in sweep.json.

lm-eval's own options
---------------------
--apply_chat_template, --system_instruction, --fewshot_as_multiturn, --num_fewshot, --gen_kwargs,
--metadata, --include_path and --hf_hub_log_args are added to every run's command line as given
(`LM_EVAL_OPTIONS`), so lm-eval parses them as it would for that command; --hf_hub_log_args gets
per-run repository names (`hub_args_for`). They are part of sweep.json's identity.

The vllm backend
----------------
``--backend vllm --plan`` prints, per quantized setting, the `lm-eval-bias quantize` command
that writes its real checkpoint (`quantize_args_of`) and, per setting and seed, the `lm_eval run
--model vllm` command that evaluates it (vLLM engine options in its model_args), then the report
command. It runs nothing: the commands are for the GPU machine.

The report
----------
`analysis.report.build_report` over every run folder, written by `report.write_report`
into ``OUT/report``. To make the same sweep give the same report.json byte for byte (whether it
ran in one go or was killed and resumed), the runs are read with `read_run` and then stripped of
what only describes one execution before the report is built: folders and files are given
relative to OUT, with the timestamp in lm-eval's file names replaced by ``*``; the results
``date`` and timestamp are dropped; the quantization record loses its timings (``load_seconds``,
``quantize_seconds``). Everything else is as read.
"""

from __future__ import annotations

import copy
import gc
import json
import logging
import os
import re
import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lm_eval_bias._files import write_atomic
from lm_eval_bias.errors import BiasEvalError

SCHEMA = "lm-eval-bias/sweep"
SCHEMA_VERSION = 1
MANIFEST = "sweep.json"
LOCK = ".sweep.lock"
PARTIAL_SUFFIX = ".partial"
REPORT_DIR = "report"

#: Keys of sweep.json that must match for a rerun into the same folder.
IDENTITY_KEYS = ("model_args", "settings", "seeds", "tasks", "limit", "batch_size", "device",
                 "lm_eval_options", "backend")

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

#: model_args that the sweep itself sets (per setting or from its own options).
_RESERVED_MODEL_ARGS = ("quant", "load_seconds", "device", "batch_size", "max_batch_size")
#: Quantization-record keys that time one execution (left out of the sweep's report).
_TIMING_KEYS = ("load_seconds", "quantize_seconds")

SETTINGS_HELP = """\
settings (comma-separated):
  METHOD[:BITS][:gSIZE][:KEY=VALUE...]   METHOD is a quant= name of hf-quant
  none           the model as loaded (required: the report's reference)
  rtn:4          quant=rtn,bits=4
  rtn:4:g64      quant=rtn,bits=4,group_size=64   (g-1: one group per output row)
  rtn:3:g64:sym=true, torchao_intx:4:g32, quanto:weights=int4, nf4, bnb8, torchao_int8
  gptq:4:g128:calib=wikitext2:n_calib=128   (calib= also takes a .txt or .jsonl path)
  lists inside a value use "|": rtn:4:skip=lm_head|mlp.down_proj
run folders: OUT/<setting with : -> _, = -> -, | -> +>[_seed<k>], e.g. OUT/rtn_4_g64_seed1
--backend vllm (with --plan): none, or rtn|gptq|awq|smoothquant:BITS[:gSIZE][:KEY=VALUE...]
  (4 -> W4A16, 8 -> W8A16, smoothquant:8 -> W8A8; keys scheme, sym, format, calib, n_calib,
  calib_len, calib_seed), each written by lm-eval-bias quantize into OUT/checkpoints/<setting>"""

_FOLDER_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")
_KEY = re.compile(r"[a-z_][a-z0-9_]*")


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Setting:
    """One quantization setting: `method` and its options (values as text, in canonical order)."""

    method: str
    options: tuple[tuple[str, str], ...] = ()

    @property
    def text(self) -> str:
        parts = [self.method]
        for key, value in self.options:
            if key == "bits":
                parts.append(value)
            elif key == "group_size":
                parts.append(f"g{value}")
            else:
                parts.append(f"{key}={value}")
        return ":".join(parts)

    @property
    def quant_args(self) -> str:
        """The hf-quant model_args of this setting, e.g. ``quant=rtn,bits=4,group_size=64``."""
        return ",".join([f"quant={self.method}"] + [f"{k}={v}" for k, v in self.options])

    @property
    def folder(self) -> str:
        name = self.text.replace(":", "_").replace("=", "-").replace("|", "+")
        return _FOLDER_UNSAFE.sub("-", name)


def parse_setting(text: str) -> Setting:
    """Parse one setting (see the module docstring) and check it with the method itself."""
    setting = split_setting(text)
    _check_with_quantizer(setting, text.strip())
    return setting


def split_setting(text: str) -> Setting:
    """The parts of one setting, in canonical order (not checked against any method)."""
    raw = text.strip()
    parts = [p.strip() for p in raw.split(":")]
    method = parts[0].lower()
    if not method:
        raise BiasEvalError(f"setting {raw!r} has no method; start it with a method name, e.g. "
                            "rtn:4")
    found: dict[str, str] = {}
    for part in parts[1:]:
        if re.fullmatch(r"[+-]?\d+", part):
            key, value = "bits", str(int(part))
        elif re.fullmatch(r"g[+-]?\d+", part, flags=re.IGNORECASE):
            key, value = "group_size", str(int(part[1:]))
        elif "=" in part:
            key, value = (s.strip() for s in part.split("=", 1))
            key = key.lower()
            if not _KEY.fullmatch(key) or not value:
                raise BiasEvalError(f"setting {raw!r}: {part!r} is not KEY=VALUE with a name and a "
                                    "value, e.g. sym=true")
        else:
            raise BiasEvalError(f"setting {raw!r}: {part!r} is neither bits (e.g. 4), a group size "
                                "(e.g. g64) nor KEY=VALUE (e.g. sym=true)")
        if key == "quant":
            raise BiasEvalError(f"setting {raw!r}: the method is the first part; drop quant=")
        if key in found:
            raise BiasEvalError(f"setting {raw!r} gives {key} twice; give it once")
        found[key] = value
    order = [k for k in ("bits", "group_size") if k in found] + \
        [k for k in found if k not in ("bits", "group_size")]
    return Setting(method, tuple((k, found[k]) for k in order))


def lm_eval_model_args(text: str) -> dict[str, Any]:
    """model_args text parsed as `lm_eval run --model_args` parses it (values cast: "4" -> 4,
    "true" -> True)."""
    from lm_eval._cli.utils import key_val_to_dict

    try:
        return key_val_to_dict(text)
    except ValueError as exc:
        raise BiasEvalError(f"model_args {text!r}: {exc}; give KEY=VALUE,KEY=VALUE") from None


def _check_with_quantizer(setting: Setting, raw: str):
    """Build the method from the model_args exactly as lm-eval will parse them, so an unknown
    method, an option it does not take, a bad value or a missing library fail now, in one line.
    Returns the built quantizer."""
    from lm_eval_bias.models.quant import QUANTIZERS

    args = lm_eval_model_args(setting.quant_args)
    quant = args.pop("quant")
    method = "none" if quant is None else str(quant).lower()
    try:
        quantizer = QUANTIZERS.build(method, args)
        quantizer.validate_environment()
    except BiasEvalError as exc:
        raise BiasEvalError(f"setting {raw!r}: {exc}") from None
    return quantizer


def effective_setting(setting: Setting) -> tuple:
    """What the method will actually do: every option it takes, with its default filled in and
    its value parsed (``sym=yes`` and ``sym=true`` agree; ``rtn:4`` is ``rtn:4:g128``). Options a
    method does not keep under their own name are compared as given."""
    quantizer = _check_with_quantizer(setting, setting.text)
    given = dict(setting.options)
    return (quantizer.name, tuple((option, repr(getattr(quantizer, option, given.get(option))))
                                  for option in type(quantizer).options))


def quantize_args_of(setting: Setting) -> list[str]:
    """`lm-eval-bias quantize` arguments (without MODEL and --output) for a setting of the vllm
    backend: METHOD:BITS[:gSIZE][:KEY=VALUE...] with METHOD rtn, gptq, awq or smoothquant; BITS
    4 -> W4A16, 8 -> W8A16 (smoothquant: W8A8); keys scheme (W4A16, W8A16, W8A8), sym (false
    -> --asym), format, calib, n_calib, calib_len, calib_seed. [] for none."""
    from lm_eval_bias.models.quantize_checkpoint import (
        COMPATIBLE,
        QuantizeSpec,
        check_scheme_options,
    )

    if setting.method == "none":
        if setting.options:
            raise BiasEvalError(f"setting {setting.text}: none takes no options")
        return []
    if setting.method not in COMPATIBLE:
        raise BiasEvalError(f"setting {setting.text}: --backend vllm evaluates real checkpoints "
                            f"written by lm-eval-bias quantize; use a method of "
                            f"{', '.join(COMPATIBLE)} (e.g. rtn:4:g64) or none")
    opts = dict(setting.options)
    bits = opts.pop("bits", None)
    scheme = opts.pop("scheme", None)
    if scheme is None:
        by_bits = {"4": "W4A16", "8": "W8A8" if setting.method == "smoothquant" else "W8A16"}
        if bits not in by_bits:
            raise BiasEvalError(f"setting {setting.text}: give bits 4 or 8 (or scheme=W8A8)")
        scheme = by_bits[bits]
    elif bits is not None and f"W{bits}" != scheme.upper()[:2]:
        raise BiasEvalError(f"setting {setting.text}: bits {bits} and scheme {scheme} disagree")
    args = ["--method", setting.method, "--scheme", scheme.upper()]
    flags = {"format": "--format", "calib": "--calib", "n_calib": "--n-calib",
             "calib_len": "--calib-len", "calib_seed": "--calib-seed",
             "group_size": "--group-size"}
    spec_kwargs = {}
    for key, value in opts.items():
        if key == "sym":
            if value.lower() in ("false", "no", "0"):
                args.append("--asym")
                spec_kwargs["symmetric"] = False
            elif value.lower() not in ("true", "yes", "1"):
                raise BiasEvalError(f"setting {setting.text}: sym takes true or false")
        elif key in flags:
            args += [flags[key], value]
        else:
            raise BiasEvalError(f"setting {setting.text}: {key} is not an option of lm-eval-bias "
                                f"quantize (options: sym, scheme, {', '.join(flags)})")
    try:
        spec = QuantizeSpec(model="", output=Path(), method=setting.method, scheme=args[3],
                            fmt=opts.get("format", "compressed-tensors"),
                            group_size=int(opts["group_size"]) if "group_size" in opts else None,
                            calib=opts.get("calib"), **spec_kwargs)
        check_scheme_options(spec)
    except BiasEvalError as exc:
        raise BiasEvalError(f"setting {setting.text}: {exc}") from None
    return args


def parse_settings(text: str, backend: str = "hf-quant") -> list[Setting]:
    """Comma-separated settings; refuses an empty list, a setting given twice (also in another
    spelling) and two settings whose folder names would collide; requires ``none``."""
    raws = [s for s in (text or "").split(",")]
    if not any(s.strip() for s in raws):
        raise BiasEvalError("--settings is empty; give e.g. --settings none,rtn:8,rtn:4")
    settings: list[Setting] = []
    effective: list[tuple] = []
    for raw in raws:
        if not raw.strip():
            raise BiasEvalError(f"--settings {text!r} has an empty entry; remove the extra comma")
        if backend == "vllm":
            setting = split_setting(raw)
            this = tuple(quantize_args_of(setting))
        else:
            setting = parse_setting(raw)
            this = effective_setting(setting)
        for other, other_effective in zip(settings, effective):
            if other == setting:
                raise BiasEvalError(f"setting {setting.text} is given twice in --settings; give "
                                    "each once")
            if other_effective == this:
                raise BiasEvalError(f"settings {other.text} and {setting.text} are the same once "
                                    "defaults are filled in; give each setting once")
            if other.folder == setting.folder:
                raise BiasEvalError(f"settings {other.text} and {setting.text} would share the run "
                                    f"folder {setting.folder}; give values that differ in letters "
                                    "or digits")
        settings.append(setting)
        effective.append(this)
    if not any(s.method == "none" for s in settings):
        raise BiasEvalError("--settings has no 'none': the report compares every setting with the "
                            "unquantized model; add none")
    if len(settings) < 2:
        raise BiasEvalError("--settings has only 'none'; add at least one quantized setting, "
                            "e.g. none,rtn:4")
    return settings


def parse_seeds(text: str | None) -> list[int] | None:
    """``"0,1,2"`` -> [0, 1, 2]; None -> None (lm-eval's default seeds)."""
    if text is None:
        return None
    seeds = []
    for part in text.split(","):
        part = part.strip()
        if not re.fullmatch(r"\d+", part) or int(part) >= 2 ** 32:
            raise BiasEvalError(f"--seeds {text!r}: {part!r} is not an integer from 0 to 2**32-1; "
                                "give e.g. --seeds 0,1,2")
        if int(part) in seeds:
            raise BiasEvalError(f"--seeds {text!r} gives seed {int(part)} twice; give each once")
        seeds.append(int(part))
    return seeds


def parse_model_args(text: str) -> dict[str, Any]:
    """The base model_args as lm-eval parses them; they must name the checkpoint and leave the
    quantization and the device to the sweep."""
    from lm_eval_bias.models.quant import QUANTIZERS

    args = lm_eval_model_args(text)
    if not isinstance(args.get("pretrained"), str) or not args["pretrained"]:
        raise BiasEvalError(f"--model-args {text!r} has no pretrained=; give the checkpoint, e.g. "
                            "--model-args pretrained=HuggingFaceTB/SmolLM2-135M")
    taken = [k for k in args if k in _RESERVED_MODEL_ARGS or k in QUANTIZERS.option_names()]
    if taken:
        raise BiasEvalError(f"--model-args gives {', '.join(taken)}, which the sweep sets itself "
                            "(quantization from --settings, --device, --batch-size); remove it")
    return args


# ----------------------------------------------------------------------------- the plan


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
        from lm_eval._cli.utils import split_top_level

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
    from lm_eval._cli.utils import try_parse_json

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


# ----------------------------------------------------------------------------- the output folder


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for p in sorted(path.rglob("*")):
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
    for d in sorted({p.parent for p in path.rglob("*")} | {path}):
        _fsync_dir(d)


def check_output(spec: SweepSpec) -> None:
    """Refuse an --output that is a file, that holds another sweep (sweep.json with other
    arguments) or that is not empty without a sweep.json. Writes nothing."""
    out = spec.output
    manifest_path = out / MANIFEST
    if out.exists() and not out.is_dir():
        raise BiasEvalError(f"--output {out} is a file; give a folder")
    if manifest_path.is_file():
        try:
            old = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BiasEvalError(f"{manifest_path} cannot be read ({exc}); give another --output"
                                ) from None
        if not isinstance(old, dict) or old.get("schema") != SCHEMA:
            raise BiasEvalError(f"{manifest_path} is not an lm-eval-bias sweep manifest; give "
                                "another --output")
        new = spec.identity()
        for key in IDENTITY_KEYS:
            if old.get(key) != new.get(key):
                raise BiasEvalError(
                    f"{out} holds a sweep with other {key} ({_short(old.get(key))} there, "
                    f"{_short(new[key])} now); rerun with the same arguments to finish it, or give "
                    "another --output")
    elif out.is_dir() and any(p.name != LOCK for p in out.iterdir()):
        raise BiasEvalError(f"--output {out} is not empty and holds no {MANIFEST}; give a new "
                            "or empty folder")


def init_output(spec: SweepSpec, log: Callable[[str], None] = print) -> int:
    """Create OUT and its sweep.json (once), take OUT's lock (held until the returned file
    descriptor is closed; the system drops it when the process dies, however it dies), and remove
    the .partial folders that an interrupted sweep left (they are never read)."""
    import fcntl

    out = spec.output
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BiasEvalError(f"cannot create --output {out}: {exc.strerror}") from None
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BiasEvalError(f"another sweep is running into {out}; wait for it to finish (two "
                            "at once would redo each other's runs)") from None
    try:
        check_output(spec)  # again, under the lock
        if not (out / MANIFEST).is_file():
            write_atomic(out / MANIFEST, json.dumps(spec.manifest(), indent=2) + "\n")
        for job in spec.jobs:
            partial = out / (job.folder + PARTIAL_SUFFIX)
            if partial.exists():
                shutil.rmtree(partial)
                log(f"removed {partial}: an unfinished run of an interrupted sweep (it is redone)")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def is_complete(folder: Path) -> bool:
    """A final run folder: it only gets its name once complete, so a results file must be there."""
    from lm_eval_bias.analysis.runs import find_results_files

    return folder.is_dir() and bool(find_results_files(folder))


# ----------------------------------------------------------------------------- running


class _DropPreloadedWarnings(logging.Filter):
    """HFLM warns that arguments "may be ignored" when `pretrained` is a model object; here they
    were applied when the weights were loaded, so the warning would only mislead."""

    _PREFIXES = ("`pretrained` model kwarg is not of type `str`",
                 "Passed an already-initialized model through `pretrained`")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self._PREFIXES)


def _lm_eval_config(spec: SweepSpec, job: Job, output_path: Path):
    """lm-eval's own parse of the job's command line (the one --plan prints)."""
    from lm_eval._cli.harness import HarnessCLI
    from lm_eval.config.evaluate_config import EvaluatorConfig

    namespace = HarnessCLI()._parser.parse_args(spec.lm_eval_args(job, output_path))
    return EvaluatorConfig.from_cli(namespace)


def _top_level(loaded: dict) -> list:
    """The requested tasks and groups (not their members), to hand to `simple_evaluate`."""
    members = {name for children in (loaded.get("group_map") or {}).values() for name in children}
    groups = [g for name, g in loaded["groups"].items() if name not in members]
    tasks = [t for name, t in loaded["tasks"].items() if name not in members]
    return groups + tasks


def _run_metadata(built: dict, model_args: dict) -> dict:
    """The task metadata lm_eval gives a task for these model_args: the task's own metadata, then
    the model_args, then config_source (`TaskFactory`), from the metadata the task was built with
    (the same but for the quantization keys)."""
    out = dict(built)
    source = out.pop("config_source", None)
    out.update(model_args)
    if source is not None:
        out["config_source"] = source
    return out


class _Tasks:
    """The task objects, built once, with their metadata set per run."""

    def __init__(self, names: list[str], base_args: dict, include_path: str | None = None) -> None:
        from lm_eval.tasks import TaskManager

        from lm_eval_bias.tasks import _data

        self.manager = TaskManager(include_path=include_path, metadata=dict(base_args))
        _data.forget_files_read()  # record only what these tasks read
        try:
            self.loaded = self.manager.load(list(names))
        except KeyError as exc:
            raise BiasEvalError(f"--tasks: {exc.args[0] if exc.args else exc}; list the tasks "
                                "with: lm_eval ls tasks") from None
        self.data_files = _data.files_read()  # each run's results record them (data_files)
        self.top_level = _top_level(self.loaded)
        self._built = {}
        for obj in [*self.loaded["tasks"].values(), *self.loaded["groups"].values()]:
            md = self._metadata_of(obj)
            self._built[id(obj)] = dict(md) if isinstance(md, dict) else None

    @staticmethod
    def _metadata_of(obj):
        config = getattr(obj, "_config", None)
        return getattr(config, "metadata", None) if config is not None else obj.metadata

    def set_model_args(self, model_args: dict) -> None:
        for obj in [*self.loaded["tasks"].values(), *self.loaded["groups"].values()]:
            built = self._built[id(obj)]
            if built is None:
                continue
            md = _run_metadata(built, model_args)
            config = getattr(obj, "_config", None)
            if config is not None and hasattr(config, "metadata"):
                config.metadata = md
            if hasattr(obj, "metadata") and not callable(obj.metadata):
                obj.metadata = md


class _Master:
    """The full-precision weights, loaded once on the CPU through hf-quant (quant=none)."""

    def __init__(self, base_args: dict, batch_size: str, log) -> None:
        from lm_eval_bias.models.hf_quant import HFQuantLM

        log(f"loading the full-precision weights once: {base_args['pretrained']}")
        start = time.perf_counter()
        lm = HFQuantLM.create_from_arg_obj({**base_args, "quant": "none"},
                                           {"batch_size": batch_size, "device": "cpu"})
        self.model = lm._model
        # HFQuantLM's own measure of `from_pretrained`, as a normal run records it
        self.load_seconds = lm._load_seconds
        del lm
        gc.collect()
        log(f"loaded in {time.perf_counter() - start:.1f} s; each setting starts from a copy")

    def copy_to(self, device: str):
        model = copy.deepcopy(self.model)
        return model if device == "cpu" else model.to(device)


def _seed_globals(cfg) -> None:
    """Seed python, numpy and torch as `simple_evaluate` does, before the model is derived (lm_eval
    seeds before it loads the model, so quantization sees the same generator state)."""
    import random

    import numpy as np
    from lm_eval.utils import set_torch_seed

    seeds = cfg.seed or [None, None, None, None]
    if seeds[0] is not None:
        random.seed(seeds[0])
    if seeds[1] is not None:
        np.random.seed(seeds[1])
    if seeds[2] is not None:
        set_torch_seed(seeds[2])


def _build_lm(cfg, master: _Master | None, log: Callable[[str], None]):
    from lm_eval_bias.models.hf_quant import HFQuantLM
    from lm_eval_bias.models.quant import QUANTIZERS

    extra = {"batch_size": cfg.batch_size, "max_batch_size": cfg.max_batch_size,
             "device": cfg.device}
    quant = cfg.model_args.get("quant")
    method = "none" if quant is None else str(quant).lower()
    if master is None or QUANTIZERS.get(method).stage == "load":
        # load-time methods (bitsandbytes) quantize inside from_pretrained: load as lm_eval does
        log(f"quant={method} quantizes while loading: loading {cfg.model_args['pretrained']}")
        return HFQuantLM.create_from_arg_obj(dict(cfg.model_args), extra)
    model = master.copy_to(cfg.device)
    lm = HFQuantLM.create_from_arg_obj(
        {**cfg.model_args, "pretrained": model, "load_seconds": master.load_seconds}, extra)
    # get_model_info looks the checkpoint up by name (model_sha), as for a normal run
    lm.pretrained = cfg.model_args["pretrained"]
    return lm


def _tracker(cfg):
    """lm_eval run's EvaluationTracker (it starts the run's clock, so: before the model)."""
    from lm_eval.loggers import EvaluationTracker

    hub_args = dict(cfg.hf_hub_log_args or {})
    hub_args["output_path"] = cfg.output_path
    return EvaluationTracker(**hub_args)


def _evaluate_into(cfg, lm, tasks: _Tasks, tracker, partial: Path) -> None:
    """`lm_eval run`'s evaluation and saving (lm_eval/_cli/run.py), with the model and tasks given."""
    from lm_eval import simple_evaluate

    results = simple_evaluate(
        model=lm, model_args=cfg.model_args, tasks=tasks.top_level,
        num_fewshot=cfg.num_fewshot, batch_size=cfg.batch_size,
        max_batch_size=cfg.max_batch_size, device=cfg.device, use_cache=cfg.use_cache,
        cache_requests=cfg.cache_requests.get("cache_requests", False),
        rewrite_requests_cache=cfg.cache_requests.get("rewrite_requests_cache", False),
        delete_requests_cache=cfg.cache_requests.get("delete_requests_cache", False),
        limit=cfg.limit, samples=cfg.samples, check_integrity=cfg.check_integrity,
        write_out=cfg.write_out, log_samples=cfg.log_samples, evaluation_tracker=tracker,
        system_instruction=cfg.system_instruction, apply_chat_template=cfg.apply_chat_template,
        fewshot_as_multiturn=cfg.fewshot_as_multiturn, gen_kwargs=cfg.gen_kwargs,
        task_manager=tasks.manager, verbosity=cfg.verbosity, predict_only=cfg.predict_only,
        random_seed=cfg.seed[0] if cfg.seed else None,
        numpy_random_seed=cfg.seed[1] if cfg.seed else None,
        torch_random_seed=cfg.seed[2] if cfg.seed else None,
        fewshot_random_seed=cfg.seed[3] if cfg.seed else None,
        confirm_run_unsafe_code=cfg.confirm_run_unsafe_code, metadata=cfg.metadata,
    )
    # Given a model object, simple_evaluate records its class and checkpoint as the model; the
    # command this run stands for records its --model name.
    results["config"]["model"] = cfg.model
    tracker.general_config_tracker.model_source = cfg.model
    samples = results.pop("samples")
    results["data_files"] = tasks.data_files  # as the lm_eval command records it (_lm_eval_outputs)
    tracker.save_results_aggregated(results=results, samples=samples)
    for task_name in results["configs"]:
        tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
    # the tracker logs and swallows write errors: check that every file is there
    from lm_eval_bias._lm_eval_outputs import results_file, samples_file

    stamp = getattr(tracker, "date_id", None)
    expected = [] if stamp is None else [results_file(tracker)] + [
        samples_file(tracker, t) for t in results["configs"]]
    missing = [str(p) for p in expected if not p.is_file()] or (
        ["the results file (lm-eval set no date)"] if stamp is None else [])
    if missing:
        raise BiasEvalError(f"lm-eval did not write {missing[0]} (see its warning above); check "
                            "that the output folder is writable and has space")


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def run_sweep(spec: SweepSpec, *, n_boot: int = 1000, log: Callable[[str], None] = print) -> dict:
    """Run every unfinished job of `spec`, then write the report. Returns
    {"ran": [folders], "skipped": [folders], "report": {name: path}}."""
    t0 = time.monotonic()
    from lm_eval_bias.analysis.report import check_n_boot

    check_n_boot(n_boot)  # the report's own limit, checked before the runs, not after them
    check_output(spec)
    jobs = spec.jobs
    todo = []
    for job in jobs:
        final = spec.output / job.folder
        if is_complete(final):
            continue
        if final.exists():
            raise BiasEvalError(f"{final} exists but holds no complete lm-eval run; remove it and "
                                "rerun the sweep")
        todo.append(job)
    skipped = [j.folder for j in jobs if j not in todo]
    if skipped:
        log(f"{len(skipped)} of {len(jobs)} runs already complete in {spec.output}, skipped: "
            f"{', '.join(skipped)}")
    ran, lock = [], None
    try:
        if todo:
            ran, lock = _run_jobs(spec, todo, len(jobs), t0, log)
        else:
            lock = init_output(spec, log)  # nothing to run; a leftover .partial still goes
        files = write_sweep_report(spec, n_boot=n_boot)
    finally:
        if lock is not None:
            os.close(lock)
    log(f"report over {len(jobs)} runs: {files['json']} (also report.md, report.html, plots/)")
    log(f"sweep finished in {_clock(time.monotonic() - t0)}")
    return {"ran": ran, "skipped": skipped, "report": files}


def _run_jobs(spec: SweepSpec, todo: list[Job], n_total: int, t0: float,
              log) -> tuple[list[str], int]:
    """Run `todo`; returns the folders written and OUT's lock (still held)."""
    from lm_eval_bias.models.quant import QUANTIZERS

    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # as lm_eval run sets it
    quiet = _DropPreloadedWarnings()
    hf_logger = logging.getLogger("lm_eval.models.huggingface")
    hf_logger.addFilter(quiet)
    lock = None
    try:
        base_args = lm_eval_model_args(spec.model_args)
        log(f"building tasks once: {', '.join(spec.tasks)}")
        tasks = _Tasks(spec.tasks, base_args, dict(spec.lm_eval_options).get("--include_path"))
        master = None
        if any(QUANTIZERS.get(j.setting.method).stage != "load" for j in todo):
            master = _Master(base_args, spec.batch_size, log)
        # only now, with the tasks found and the model loaded, does the sweep write anything
        lock = init_output(spec, log)
        durations: list[float] = []
        ran = []
        for n, job in enumerate(todo):
            final = spec.output / job.folder
            partial = spec.output / (job.folder + PARTIAL_SUFFIX)
            if is_complete(final):  # finished by a sweep that held the lock before this one
                continue
            # per-run average of this process's runs (skipped ones cost nothing)
            left = ("time left known after the first run" if not durations else
                    f"about {_clock(sum(durations) / len(durations) * (len(todo) - n))} left")
            log(f"\n[{job.index}/{n_total}] {job.title} -> {final}   tasks: "
                f"{', '.join(spec.tasks)}   elapsed {_clock(time.monotonic() - t0)}, {left}")
            start = time.monotonic()
            cfg = _lm_eval_config(spec, job, partial)
            tasks.set_model_args(cfg.metadata)
            partial.mkdir(parents=True)
            tracker = _tracker(cfg)
            _seed_globals(cfg)
            lm = _build_lm(cfg, master, log)
            try:
                _evaluate_into(cfg, lm, tasks, tracker, partial)
            finally:
                del lm
                gc.collect()
                _empty_device_cache(cfg.device)
            _fsync_tree(partial)
            os.rename(partial, final)  # the run is complete only under its final name
            _fsync_dir(spec.output)
            durations.append(time.monotonic() - start)
            ran.append(job.folder)
            log(f"[{job.index}/{n_total}] {job.title} done in {_clock(durations[-1])}")
        return ran, lock
    except BaseException:
        if lock is not None:
            os.close(lock)
        raise
    finally:
        hf_logger.removeFilter(quiet)


def _empty_device_cache(device: str) -> None:
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------- the report


def _relative(path: Path, root: Path, stamp: str | None) -> Path:
    rel = Path(os.path.relpath(Path(path).resolve(), root.resolve())).as_posix()
    if stamp:
        rel = rel.replace(stamp, "*")
    return Path(rel)


def normalize_run(run, root: Path) -> None:
    """Strip what describes one execution rather than the run (see the module docstring), in place."""
    stamp = run.timestamp
    run.path = _relative(run.path, root, None)
    run.results_file = _relative(run.results_file, root, stamp)
    run.samples_files = {t: _relative(p, root, stamp) for t, p in run.samples_files.items()}
    run.ignored_results_files = [_relative(p, root, None) for p in run.ignored_results_files]
    run.timestamp = None
    run.results = dict(run.results)
    run.results["date"] = None
    config = run.results.get("config")
    if isinstance(config, dict) and isinstance(config.get("quantization"), dict):
        config = dict(config)
        config["quantization"] = {k: v for k, v in config["quantization"].items()
                                  if k not in _TIMING_KEYS}
        run.results["config"] = config


def write_sweep_report(spec: SweepSpec, *, n_boot: int = 1000) -> dict:
    """The report over every run folder of `spec` into OUT/report (see the module docstring)."""
    from lm_eval_bias.analysis.report import build_report, write_report
    from lm_eval_bias.analysis.runs import read_run

    runs = []
    for job in spec.jobs:
        run = read_run(spec.output / job.folder)
        normalize_run(run, spec.output)
        runs.append(run)
    report = build_report(runs, n_boot=n_boot, seed=0)
    return write_report(report, spec.output / REPORT_DIR)
