"""One registry of quantization methods, keyed by the `quant=` value.

A method module registers its class with `@register_quantizer("name")`; `quant/__init__.py`
imports every method module so that the registry is complete (cheap: a method imports its own
library only when it runs).
"""

from __future__ import annotations

from typing import Any

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.models.quant.base import Quantizer


class QuantizerRegistry:
    def __init__(self) -> None:
        self._classes: dict[str, type[Quantizer]] = {}

    def register(self, name: str):
        """Class decorator: register a `Quantizer` subclass under `name` and set its `name`.

        Refuses (as programming errors) a name already taken, an empty or non-str name, and a
        class that is not a Quantizer subclass.
        """
        if not isinstance(name, str) or not name.strip() or name != name.strip().lower():
            raise ValueError(f"quantizer name must be a non-empty lower-case str, got {name!r}")

        def decorator(cls):
            if not (isinstance(cls, type) and issubclass(cls, Quantizer)) or cls is Quantizer:
                raise TypeError(f"quantizer {name!r} must be a Quantizer subclass, got {cls!r}")
            if name in self._classes:
                taken = self._classes[name]
                raise ValueError(f"quantizer {name!r} is already registered "
                                 f"({taken.__module__}.{taken.__name__})")
            cls.name = name
            self._classes[name] = cls
            return cls

        return decorator

    def names(self) -> list[str]:
        """Names in registration order: `quant/__init__.py` imports the baselines (none, rtn)
        first, then the methods by library."""
        return list(self._classes)

    def option_names(self) -> set[str]:
        """Every option any registered method takes (what `HFQuantLM` pops from model_args)."""
        return {option for cls in self._classes.values() for option in cls.options}

    def get(self, name: str) -> type[Quantizer]:
        if name not in self._classes:
            raise BiasEvalError(f"unknown quantization method quant={name!r}; "
                                f"choose one of: {', '.join(self.names())}")
        return self._classes[name]

    def build(self, name: str, options: dict[str, Any]) -> Quantizer:
        """Instantiate method `name` with `options`; an option it does not take is an error."""
        cls = self.get(name)
        foreign = sorted(set(options) - set(cls.options))
        if foreign:
            given = ", ".join(f"{key}={options[key]!r}" for key in foreign)
            takes = ", ".join(cls.options) or "no options"
            raise BiasEvalError(f"quant={name} does not take {given} (it takes: {takes}); "
                                f"remove it or pick a method that uses it")
        return cls(**options)


QUANTIZERS = QuantizerRegistry()
register_quantizer = QUANTIZERS.register
