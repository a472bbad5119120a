"""Where a benchmark's files come from: a local copy of the upstream files, or upstream itself.

One function, `benchmark_file(source, relpath)`, returns a local path to one upstream file:

* `LM_EVAL_BIAS_DATA_DIR` set: the file is `<dir>/<source.folder>/<relpath>`, i.e. the upstream
  repository's own layout under one folder per benchmark (`<dir>/bbq/data/Age.jsonl`,
  `<dir>/bbq/supplemental/additional_metadata.csv`). Nothing is downloaded.
* otherwise: the file is downloaded once from the upstream repository at a pinned commit into
  `LM_EVAL_BIAS_CACHE_DIR` (default `~/.cache/lm_eval_bias`), checked against its pinned sha256
  where one is known, and read from there.

Why plain `urllib` and not `datasets.load_dataset(...)`/`huggingface_hub`: the hub copies of BBQ
(`heegyu/bbq`, `oskarvanderwal/bbq`, ...) are dataset loading scripts, which datasets >= 4 no longer
runs, and none carries `supplemental/additional_metadata.csv`; upstream's GitHub files are the
reference, byte-identical to the local copies, so item hashes (lm-eval's `doc_hash`) agree between
local and remote runs. We need the raw bytes to check the pinned sha256 and to parse the metadata
CSV (quoted fields with embedded newlines) ourselves, and `datasets`' json builder would add its
own cache and schema inference, and refuses every URL under `HF_DATASETS_OFFLINE=1`.

A source whose files are a Hugging Face hub dataset (`DataSource.hub_repo`, DiscrimEval's) is read
the same way: `<dir>/<source.name>/<relpath>` when present, else the hub's own download at the
pinned revision (`hub_file`).

This module holds only that mechanism: each benchmark's `DataSource` (folder name, remote base
URL, commit, pins) lives in its own task module (BBQ's: `lm_eval_bias.tasks.bbq.SOURCE`), which
registers it with `register_source` when it is imported (`tests/tasks/test_data.py` checks that
every task module that reads data does), so that `benchmark_file("<name>", "<relpath>")` finds it
by name; the module itself passes the object. The readers below parse what it returns.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from lm_eval_bias.errors import BiasEvalError

T = TypeVar("T")

DATA_DIR_ENV = "LM_EVAL_BIAS_DATA_DIR"
CACHE_DIR_ENV = "LM_EVAL_BIAS_CACHE_DIR"
DOWNLOAD_TIMEOUT_S = 60

# The small sample shipped with the package, in the same layout (`<DEMO_DATA_DIR>/bbq/...`):
# `LM_EVAL_BIAS_DATA_DIR=$(python -c "from lm_eval_bias.tasks._data import DEMO_DATA_DIR;
# print(DEMO_DATA_DIR)")` runs every BBQ task on 16 items per category.
DEMO_DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "demo"


@dataclass(frozen=True)
class DataSource:
    """One benchmark's upstream files.

    name: the key tasks use, and the folder under `LM_EVAL_BIAS_DATA_DIR` (e.g. "bbq").
    title: human name for messages (e.g. "BBQ").
    remote_base: URL prefix of the raw files at `commit`; `{commit}` is filled in.
    commit: the pinned upstream commit.
    sha256: pinned hashes of files (relpath -> hex digest); downloads are checked against them.
    layout_hint: what a local copy must contain, for error messages
        (e.g. "bbq/data/<Category>.jsonl").
    hub_repo: a Hugging Face hub dataset repository the files come from instead (`commit` is its
        revision; `hub_file`), e.g. "Anthropic/discrim-eval"; None for files at `remote_base`.
    """

    name: str
    title: str
    remote_base: str
    commit: str
    layout_hint: str
    sha256: Mapping[str, str] = field(default_factory=dict)
    hub_repo: str | None = None

    def url(self, relpath: str) -> str:
        return f"{self.remote_base.format(commit=self.commit).rstrip('/')}/{relpath}"


_SOURCES: dict[str, DataSource] = {}


def register_source(source: DataSource) -> DataSource:
    """Add a benchmark's data source; a second source under the same name is refused."""
    if not isinstance(source, DataSource):
        raise TypeError(f"register_source expects a DataSource, got {type(source).__name__}")
    if source.name in _SOURCES and _SOURCES[source.name] != source:
        raise ValueError(f"data source {source.name!r} is already registered")
    _SOURCES[source.name] = source
    return source


def registered_sources() -> dict[str, DataSource]:
    """The sources registered so far (by the task modules imported so far), by name."""
    return dict(_SOURCES)


def get_source(name: str) -> DataSource:
    try:
        return _SOURCES[name]
    except KeyError:
        known = ", ".join(sorted(_SOURCES)) or "none"
        raise BiasEvalError(
            f"unknown benchmark data source {name!r}; known sources: {known}"
        ) from None


