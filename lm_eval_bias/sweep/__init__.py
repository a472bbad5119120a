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
    OUT/.sweep-weights.safetensors scratch copy of loaded tensors the checkpoint lacks (while running)
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
  loading) on ``--device``, and held once: each run gets a copy of the module tree over the same
  tensors, quantized by `HFQuantLM`, so the quantization record (`config.quantization`) is the
  one a normal run writes, with that one load's time as ``load_seconds``. The tensors a setting
  changed in place are read back from the checkpoint's safetensors before the next setting, and
  checked against their fingerprint at load (`weights.py`; what the checkpoint does not hold as
  loaded is read back from a scratch file, ``OUT/.sweep-weights.safetensors``, removed at the
  end). Peak memory is that of one `lm_eval` run plus what one setting adds. Methods that
  quantize while loading (bitsandbytes: bnb8, nf4, fp4) cannot start from loaded weights: they
  load from the checkpoint, as lm_eval does, while the shared weights are freed.
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

Modules
-------
`settings` (the grammar, duplicate checks), `plan` (`SweepSpec`, jobs, command lines, --plan),
`store` (the output folder, lock, fsync, resume, the report's normalization), `weights` (the
shared weights and their restoring), `runner` (the run; the only module that imports lm-eval).
"""

from lm_eval_bias.sweep.plan import (
    BACKENDS,
    DEFAULT_HUB_REPO,
    LM_EVAL_OPTIONS,
    VLLM_OPTIONS,
    Job,
    SweepSpec,
    check_lm_eval_options,
    hub_args_for,
    make_spec,
    parse_dict_option,
    plan_lines,
)
from lm_eval_bias.sweep.runner import run_sweep
from lm_eval_bias.sweep.settings import (
    SETTINGS_HELP,
    Setting,
    effective_setting,
    lm_eval_model_args,
    parse_model_args,
    parse_seeds,
    parse_setting,
    parse_settings,
    quantize_args_of,
    split_setting,
)
from lm_eval_bias.sweep.store import (
    IDENTITY_KEYS,
    LOCK,
    MANIFEST,
    PARTIAL_SUFFIX,
    REPORT_DIR,
    SCHEMA,
    SCHEMA_VERSION,
    WEIGHTS_FILE,
    check_output,
    init_output,
    is_complete,
    normalize_run,
    write_sweep_report,
)

__all__ = [
    "BACKENDS", "DEFAULT_HUB_REPO", "IDENTITY_KEYS", "LM_EVAL_OPTIONS", "LOCK", "MANIFEST",
    "PARTIAL_SUFFIX", "REPORT_DIR", "SCHEMA", "SCHEMA_VERSION", "SETTINGS_HELP", "VLLM_OPTIONS",
    "WEIGHTS_FILE", "Job", "Setting", "SweepSpec", "check_lm_eval_options", "check_output",
    "effective_setting", "hub_args_for", "init_output", "is_complete", "lm_eval_model_args",
    "make_spec", "normalize_run", "parse_dict_option", "parse_model_args", "parse_seeds",
    "parse_setting", "parse_settings", "plan_lines", "quantize_args_of", "run_sweep",
    "split_setting", "write_sweep_report",
]
