"""Registration with lm-eval: the `hf-quant` model name and this package's task folder.

Called by the start-up hook (`_startup.py`) for lm-eval 0.4.13, and named by the entry points in
pyproject.toml for an lm-eval with native plugin discovery (then the hook does nothing).
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

MODEL_NAMES = {"hf-quant": "lm_eval_bias.models.hf_quant:HFQuantLM"}


def task_configs_dir() -> Path:
    """The folder of task YAMLs: inside the installed wheel, or at the top of a source checkout."""
    packaged = Path(__file__).resolve().parent / "task_configs"
    if packaged.is_dir():
        return packaged
    # Editable installs import the package from the checkout, where the YAMLs live beside it.
    return Path(__file__).resolve().parent.parent / "task_configs"


def _is_lm_eval_command() -> bool:
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    # `lm_eval` / `lm-eval` console scripts, or `python -m lm_eval` (argv[0] = lm_eval/__main__.py)
    return argv0.name in ("lm_eval", "lm-eval") or argv0.parent.name == "lm_eval"


def install_error_hook() -> None:
    """In the `lm_eval` command only: a `BiasEvalError` (bad model_args, missing data, a method
    whose library is missing...) that reaches the top prints as our one line and exits 2, as in
    `lm-eval-bias`, instead of lm-eval's traceback. Every other exception keeps Python's hook."""
    if not _is_lm_eval_command() or getattr(sys.excepthook, "lm_eval_bias", False):
        return
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        from lm_eval_bias.errors import BiasEvalError

        cause, seen = exc, set()
        while cause is not None and not isinstance(cause, BiasEvalError) and id(cause) not in seen:
            seen.add(id(cause))
            cause = cause.__cause__ or cause.__context__
        if not isinstance(cause, BiasEvalError):
            return previous(exc_type, exc, tb)
        sys.stdout.flush()
        sys.stderr.write(f"lm-eval-bias: error: {cause}\n")
        sys.stderr.flush()
        # An excepthook cannot choose the exit status (raising SystemExit here is reported as an
        # error in the hook); the interpreter is past the point where cleanup could matter.
        os._exit(2)

    hook.lm_eval_bias = True
    sys.excepthook = hook


def register_models(models_module=None) -> None:
    """Add our model names as lazy placeholders, after lm-eval registered its own."""
    from lm_eval.api import registry

    install_error_hook()

    if hasattr(registry, "load_plugins"):  # native entry-point discovery (lm-eval PR 4013)
        return
    for name, target in MODEL_NAMES.items():
        if name not in registry.model_registry:
            registry.model_registry.register(name, target=target)


def _has_native_task_plugins(manager_module) -> bool:
    # lm-eval's proposed task plugins (PR 4015) read the `lm_eval.tasks` entry-point group; 0.4.13's
    # TaskManager does not import importlib.metadata at all.
    return hasattr(manager_module, "entry_points") or hasattr(manager_module, "load_plugins")


def patch_task_manager(manager_module) -> None:
    """Index our task folder in every TaskManager: after lm-eval's built-ins, before the user's
    `--include_path`, so that a user's own task of the same name still wins."""
    if _has_native_task_plugins(manager_module):
        return
    task_manager_cls = manager_module.TaskManager
    if getattr(task_manager_cls.__init__, "_lm_eval_bias", False):
        return
    original_init = task_manager_cls.__init__

    @functools.wraps(original_init)
    def __init__(self, verbosity=None, include_path=None, include_defaults=True, metadata=None):
        ours = str(task_configs_dir())
        if include_path is None:
            user_paths = []
        elif isinstance(include_path, (list, tuple)):
            user_paths = [str(p) for p in include_path]
        else:
            user_paths = [str(include_path)]
        paths = user_paths if ours in user_paths else [ours, *user_paths]
        original_init(
            self,
            verbosity=verbosity,
            include_path=paths,
            include_defaults=include_defaults,
            metadata=metadata,
        )
        # Report what the user asked for, not our addition.
        self.include_path = include_path

    __init__._lm_eval_bias = True
    task_manager_cls.__init__ = __init__


def preflight(evaluator_module) -> None:
    """In the `lm_eval` command: every refusal before the model loads (output path, hf-quant's
    model_args and device, the tasks' data: `_preflight.py`), run by a wrapper of
    `simple_evaluate`, which lm-eval calls before it builds the model."""
    if _is_lm_eval_command():
        from lm_eval_bias._preflight import guard_simple_evaluate

        install_error_hook()  # runs before lm_eval.models is imported
        guard_simple_evaluate(evaluator_module)


def note_requested_device(config_module) -> None:
    """In the `lm_eval` command: remember whether the user asked for a device (lm-eval puts its
    default in when not), for the device check of `preflight`."""
    if _is_lm_eval_command():
        from lm_eval_bias._preflight import guard_config

        guard_config(config_module)


def guard_output_files(tracker_module) -> None:
    """In the `lm_eval` command: a results or samples file lm-eval failed to write stops the run
    with one line and exit 2, instead of lm-eval's warning and exit 0."""
    if _is_lm_eval_command():
        from lm_eval_bias._lm_eval_outputs import guard_tracker

        guard_tracker(tracker_module.EvaluationTracker)