def _how_to_provide(source: DataSource) -> str:
    return (
        f"set {DATA_DIR_ENV} to a folder containing {source.layout_hint}, "
        f"or go online to download it from {source.url('')} "
        f"(unset {DATA_DIR_ENV} and HF_DATASETS_OFFLINE)"
    )


def local_data_dir() -> Path | None:
    """The folder named by `LM_EVAL_BIAS_DATA_DIR`, or None when it is not set."""
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    value = os.environ.get(CACHE_DIR_ENV, "").strip()
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "lm_eval_bias"


def _offline() -> bool:
    # datasets' own switch: "no dataset downloads". We honour it for our plain downloads too, so
    # an offline machine fails at once instead of waiting for a network timeout.
    return os.environ.get("HF_DATASETS_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# Every benchmark file this process has read: "<source>/<relpath>" -> sha256 and origin. The
# lm_eval command writes it into the results JSON as `data_files` (`_lm_eval_outputs.py`), so a
# run says exactly which bytes it was computed from.
_FILES_READ: dict[str, dict[str, str]] = {}


def forget_files_read() -> None:
    """Start a new record (`lm-eval-bias sweep` builds its tasks once, in a longer process)."""
    _FILES_READ.clear()


def files_read() -> dict[str, dict[str, str]]:
    """Provenance of the data this process read (see `_FILES_READ`), sorted by name; without
    local paths, which differ between machines."""
    return {key: {k: v for k, v in _FILES_READ[key].items() if k != "path"}
            for key in sorted(_FILES_READ)}


# A local benchmark folder holding this file is a declared sample (the packaged BBQ demo
# sample): not checked against the upstream pins, and recorded with origin "sample".
SAMPLE_MARKER = "SAMPLE"


def record_file(src: DataSource, relpath: str, path: Path, origin: str) -> Path:
    """Hash a file once per process, refuse a file that differs from its pinned upstream hash
    (a cut or edited file would give a run on partial data that looks complete) unless it comes
    from a declared sample, and remember it."""
    key = f"{src.name}/{relpath}" + (" [sample]" if origin == "sample" else "")
    if _FILES_READ.get(key, {}).get("path") != str(path):
        digest = sha256_of(path)
        pinned = src.sha256.get(relpath)
        if pinned is not None and digest != pinned and origin != "sample":
            raise BiasEvalError(
                f"{path} is not the upstream {src.title} file: sha256 {digest[:16]}..., pinned "
                f"{pinned[:16]}... for commit {src.commit[:12]}; use the unmodified file")
        _FILES_READ[key] = {"sha256": digest, "origin": origin, "commit": src.commit,
                            "matches_pin": "yes" if pinned == digest else
                            ("no pin" if pinned is None else "no"), "path": str(path)}
    return path


def benchmark_file(
    source: str | DataSource, relpath: str, *, optional: bool = False
) -> Path | None:
    """Local path of one upstream file of a benchmark (see the module docstring).

    `optional=True`: a file that does not exist (locally, or upstream: HTTP 404) gives None instead
    of an error. Every other problem is a one-line `BiasEvalError` naming the file and both ways
    to provide it.
    """
    src = source if isinstance(source, DataSource) else get_source(source)
    if src.hub_repo is not None:
        if optional:
            raise ValueError(f"optional files are not supported for hub source {src.name!r}")
        return hub_file(src.hub_repo, relpath, src.commit, f"{src.name}/{relpath}")
    root = local_data_dir()
    if root is not None:
        path = root / src.name / relpath
        if path.is_file():
            sample = (root / src.name / SAMPLE_MARKER).is_file()
            return record_file(src, relpath, path, "sample" if sample else "local")
        if optional:
            return None
        where = path if root.is_dir() else f"{path} ({DATA_DIR_ENV}={root} does not exist)"
        raise BiasEvalError(f"{src.title} data file not found: {where}; {_how_to_provide(src)}")
    path = _download(src, relpath, optional=optional)
    return None if path is None else record_file(src, relpath, path, "download")


def _download(src: DataSource, relpath: str, *, optional: bool) -> Path | None:
    target = cache_dir() / src.name / src.commit / relpath
    pinned = src.sha256.get(relpath)
    if target.is_file() and (pinned is None or sha256_of(target) == pinned):
        return target
    url = src.url(relpath)
    if _offline():
        raise BiasEvalError(
            f"{src.title} data file {relpath} is not available offline (HF_DATASETS_OFFLINE is "
            f"set, nothing cached at {target}); {_how_to_provide(src)}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=target.name, suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp,
        ):
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                out.write(chunk)
        if pinned is not None and (got := sha256_of(tmp)) != pinned:
            raise BiasEvalError(
                f"downloaded {url} has sha256 {got}, expected {pinned} (pinned for commit "
                f"{src.commit}); retry, or {_how_to_provide(src)}"
            )
        os.replace(tmp, target)
    except urllib.error.HTTPError as exc:
        if optional and exc.code == 404:
            return None
        raise BiasEvalError(
            f"cannot download {src.title} data file {url} (HTTP {exc.code}); {_how_to_provide(src)}"
        ) from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BiasEvalError(
            f"cannot download {src.title} data file {url} ({reason}); {_how_to_provide(src)}"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


def file_cache(maxsize: int) -> Callable[[Callable[[str], T]], Callable[[str | Path], T]]:
    """Decorator of a reader `read(path: str)` that parses one file: its result is kept per
    (path, modification time, size), for the `maxsize` files read last, so that every task of a
    run parses a file once and a changed file is read again. The result is shared: do not change
    it."""

    def decorate(read: Callable[[str], T]) -> Callable[[str | Path], T]:
        @functools.lru_cache(maxsize=maxsize)
        def by_version(path: str, _mtime_ns: int, _size: int) -> T:
            return read(path)

        @functools.wraps(read)
        def cached(path: str | Path) -> T:
            stat = Path(path).stat()
            return by_version(str(path), stat.st_mtime_ns, stat.st_size)

        return cached

    return decorate


def _check_columns(path: Path, have: Sequence[str], required: Sequence[str], what: str) -> None:
    missing = [c for c in required if c not in have]
    if missing:
        raise BiasEvalError(
            f"{path}: {what} lacks column(s) {', '.join(missing)} "
            f"(has: {', '.join(have) or 'none'}); use the unmodified upstream file"
        )


def _not_utf8(path: Path, lineno: int) -> BiasEvalError:
    return BiasEvalError(
        f"{path}:{lineno}: not UTF-8 text; the file is damaged, use the unmodified upstream file"
    )


def read_jsonl(path: Path, required: Sequence[str] = ()) -> list[dict]:
    """One dict per line; every line must be a JSON object with the `required` keys."""
    rows = []
    # binary lines decoded one by one, so that a bad byte is reported on its own line
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _not_utf8(path, lineno) from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BiasEvalError(
                    f"{path}:{lineno}: not a JSON line ({exc.msg}); "
                    f"use the unmodified upstream file"
                ) from None
            if not isinstance(row, dict):
                raise BiasEvalError(
                    f"{path}:{lineno}: expected a JSON object per line; "
                    f"use the unmodified upstream file"
                )
            if required and any(c not in row for c in required):
                _check_columns(path, list(row), required, f"line {lineno}")
            rows.append(row)
    return rows


def read_csv(path: Path, required: Sequence[str] = ()) -> list[dict[str, str]]:
    """Rows of a CSV file with a header (quoted fields may contain newlines)."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, data.count(b"\n", 0, exc.start) + 1) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    _check_columns(path, list(reader.fieldnames or []), required, "the header")
    return list(reader)


def hub_file(repo_id: str, filename: str, revision: str, local_relpath: str) -> Path:
    """Local path of one file of a Hugging Face hub dataset repository.

    `LM_EVAL_BIAS_DATA_DIR/<local_relpath>` when that file exists (nothing is downloaded);
    otherwise `huggingface_hub.hf_hub_download(repo_id, filename, repo_type="dataset",
    revision=revision)` (the hub's own cache; `HF_HUB_OFFLINE=1` fails fast). Any failure is a
    one-line `BiasEvalError` naming both ways to provide the file.
    """
    root = local_data_dir()
    hub = DataSource(name=f"hub:{repo_id}", title=repo_id, remote_base="", commit=revision,
                     layout_hint=local_relpath)
    if root is not None and (root / local_relpath).is_file():
        return record_file(hub, filename, root / local_relpath, "local")
    local_hint = (
        f"{root / local_relpath}" if root is not None else f"${DATA_DIR_ENV}/{local_relpath}"
    )
    how = (
        f"put the unmodified upstream file at {local_hint}, or go online (unset HF_HUB_OFFLINE) "
        f"so it downloads from the Hugging Face hub: dataset {repo_id}, file {filename}, "
        f"revision {revision}"
    )
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import HfHubHTTPError
    except ImportError:
        raise BiasEvalError(
            f"{repo_id}/{filename} is not available locally and huggingface_hub is not installed; "
            f"pip install huggingface_hub, or {how}"
        ) from None
    failures: tuple[type[BaseException], ...] = (OSError, ValueError, HfHubHTTPError)
    try:  # huggingface_hub >= 1 talks HTTP through httpx, whose errors are not OSErrors
        import httpx

        failures += (httpx.HTTPError,)
    except ImportError:  # pragma: no cover - older huggingface_hub uses requests (OSErrors)
        pass
    try:
        path = Path(
            hf_hub_download(
                repo_id=repo_id, filename=filename, repo_type="dataset", revision=revision
            )
        )
    except failures as exc:  # offline, unreachable, gated, missing revision: all one message
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise BiasEvalError(
            f"cannot get {filename} of hub dataset {repo_id} ({type(exc).__name__}: {reason}); {how}"
        ) from None
    return record_file(hub, filename, path, "download")
