"""`detoxify[:<model>]`: Detoxify (Unitary's `detoxify` package) as a toxicity scorer.

``<model>`` is one of Detoxify's released models, ``original`` (the default: BERT trained on the
Jigsaw Toxic Comment data), ``unbiased`` (RoBERTa, Jigsaw Unintended Bias), ``multilingual``
(XLM-R), ``original-small`` / ``unbiased-small`` (ALBERT), or the path of a checkpoint file in
Detoxify's own format (what ``Detoxify(checkpoint=...)`` loads: a dict with the training
``config`` -- architecture, tokenizer, class names -- and the model's ``state_dict``).
Score: Detoxify's ``toxicity`` output (sigmoid of the model's toxicity logit), in [0, 1].

Weights: Detoxify fetches a released model's checkpoint from its GitHub releases with torch.hub
(cached in ``<torch.hub.get_dir()>/checkpoints/``) and the architecture's config and tokenizer
(``bert-base-uncased``, ``roberta-base``, ...) from the Hugging Face hub. With ``HF_HUB_OFFLINE``
set and the checkpoint not cached, `check()` fails at once with a one-line error saying how to get
it, instead of trying the download; any other load failure is a one-line error too. The checkpoint's
SHA-256 (first 12 hex digits) is recorded, so two runs scored by different weights behind the same
name do not compare as equal.

Security: a Detoxify checkpoint is a pickle, which Detoxify loads with
``torch.load(weights_only=False)`` (its format needs it). Loading a pickle can run arbitrary code:
load only checkpoints you trust.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import urlparse

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.scorers.base import Scorer, package_version, register_scorer

DEVICE_ENV = "LM_EVAL_BIAS_SCORER_DEVICE"
OFFLINE_ENV = "HF_HUB_OFFLINE"
OUTPUT = "toxicity"


def _offline() -> bool:
    # huggingface_hub's own reading of the variable; torch.hub has no offline switch of its own
    return os.environ.get(OFFLINE_ENV, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _sha256_12(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


def _cache_path(url: str) -> Path:
    """Where torch.hub.load_state_dict_from_url keeps (and first looks for) `url`'s file."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


@register_scorer
class DetoxifyScorer(Scorer):
    name = "detoxify"
    kind = "toxicity"
    dist = "detoxify"
    takes_argument = True
    default_argument = "original"
    batch_size = 32

    def __init__(self, argument: str | None = None) -> None:
        super().__init__(argument)
        self.checkpoint: Path | None = None
        self.checkpoint_sha: str | None = None
        self.class_names: list[str] | None = None

    def _resolve(self, model_urls: dict[str, str]) -> tuple[Path | None, str | None]:
        """(checkpoint file to load, or None to let Detoxify download; download URL or None)."""
        arg = self.argument or ""
        if arg in model_urls:
            url = model_urls[arg]
            cached = _cache_path(url)
            if cached.is_file():
                return cached, url
            if _offline():
                raise BiasEvalError(
                    f"toxicity scorer {self.spec!r}: Detoxify's checkpoint {cached.name} is not "
                    f"in the torch hub cache ({cached.parent}) and {OFFLINE_ENV} is set; go online "
                    f"once (unset {OFFLINE_ENV}) to download it, put {url} there, or give a local "
                    "checkpoint: detoxify:/path/to/checkpoint.ckpt"
                )
            return None, url
        path = Path(arg).expanduser()
        if not path.is_file():
            raise BiasEvalError(
                f"toxicity scorer {self.spec!r}: {arg!r} is neither a Detoxify model "
                f"({', '.join(model_urls)}) nor a checkpoint file"
            )
        return path, None

    def _load(self) -> None:
        try:
            from detoxify.detoxify import MODEL_URLS, Detoxify
        except ImportError:
            raise BiasEvalError(
                f"toxicity scorer {self.spec!r} needs detoxify: pip install 'detoxify>=0.5' "
                "(or lm-eval-bias[detoxify])"
            ) from None
        checkpoint, url = self._resolve(dict(MODEL_URLS))
        device = os.environ.get(DEVICE_ENV, "").strip() or "cpu"
        try:
            if checkpoint is not None:
                model = Detoxify(checkpoint=str(checkpoint), device=device)
            else:  # online, not cached yet: Detoxify downloads into the torch hub cache
                model = Detoxify(model_type=self.argument, device=device)
        except Exception as exc:  # noqa: BLE001 - download, hub, pickle and state-dict errors
            raise BiasEvalError(
                f"toxicity scorer {self.spec!r}: cannot load Detoxify "
                f"{str(checkpoint or url)!r} ({_first_line(exc)}); its base model's config and "
                f"tokenizer come from the Hugging Face hub: go online once (unset {OFFLINE_ENV}) "
                "or give a local checkpoint: detoxify:/path/to/checkpoint.ckpt"
            ) from None
        if OUTPUT not in model.class_names:
            raise BiasEvalError(
                f"toxicity scorer {self.spec!r}: the checkpoint has no {OUTPUT!r} output "
                f"(classes: {', '.join(model.class_names)})"
            )
        if checkpoint is None:
            checkpoint = _cache_path(url)
        self.checkpoint = checkpoint
        self.checkpoint_sha = _sha256_12(checkpoint) if checkpoint.is_file() else None
        self.class_names = list(model.class_names)
        self._model = model

    def label(self) -> str:
        """Name, detoxify version and the checkpoint's hash (other weights: another scorer)."""
        v = self.version()
        sha = f", checkpoint {self.checkpoint_sha}" if self.checkpoint_sha else ""
        return f"{self.spec} (detoxify {v}{sha})"

    def version(self) -> str | None:
        return package_version("detoxify")

    def extra_info(self) -> dict:
        return {"model": self.argument,
                "checkpoint": self.checkpoint.name if self.checkpoint else None,
                "checkpoint_sha256_12": self.checkpoint_sha, "output": OUTPUT,
                "classes": self.class_names}

    def _score_batch(self, texts: list[str]) -> list[float | None]:
        got = self._model.predict(texts)[OUTPUT]
        # Detoxify squeezes a batch of one to a bare float
        return [float(v) for v in (got if isinstance(got, list) else [got])]

    def close(self) -> None:
        self.__dict__.pop("_model", None)
        super().close()
