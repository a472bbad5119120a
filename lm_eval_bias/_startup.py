"""Start-up hook that lets the unmodified `lm_eval` command find this package.

lm-eval 0.4.13 has no plugin discovery: `--model` names resolve against its in-tree registry and
tasks come from its own folder plus one `--include_path`. The wheel installs
`lm_eval_bias_startup.pth`, whose one line imports this module at interpreter start-up. We then
wait, at the cost of one dict lookup per import, for lm-eval's own modules to load and extend them
right after (never before: registering a model before `lm_eval.models` runs hides every built-in).

Rules this module keeps: no imports beyond the standard library, never raises, and
`LM_EVAL_BIAS_NO_HOOK=1` turns it off.
"""

import os
import sys

# module imported by lm-eval -> name of the function in lm_eval_bias._plugin that extends it
_HOOKS = {
    "lm_eval.models": "register_models",
    "lm_eval.tasks.manager": "patch_task_manager",
    "lm_eval.evaluator": "preflight",
    "lm_eval.config.evaluate_config": "note_requested_device",
    "lm_eval.loggers.evaluation_tracker": "guard_output_files",
}


def _run_hook(module_name, module):
    try:
        from lm_eval_bias import _plugin

        getattr(_plugin, _HOOKS[module_name])(module)
    except Exception as exc:  # a broken hook must never break the interpreter or lm_eval
        sys.stderr.write(f"lm-eval-bias: start-up hook for {module_name} failed: {exc!r}\n")


class _HookedLoader:
    """Delegates to the real loader, then runs our hook on the freshly executed module."""

    def __init__(self, loader, module_name):
        self._loader = loader
        self._module_name = module_name

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _run_hook(self._module_name, module)

    def __getattr__(self, name):  # get_source, is_package, ... for tracebacks and pkgutil
        return getattr(self._loader, name)


class _PostImportFinder:
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _HOOKS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _HookedLoader(spec.loader, fullname)
                return spec
        return None


def install():
    if os.environ.get("LM_EVAL_BIAS_NO_HOOK", "").strip() not in ("", "0"):
        return
    if any(isinstance(f, _PostImportFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _PostImportFinder())
    for name in _HOOKS:  # imported before the hook was installed (e.g. `import` order in a REPL)
        if name in sys.modules:
            _run_hook(name, sys.modules[name])


try:
    install()
except Exception:  # pragma: no cover - start-up must never fail because of us
    pass
