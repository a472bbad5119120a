"""Start-up file of the `lm_eval` children in tests/test_bad_input.py: loading a model fails.

tests/test_bad_input.py puts this folder first on PYTHONPATH (before tests/_netguard, whose guard
it installs too, since Python imports only the first sitecustomize it finds). Right after
transformers' `modeling_utils` is imported, `PreTrainedModel.from_pretrained` (every
`AutoModelForCausalLM.from_pretrained` ends there) is replaced by a function that appends a line
to the file named by LM_EVAL_BIAS_TEST_LOADER_MARKER and raises. A refusal that leaves no marker
happened before any model loading began.
"""

import os
import sys

try:
    import netguard

    netguard.install()
except Exception:  # noqa: BLE001,S110 - start-up must not fail because of the guard
    pass

MARKER_ENV = "LM_EVAL_BIAS_TEST_LOADER_MARKER"
TARGET = "transformers.modeling_utils"


def _trap(module) -> None:
    def from_pretrained(cls, *args, **kwargs):
        with open(os.environ[MARKER_ENV], "a", encoding="utf-8") as fh:
            fh.write(f"{cls.__name__}.from_pretrained called\n")
        raise RuntimeError("test trap: the model loader was called")

    module.PreTrainedModel.from_pretrained = classmethod(from_pretrained)


class _Loader:
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _trap(module)

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _Finder:
    def find_spec(self, fullname, path=None, target=None):
        if fullname != TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                spec.loader = _Loader(spec.loader)
                return spec
        return None


if os.environ.get(MARKER_ENV):
    sys.meta_path.insert(0, _Finder())
