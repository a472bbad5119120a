"""Writing output files so that no reader ever sees half of one."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write `data` (text as UTF-8) to a temporary file in the same folder, sync it, then rename it
    over `path`: a crash leaves the old file or none, never a partial one."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_together(folder: Path, contents: dict[str, str | bytes], what: str) -> dict[str, Path]:
    """Write several files into `folder` (keys: paths relative to it) all or none: each is written
    and synced in a staging folder inside `folder` first, and moved into place (renames, which
    need no space for data) only once every one was written. A failed write (a full disk, a file
    size limit) removes the staging folder and raises one `BiasEvalError` line; the files already
    in `folder` stay as they were, and no new file appears beside them."""
    from lm_eval_bias.errors import BiasEvalError

    folder = Path(folder)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
    try:
        try:
            for rel, data in contents.items():
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "wb") as fh:
                    fh.write(data.encode("utf-8") if isinstance(data, str) else data)
                    fh.flush()
                    os.fsync(fh.fileno())
        except OSError as exc:
            raise BiasEvalError(
                f"cannot write {what} in {folder}: {exc.strerror or exc} (while writing "
                f"{Path(exc.filename or rel).name}); nothing in {folder} was changed: free some "
                "space or choose another output folder") from None
        written = {}
        for rel in contents:
            final = folder / rel
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / rel, final)
            written[rel] = final
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)
