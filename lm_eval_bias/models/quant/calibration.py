"""Calibration text for the methods that need it (GPTQ): where it comes from, and how the token
windows are drawn from it.

`calib=` values:

| calib= | documents |
|---|---|
| wikitext2 | WikiText-2 raw, train split (hub `Salesforce/wikitext`, `wikitext-2-raw-v1`): one document, the lines joined by spaces (GPTQ's reference code) |
| c4 | the first file of C4's English train split (hub `allenai/c4`, `en/c4-train.00000-of-01024.json.gz`): one document per row; the GPTQ paper's calibration set |
| PATH.txt | a local UTF-8 text file: one document |
| PATH.jsonl | a local UTF-8 JSON-lines file: one document per line, its "text" field |

Windows are drawn as in GPTQ's reference code (`datautils.py`, Frantar et al. 2023): n times,
pick a document at random; if it has more than `length` tokens, take `length` consecutive tokens
at a random offset, otherwise pick again. Draws come from `random.Random(seed)`, so a setting is
reproducible (and recorded: name or file SHA-256, n, length, seed). Windows are tokenized without
special tokens (a window starts mid-text; no BOS is inserted).

Loading (hub, files) is here at the edge; `draw_windows` is the pure part.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lm_eval_bias.errors import BiasEvalError

# name -> (hub dataset, config or None, data_files or None, how documents are made)
HUB_SETS = {
    "wikitext2": ("Salesforce/wikitext", "wikitext-2-raw-v1", None, "joined"),
    "c4": ("allenai/c4", None, {"train": "en/c4-train.00000-of-01024.json.gz"}, "rows"),
}
# A document drawn this many times per window without one long enough ends the search: the
# calibration set is too short for the window length, which must be said, not papered over.
MAX_DRAWS_PER_WINDOW = 100


@dataclass(frozen=True)
class CalibrationText:
    """Documents to draw windows from, and what to record about where they came from."""

    documents: list[str]
    record: dict[str, Any]


def draw_windows(n_documents: int, tokens_of: Callable[[int], Sequence[int]], n: int,
                 length: int, seed: int) -> list[list[int]]:
    """`n` windows of `length` token ids, drawn as GPTQ's reference code does.

    Repeat n times: i = rng.randint(0, n_documents - 1); tokens = tokens_of(i); if
    len(tokens) > length, start = rng.randint(0, len(tokens) - length - 1) and the window is
    tokens[start:start + length]; otherwise draw i again. rng = random.Random(seed). Raises
    BiasEvalError when n * MAX_DRAWS_PER_WINDOW draws found no document long enough.
    """
    if n_documents <= 0:
        raise BiasEvalError("the calibration text has no documents")
    rng = random.Random(seed)
    windows: list[list[int]] = []
    draws = 0
    while len(windows) < n:
        if draws >= n * MAX_DRAWS_PER_WINDOW:
            raise BiasEvalError(
                f"the calibration text is too short: after {draws} random draws only "
                f"{len(windows)} of {n} documents had more than {length} tokens; give a longer "
                f"text or a smaller calib_len")
        draws += 1
        tokens = tokens_of(rng.randint(0, n_documents - 1))
        if len(tokens) <= length:
            continue
        start = rng.randint(0, len(tokens) - length - 1)
        windows.append(list(tokens[start:start + length]))
    return windows


def load_calibration_text(calib: str, method: str) -> CalibrationText:
    """The documents named by `calib=` (a name in HUB_SETS or a local .txt / .jsonl path)."""
    if calib in HUB_SETS:
        return _hub_text(calib, method)
    path = Path(calib).expanduser()
    if not path.is_file():
        raise BiasEvalError(
            f"quant={method}: calib={calib} is neither a calibration set "
            f"({', '.join(HUB_SETS)}) nor an existing file; pass calib=wikitext2 or the path "
            f"of a .txt or .jsonl file")
    if path.suffix not in (".txt", ".jsonl"):
        raise BiasEvalError(f"quant={method}: calib={calib}: expected a .txt file (one document) "
                            f"or a .jsonl file (one document per line, field \"text\")")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BiasEvalError(f"quant={method}: calib={calib} is not UTF-8 text (byte "
                            f"{error.start}); convert it to UTF-8") from None
    if path.suffix == ".txt":
        documents = [text]
    else:
        documents = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise BiasEvalError(f"quant={method}: calib={calib} line {number} is not JSON "
                                    f"({error.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise BiasEvalError(f"quant={method}: calib={calib} line {number} has no text "
                                    f"field (expected {{\"text\": \"...\"}})")
            documents.append(row["text"])
    if not any(doc.strip() for doc in documents):
        raise BiasEvalError(f"quant={method}: calib={calib} holds no text")
    return CalibrationText(documents, {"calib": str(path), "calib_file_sha256":
                                       hashlib.sha256(data).hexdigest()})


def _hub_text(name: str, method: str) -> CalibrationText:
    dataset_id, config, data_files, shape = HUB_SETS[name]
    try:
        from datasets import load_dataset

        rows = load_dataset(dataset_id, config, data_files=data_files, split="train")
    except Exception as error:  # noqa: BLE001 - offline, missing, or a hub error: one line
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BiasEvalError(
            f"quant={method}: calib={name} needs the {dataset_id} dataset from the Hugging Face "
            f"hub, which could not be loaded ({first}); run once online, or pass calib=PATH to a "
            f"local .txt or .jsonl file") from None
    texts = rows["text"]
    documents = [" ".join(texts)] if shape == "joined" else list(texts)
    record = {"calib": name, "calib_dataset": dataset_id}
    if config:
        record["calib_dataset_config"] = config
    if data_files:
        record["calib_data_files"] = data_files["train"]
    return CalibrationText(documents, record)
