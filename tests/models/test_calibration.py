"""Calibration windows (`draw_windows`, hand-checked cases) and calibration text files."""

from __future__ import annotations

import hashlib
import json

import pytest

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.models.quant.calibration import (
    MAX_DRAWS_PER_WINDOW,
    draw_windows,
    load_calibration_text,
)


def _docs(*lengths: int) -> list[list[int]]:
    """Documents of the given lengths whose tokens say where they come from: 100 * doc + i."""
    return [[100 * d + i for i in range(n)] for d, n in enumerate(lengths)]


def test_a_document_one_token_longer_than_the_window_gives_its_first_tokens():
    # start = randint(0, len - length - 1) = randint(0, 0) = 0, whatever the seed
    docs = _docs(5)
    for seed in range(5):
        assert draw_windows(1, docs.__getitem__, 3, 4, seed) == [[0, 1, 2, 3]] * 3


def test_documents_not_longer_than_the_window_are_never_used():
    docs = _docs(4, 3, 50, 4)  # only document 2 is longer than 4 tokens
    windows = draw_windows(len(docs), docs.__getitem__, 20, 4, seed=3)
    assert len(windows) == 20
    for window in windows:
        assert len(window) == 4 and all(200 <= t < 250 for t in window)
        assert window == list(range(window[0], window[0] + 4))  # contiguous in the document


def test_windows_are_reproducible_from_the_seed():
    docs = _docs(300, 40, 120)
    first = draw_windows(3, docs.__getitem__, 8, 16, seed=0)
    assert first == draw_windows(3, docs.__getitem__, 8, 16, seed=0)
    assert first != draw_windows(3, docs.__getitem__, 8, 16, seed=1)


def test_a_text_too_short_for_the_window_is_an_error_not_fewer_windows():
    docs = _docs(10, 12)
    calls = []

    def tokens_of(i):
        calls.append(i)
        return docs[i]

    with pytest.raises(BiasEvalError, match=r"only 0 of 3 documents had more than 12 tokens"):
        draw_windows(2, tokens_of, 3, 12, seed=0)
    assert len(calls) == 3 * MAX_DRAWS_PER_WINDOW
    with pytest.raises(BiasEvalError, match="no documents"):
        draw_windows(0, tokens_of, 3, 12, seed=0)


def test_txt_is_one_document_and_jsonl_one_per_line(tmp_path):
    txt = tmp_path / "calib.txt"
    txt.write_text("First line.\n\nSecond paragraph.\n", encoding="utf-8")
    text = load_calibration_text(str(txt), "gptq")
    assert text.documents == ["First line.\n\nSecond paragraph.\n"]
    assert text.record == {"calib": str(txt), "calib_file_sha256":
                           hashlib.sha256(txt.read_bytes()).hexdigest()}

    jsonl = tmp_path / "calib.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": t, "id": i})
                               for i, t in enumerate(["a b", "c d e"])) + "\n\n")
    assert load_calibration_text(str(jsonl), "gptq").documents == ["a b", "c d e"]


@pytest.mark.parametrize("name,content,message", [
    ("calib.csv", b"text\nhello\n", r"expected a \.txt file"),
    ("calib.txt", b"caf\xe9", r"is not UTF-8 text \(byte 3\)"),
    ("calib.txt", b"  \n", "holds no text"),
    ("calib.jsonl", b'{"text": "ok"}\nnot json\n', "line 2 is not JSON"),
    ("calib.jsonl", b'{"body": "no text field"}\n', r"line 1 has no text field"),
])
def test_bad_calibration_files_are_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(BiasEvalError, match=message) as err:
        load_calibration_text(str(path), "gptq")
    assert "\n" not in str(err.value)


def test_an_unknown_name_that_is_no_file_is_an_error(tmp_path):
    with pytest.raises(BiasEvalError, match=r"calib=wiki2 is neither a calibration set "
                                            r"\(wikitext2, c4\) nor an existing file"):
        load_calibration_text("wiki2", "gptq")


def test_a_hub_set_offline_is_a_one_line_error_naming_the_local_way(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(BiasEvalError) as err:
        load_calibration_text("wikitext2", "gptq")
    message = str(err.value)
    assert message.startswith("quant=gptq: calib=wikitext2 needs the Salesforce/wikitext dataset "
                              "from the Hugging Face hub, which could not be loaded (")
    assert message.endswith("pass calib=PATH to a local .txt or .jsonl file")
    assert "\n" not in message
