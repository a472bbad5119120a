"""The in-process run of `lm-eval-bias sweep`, and the only module of the sweep that imports
lm-eval: its parsers (model_args text, JSON options, the `lm_eval run` command line), its task
index and tasks (built once), `simple_evaluate` and `EvaluationTracker`, driven as `lm_eval run`
drives them, one job after another into OUT/<folder>.partial, renamed when complete."""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.sweep.plan import Job, SweepSpec
from lm_eval_bias.sweep.store import (
    PARTIAL_SUFFIX,
    WEIGHTS_FILE,
    check_output,
    fsync_dir,
    fsync_tree,
    init_output,
    is_complete,
    write_sweep_report,
)

# ----------------------------------------------------------------------------- lm-eval's parsers


def parse_key_values(text: str, what: str = "model_args") -> dict[str, Any]:
    """KEY=VALUE,KEY=VALUE text parsed as `lm_eval run` parses --model_args (values cast: "4" ->
    4, "true" -> True)."""
    from lm_eval._cli.utils import key_val_to_dict

    try:
        return key_val_to_dict(text)
    except ValueError as exc:
        raise BiasEvalError(f"{what} {text!r}: {exc}; give KEY=VALUE,KEY=VALUE") from None


def split_top_level(text: str) -> list[str]:
    """model_args text split on its top-level commas, as lm-eval splits it."""
    from lm_eval._cli.utils import split_top_level as split

    return split(text)


def try_parse_json(text: str) -> Any:
    """A JSON value as lm-eval's CLI reads one (the text itself when it is not JSON)."""
    from lm_eval._cli.utils import try_parse_json as parse

    return parse(text)


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


def _load_weights(spec: SweepSpec, base_args: dict, log: Callable[[str], None]):
    """The full-precision weights, loaded once on the sweep's device through hf-quant (quant=none,
    i.e. HFLM's own loading), as `SharedWeights`."""
    from lm_eval_bias.models.hf_quant import HFQuantLM
    from lm_eval_bias.sweep.weights import SharedWeights

    log(f"loading the full-precision weights once: {base_args['pretrained']}")
    start = time.perf_counter()
    lm = HFQuantLM.create_from_arg_obj({**base_args, "quant": "none"},
                                       {"batch_size": spec.batch_size, "device": spec.device})
    # HFQuantLM's own measure of `from_pretrained`, as a normal run records it
    weights = SharedWeights(lm.model, lm._load_seconds, log)
    del lm
    gc.collect()
    log(f"loaded in {time.perf_counter() - start:.1f} s; every setting starts from these "
        "weights, which are put back after it")
    return weights


def _prepare_weights(weights, spec: SweepSpec, base_args: dict) -> None:
    from lm_eval_bias.sweep.weights import checkpoint_files

    files = checkpoint_files(str(base_args["pretrained"]), base_args.get("revision"),
                             base_args.get("subfolder"))
    weights.prepare(files, spec.output / WEIGHTS_FILE)


def _build_lm(cfg, weights, log: Callable[[str], None]):
    from lm_eval_bias.models.hf_quant import HFQuantLM
    from lm_eval_bias.models.quant import QUANTIZERS

    extra = {"batch_size": cfg.batch_size, "max_batch_size": cfg.max_batch_size,
             "device": cfg.device}
    quant = cfg.model_args.get("quant")
    method = "none" if quant is None else str(quant).lower()
    if weights is None or QUANTIZERS.get(method).stage == "load":
        # load-time methods (bitsandbytes) quantize inside from_pretrained: load as lm_eval does,
        # with the shared weights freed meanwhile
        if weights is not None:
            weights.release()
        log(f"quant={method} quantizes while loading: loading {cfg.model_args['pretrained']}")
        return HFQuantLM.create_from_arg_obj(dict(cfg.model_args), extra)
    lm = HFQuantLM.create_from_arg_obj(
        {**cfg.model_args, "pretrained": weights.share(), "load_seconds": weights.load_seconds},
        extra)
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
        base_args = parse_key_values(spec.model_args)
        log(f"building tasks once: {', '.join(spec.tasks)}")
        tasks = _Tasks(spec.tasks, base_args, dict(spec.lm_eval_options).get("--include_path"))
        weights = None
        if any(QUANTIZERS.get(j.setting.method).stage != "load" for j in todo):
            weights = _load_weights(spec, base_args, log)
        # only now, with the tasks found and the model loaded, does the sweep write anything
        lock = init_output(spec, log)
        try:
            if weights is not None:
                _prepare_weights(weights, spec, base_args)
            ran = _run_todo(spec, todo, n_total, t0, tasks, weights, log)
        finally:
            (spec.output / WEIGHTS_FILE).unlink(missing_ok=True)  # before the lock goes
        return ran, lock
    except BaseException:
        if lock is not None:
            os.close(lock)
        raise
    finally:
        hf_logger.removeFilter(quiet)


def _run_todo(spec: SweepSpec, todo: list[Job], n_total: int, t0: float, tasks: _Tasks, weights,
              log) -> list[str]:
    durations: list[float] = []
    ran = []
    for n, job in enumerate(todo):
        if is_complete(spec.output / job.folder):  # finished by a sweep that held the lock
            continue
        # per-run average of this process's runs (skipped ones cost nothing)
        left = ("time left known after the first run" if not durations else
                f"about {_clock(sum(durations) / len(durations) * (len(todo) - n))} left")
        log(f"\n[{job.index}/{n_total}] {job.title} -> {spec.output / job.folder}   tasks: "
            f"{', '.join(spec.tasks)}   elapsed {_clock(time.monotonic() - t0)}, {left}")
        start = time.monotonic()
        _run_job(spec, job, tasks, weights, log)
        durations.append(time.monotonic() - start)
        ran.append(job.folder)
        log(f"[{job.index}/{n_total}] {job.title} done in {_clock(durations[-1])}")
    return ran


def _run_job(spec: SweepSpec, job: Job, tasks: _Tasks, weights, log) -> None:
    """One job into OUT/<folder>.partial, renamed to OUT/<folder> once complete and synced."""
    final = spec.output / job.folder
    partial = spec.output / (job.folder + PARTIAL_SUFFIX)
    cfg = _lm_eval_config(spec, job, partial)
    tasks.set_model_args(cfg.metadata)
    partial.mkdir(parents=True)
    tracker = _tracker(cfg)
    _seed_globals(cfg)
    lm = _build_lm(cfg, weights, log)
    try:
        _evaluate_into(cfg, lm, tasks, tracker, partial)
    finally:
        del lm
        gc.collect()
        _empty_device_cache(cfg.device)
    fsync_tree(partial)
    os.rename(partial, final)  # the run is complete only under its final name
    fsync_dir(spec.output)


def _empty_device_cache(device: str) -> None:
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
