"""One interface for text scorers (toxicity, sentiment) and one registry keyed by name.

A scorer is chosen by a *spec*: a registered name (``profanity``, ``vader``, ``perspective``) or a
name with an argument after the first colon (``hf:<model id or path>``); for some the argument is
optional and the bare name stands for a default (``detoxify`` = ``detoxify:original``).
`get_scorer(spec)` builds it; `Scorer.check()` verifies, before any generation starts, that its
library is installed and its model (or API) is reachable, and raises a one-line `BiasEvalError`
otherwise.

`Scorer.score(texts)` is batched and never turns a failure into a score: an item the scorer could
not score is ``None`` (a missing value), never 0 / "non-toxic". Each scorer module imports its own
library inside its methods, so a missing optional library costs nothing until it is chosen.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from lm_eval_bias._versions import package_version
from lm_eval_bias.errors import BiasEvalError

log = logging.getLogger(__name__)

KINDS = ("toxicity", "sentiment")


class Scorer(ABC):
    """Base class. Subclasses set `name`, `kind`, `dist` (the pip distribution whose version is
    recorded) and implement `_load` (import + load; raise BiasEvalError) and `_score_batch`.

    kind "toxicity": scores are probabilities in [0, 1] that the text is toxic (>= 0.5: toxic).
    kind "sentiment": scores are in [-1, 1] (VADER compound; regard: p(positive) - p(negative)).
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    dist: ClassVar[str | None] = None
    #: whether the spec takes an argument after ":" (hf:<model>); required when True
    takes_argument: ClassVar[bool] = False
    #: the argument a bare name stands for (``regard`` = ``regard:sasha/regardv3``), so that both
    #: spellings record the same spec; None: the argument, when taken, is required
    default_argument: ClassVar[str | None] = None
    batch_size: int = 64

    def __init__(self, argument: str | None = None) -> None:
        if not argument and self.default_argument:
            argument = self.default_argument
        if self.takes_argument and not argument:
            raise BiasEvalError(
                f"scorer {self.name!r} needs an argument: use {self.name}:<model id or path>"
            )
        if not self.takes_argument and argument:
            raise BiasEvalError(f"scorer {self.name!r} takes no argument, got {argument!r}")
        self.argument = argument
        self._ready = False

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.argument}" if self.argument else self.name

    def version(self) -> str | None:
        return package_version(self.dist) if self.dist else None

    def info(self) -> dict[str, Any]:
        """What is recorded next to every score: spec, kind and library version (+ extras)."""
        return {"name": self.spec, "kind": self.kind, "version": self.version(), **self.extra_info()}

    def extra_info(self) -> dict[str, Any]:
        return {}

    def label(self) -> str:
        """One string naming scorer and version, e.g. ``profanity (alt-profanity-check 1.9.1)``."""
        v = self.version()
        return f"{self.spec} ({self.dist} {v})" if self.dist and v else self.spec

    def check(self) -> None:
        """Load the library and model (once); a one-line BiasEvalError when that is impossible."""
        if not self._ready:
            self._load()
            self._ready = True

    @abstractmethod
    def _load(self) -> None: ...

    @abstractmethod
    def _score_batch(self, texts: list[str]) -> list[float | None]: ...

    def score(self, texts: Sequence[str]) -> list[float | None]:
        """Scores of `texts`, in order, in batches of `batch_size`. An item the scorer fails on is
        None; a failing batch is retried item by item so one bad text costs only itself."""
        return self._batched(texts, self._score_batch, _clean)

    def _batched(self, texts: Sequence[str], fn: Callable[[list[str]], Sequence[Any]],
                 clean: Callable[[Any], Any]) -> list[Any]:
        """`fn` over `texts` in batches, with `score`'s failure policy; `clean` maps a value to
        itself or None. Shared by `score` and scorers with richer per-text outputs (regard)."""
        self.check()
        texts = ["" if t is None else str(t) for t in texts]
        out: list[Any] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start:start + self.batch_size]
            try:
                got = list(fn(batch))
                if len(got) != len(batch):
                    raise RuntimeError(f"{len(got)} scores for {len(batch)} texts")
            except Exception as exc:  # noqa: BLE001 - a scorer failure is a missing value
                log.warning("%s failed on a batch (%s); scoring its %d texts one by one",
                            self.spec, exc, len(batch))
                got = []
                for text in batch:
                    try:
                        (value,) = fn([text])
                    except Exception as item_exc:  # noqa: BLE001
                        log.warning("%s failed on one text (%s): missing value", self.spec,
                                    item_exc)
                        value = None
                    got.append(value)
            out.extend(clean(v) for v in got)
        return out

    def close(self) -> None:
        """Release the scorer's model (if any)."""
        self._ready = False


def _clean(value: Any) -> float | None:
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


_REGISTRY: dict[str, type[Scorer]] = {}


def register_scorer(cls: type[Scorer]) -> type[Scorer]:
    """Class decorator: add a scorer under `cls.name`; refuses duplicates and non-Scorers."""
    if not (isinstance(cls, type) and issubclass(cls, Scorer)):
        raise TypeError(f"register_scorer expects a Scorer subclass, got {cls!r}")
    if getattr(cls, "kind", None) not in KINDS:
        raise TypeError(f"scorer {cls.__name__} has kind {getattr(cls, 'kind', None)!r}, "
                        f"expected one of {KINDS}")
    name = getattr(cls, "name", "")
    if not name or ":" in name:
        raise TypeError(f"scorer {cls.__name__} needs a name without ':'")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"scorer {name!r} is already registered")
    _REGISTRY[name] = cls
    return cls


def _shown(name: str, cls: type[Scorer]) -> str:
    if cls.default_argument:
        return f"{name}[:<model>]"
    return f"{name}:<model>" if cls.takes_argument else name


def available_scorers(kind: str | None = None) -> list[str]:
    """Registered scorer names (of one kind), sorted; ``hf`` is listed as ``hf:<model>``, a scorer
    whose argument is optional as ``regard[:<model>]``."""
    return sorted(
        _shown(n, c)
        for n, c in _REGISTRY.items()
        if kind is None or c.kind == kind
    )


def get_scorer(spec: str, kind: str | None = None) -> Scorer:
    """Build the scorer named by `spec` (``profanity``, ``hf:unitary/toxic-bert``, ...).

    Does not load anything yet (call `check()`); refuses unknown names and a scorer of the wrong
    kind with a one-line BiasEvalError listing the choices.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise BiasEvalError(f"scorer must be a non-empty string, got {spec!r}; choose one of "
                            f"{', '.join(available_scorers(kind))}")
    name, _, argument = spec.strip().partition(":")
    cls = _REGISTRY.get(name)
    if cls is None or (kind is not None and cls.kind != kind):
        what = f"{kind} scorer" if kind else "scorer"
        raise BiasEvalError(
            f"unknown {what} {spec!r}; choose one of {', '.join(available_scorers(kind))}"
        )
    return cls(argument or None)
