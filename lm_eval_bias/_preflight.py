"""Every refusal of the `lm_eval` command before the model loads (start-up hook, `lm_eval` only).

lm-eval 0.4.13's `simple_evaluate` builds the model first (`get_model(...).create_from_arg_obj`,
which loads the weights) and only then loads the tasks (`task_manager.load(tasks)`, which reads
every benchmark file). A missing or damaged data file was therefore found only after the model
had loaded: seconds with a tiny model, many minutes with a large one. With this package's hook
active, a wrapper of `simple_evaluate` first runs, in this order and without loading any model:

1. the output path (`_lm_eval_outputs.check_output_path`): a file where a folder is needed, a
   folder that cannot be created or written, a name over the file system's limit;
2. for `--model hf-quant`, its model_args (`models.hf_quant.check_model_args`): near misses of
   known keys (`group_sise=32`), the quantization method and its options, the method's library,
   the checkpoint location;
3. for `--model hf-quant`, a device the user asked for (`--device`, or `device:` in a `--config`
   file) that torch does not have: `cuda:0` without CUDA is refused instead of lm-eval's silent
   fall-back to the CPU (lm-eval's own default device, used when none is asked for, still falls
   back);
4. the tasks, with the same task manager `simple_evaluate` would use: this reads and checks every
   data file (presence, pinned hashes: `tasks/_data.py`). `simple_evaluate` then gets these very
   task objects instead of loading them a second time.

Each refusal is one `BiasEvalError` line (exit 2 through the error hook in `_plugin.py`).
"""

from __future__ import annotations

import functools
import inspect

from lm_eval_bias.errors import BiasEvalError

# The device the user asked for in the `lm_eval` command (None: lm-eval's default), noted when
# lm-eval builds its configuration from the command line (`note_requested_device`).
_REQUESTED = {"device": None}


def note_requested_device(namespace, yaml_config: dict | None) -> None:
    """Remember `--device` (or `device:` in the `--config` file) as given by the user: lm-eval
    fills in its default, "cuda:0", when neither is, so `simple_evaluate`'s own `device` argument
    cannot tell an explicit request from the default."""
    device = getattr(namespace, "device", None) or (yaml_config or {}).get("device")
    _REQUESTED["device"] = str(device) if device else None


def requested_device() -> str | None:
    return _REQUESTED["device"]


def check_device(device: str) -> None:
    """Refuse a device torch cannot use here; types other than cpu, cuda and mps are left to
    lm-eval."""
    import torch

    where = f"--device {device}"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise BiasEvalError(f"{where} is not a device torch knows; use cpu, cuda, cuda:N or "
                            "mps") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise BiasEvalError(f"{where}: torch sees no CUDA device here (torch "
                                f"{torch.__version__}, torch.cuda.is_available() is False); use "
                                "--device cpu, or run where CUDA is available")
        if parsed.index is not None and parsed.index >= count:
            raise BiasEvalError(f"{where}: torch sees {count} CUDA device(s) here, numbered "
                                f"0 to {count - 1}; choose one of them")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise BiasEvalError(f"{where}: the Apple MPS back-end is not available here; use "
                            "--device cpu")


def _is_hf_quant(model) -> bool:
    if isinstance(model, str):
        from lm_eval_bias._plugin import MODEL_NAMES

        return model in MODEL_NAMES
    return False


def check_model(arguments: dict) -> None:
    """Steps 2 and 3 of the module docstring (hf-quant only; other models are lm-eval's)."""
    if not _is_hf_quant(arguments.get("model")):
        return
    from lm_eval.utils import simple_parse_args_string

    from lm_eval_bias.models.hf_quant import check_model_args

    model_args = arguments.get("model_args") or {}
    if isinstance(model_args, str):
        model_args = simple_parse_args_string(model_args)
    extra = {key: arguments.get(key) for key in ("batch_size", "max_batch_size", "device")}
    check_model_args({**model_args, **{k: v for k, v in extra.items() if v is not None}})
    if requested_device() is not None:
        check_device(requested_device())


def load_tasks_first(arguments: dict) -> None:
    """Step 4: build the tasks now, with the task manager `simple_evaluate` would use (the one
    given, else one made as it makes it), and hand `simple_evaluate` the result: its own
    `task_manager.load(tasks)` call returns these task objects."""
    tasks = arguments.get("tasks")
    if not tasks:
        return  # lm-eval's own error ("No tasks specified")
    manager = arguments.get("task_manager")
    if manager is None:
        from lm_eval.tasks import TaskManager
        from lm_eval.utils import simple_parse_args_string

        model_args = arguments.get("model_args")
        metadata = (simple_parse_args_string(model_args) if isinstance(model_args, str)
                    else model_args if isinstance(model_args, dict) else {})
        manager = TaskManager(metadata=metadata | (arguments.get("metadata") or {}))
        arguments["task_manager"] = manager
    loaded = manager.load(tasks)
    original_load = manager.load

    def load(task_list):
        del manager.load  # once: back to the class's own method
        return loaded if task_list is tasks else original_load(task_list)

    manager.load = load


def preflight(arguments: dict) -> None:
    """All checks, cheapest first; `arguments` are `simple_evaluate`'s, by name."""
    from lm_eval_bias._lm_eval_outputs import check_output_path

    tracker = arguments.get("evaluation_tracker")
    if tracker is not None and getattr(tracker, "output_path", None):
        from lm_eval.loggers.evaluation_tracker import GeneralConfigTracker
        from lm_eval.utils import sanitize_model_name

        # the folder name lm-eval will use, computed as its GeneralConfigTracker does
        name = GeneralConfigTracker._get_model_name(arguments.get("model_args"))
        check_output_path(tracker.output_path, sanitize_model_name(name) if name else None)
    check_model(arguments)
    load_tasks_first(arguments)


def guard_simple_evaluate(evaluator_module) -> None:
    """Run `preflight` in `simple_evaluate`, before it builds the model."""
    original = evaluator_module.simple_evaluate
    if getattr(original, "_lm_eval_bias", False):
        return
    signature = inspect.signature(original)

    @functools.wraps(original)
    def simple_evaluate(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        arguments = {**bound.arguments}
        preflight(arguments)
        return original(**arguments)

    simple_evaluate._lm_eval_bias = True
    evaluator_module.simple_evaluate = simple_evaluate


def guard_config(config_module) -> None:
    """Note the device the user asked for when lm-eval builds its `EvaluatorConfig` from the
    command line (`note_requested_device`)."""
    config_cls = config_module.EvaluatorConfig
    original = config_cls.__dict__["from_cli"].__func__
    if getattr(original, "_lm_eval_bias", False):
        return

    @functools.wraps(original)
    def from_cli(cls, namespace):
        config = original(cls, namespace)  # lm-eval's own checks of the command line first
        used = getattr(namespace, "config", None)
        note_requested_device(namespace, cls.load_yaml_config(used) if used else None)
        return config

    from_cli._lm_eval_bias = True
    config_cls.from_cli = classmethod(from_cli)
