"""Where benchmark files come from (lm_eval_bias.tasks._data): local copies, pinned downloads,
and the errors when neither works."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.tasks import _data, bbq
from lm_eval_bias.tasks._data import DataSource, benchmark_file, read_csv, read_jsonl

AGE_SHA256 = "46e805b3fc2d8cbd26eeb8e8430d98cf7b2dc9c83574ff3674e8ce4f0fca2a60"


def _one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert "\n" not in msg, msg
    return msg


@pytest.fixture
def demo_copy(tmp_path, monkeypatch) -> Path:
    """A writable copy of the shipped demo sample, used as LM_EVAL_BIAS_DATA_DIR."""
    root = tmp_path / "data"
    shutil.copytree(_data.DEMO_DATA_DIR, root)
    monkeypatch.setenv(_data.DATA_DIR_ENV, str(root))
    return root


# ---------------------------------------------------------------- local copies


def test_local_file_is_read_from_the_upstream_layout(data_dir, monkeypatch):
    monkeypatch.setenv(_data.DATA_DIR_ENV, str(data_dir))
    path = benchmark_file("bbq", "data/Age.jsonl")
    assert path == data_dir / "bbq" / "data" / "Age.jsonl"
    assert _data.sha256_of(path) == AGE_SHA256 == bbq.SOURCE.sha256["data/Age.jsonl"]


def test_local_pins_match_the_shared_copy(data_dir):
    # the pins used for downloads are the hashes of the files the tests run on
    for relpath, digest in bbq.SOURCE.sha256.items():
        assert _data.sha256_of(data_dir / "bbq" / relpath) == digest, relpath


def test_missing_local_file_names_the_file_and_both_remedies(demo_copy):
    (demo_copy / "bbq" / "data" / "Age.jsonl").unlink()
    with pytest.raises(BiasEvalError) as err:
        benchmark_file("bbq", "data/Age.jsonl")
    msg = _one_line(err.value)
    assert str(demo_copy / "bbq" / "data" / "Age.jsonl") in msg
    assert "LM_EVAL_BIAS_DATA_DIR" in msg and "bbq/data/<Category>.jsonl" in msg
    assert "go online" in msg and "raw.githubusercontent.com/nyu-mll/BBQ/bea11bd" in msg


def test_missing_local_folder_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv(_data.DATA_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(BiasEvalError) as err:
        bbq.load_bbq_docs("Age")
    msg = _one_line(err.value)
    assert "nowhere" in msg and "does not exist" in msg and "Age.jsonl" in msg


def test_optional_local_file_may_be_missing(demo_copy):
    (demo_copy / "bbq" / "supplemental" / "additional_metadata.csv").unlink()
    assert benchmark_file("bbq", "supplemental/additional_metadata.csv", optional=True) is None


# ---------------------------------------------------------------- remote (pinned) files


def test_offline_without_cache_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.delenv(_data.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv(_data.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(BiasEvalError) as err:
        bbq.load_bbq_docs("Age")
    msg = _one_line(err.value)
    assert "data/Age.jsonl" in msg and "LM_EVAL_BIAS_DATA_DIR" in msg and "go online" in msg


def test_cached_download_is_used_offline(data_dir, tmp_path, monkeypatch):
    monkeypatch.delenv(_data.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv(_data.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    cached = tmp_path / "cache" / "bbq" / bbq.SOURCE.commit / "data" / "Age.jsonl"
    cached.parent.mkdir(parents=True)
    shutil.copyfile(data_dir / "bbq" / "data" / "Age.jsonl", cached)
    assert benchmark_file("bbq", "data/Age.jsonl") == cached
    # a cached file that does not match its pin is not trusted
    cached.write_bytes(b"{}\n")
    with pytest.raises(BiasEvalError):
        benchmark_file("bbq", "data/Age.jsonl")


@pytest.fixture
def http_root(tmp_path):
    """A local HTTP server (no network needed) standing in for raw.githubusercontent.com."""
    root = tmp_path / "upstream"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_is_pinned_checked_and_cached(http_root, tmp_path, monkeypatch):
    root, base = http_root
    (root / "abc123" / "data").mkdir(parents=True)
    payload = b'{"a": 1}\n'
    (root / "abc123" / "data" / "x.jsonl").write_bytes(payload)
    (root / "abc123" / "data" / "bad.jsonl").write_bytes(b"tampered\n")
    src = DataSource(
        name="toy",
        title="Toy",
        remote_base=base + "/{commit}",
        commit="abc123",
        layout_hint="toy/data/x.jsonl",
        sha256={
            "data/x.jsonl": hashlib.sha256(payload).hexdigest(),
            "data/bad.jsonl": hashlib.sha256(b"original\n").hexdigest(),
        },
    )
    monkeypatch.delenv(_data.DATA_DIR_ENV, raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv(_data.CACHE_DIR_ENV, str(tmp_path / "cache"))

    path = benchmark_file(src, "data/x.jsonl")
    assert path == tmp_path / "cache" / "toy" / "abc123" / "data" / "x.jsonl"
    assert path.read_bytes() == payload
    (root / "abc123" / "data" / "x.jsonl").unlink()  # now served only from the cache
    assert benchmark_file(src, "data/x.jsonl") == path

    with pytest.raises(BiasEvalError) as err:
        benchmark_file(src, "data/bad.jsonl")
    assert "sha256" in _one_line(err.value)
    assert not (tmp_path / "cache" / "toy" / "abc123" / "data" / "bad.jsonl").exists()

    assert benchmark_file(src, "data/missing.csv", optional=True) is None  # HTTP 404
    with pytest.raises(BiasEvalError) as err:
        benchmark_file(src, "data/missing.csv")
    msg = _one_line(err.value)
    assert "HTTP 404" in msg and "data/missing.csv" in msg and "LM_EVAL_BIAS_DATA_DIR" in msg


def test_unreachable_remote_is_a_one_line_error(tmp_path, monkeypatch):
    src = DataSource(
        name="toy2",
        title="Toy",
        remote_base="http://127.0.0.1:9/{commit}",
        commit="c0ffee",
        layout_hint="toy2/data/x.jsonl",
    )
    monkeypatch.delenv(_data.DATA_DIR_ENV, raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv(_data.CACHE_DIR_ENV, str(tmp_path / "cache"))
    with pytest.raises(BiasEvalError) as err:
        benchmark_file(src, "data/x.jsonl")
    msg = _one_line(err.value)
    assert "cannot download" in msg and "data/x.jsonl" in msg and "go online" in msg


# ---------------------------------------------------------------- sources and readers


def test_sources_registry():
    assert _data.get_source("bbq") is bbq.SOURCE
    assert bbq.SOURCE.url("data/Age.jsonl") == (
        "https://raw.githubusercontent.com/nyu-mll/BBQ/"
        "bea11bd97d79217245b5871acd247b9d6eb24598/data/Age.jsonl"
    )
    with pytest.raises(BiasEvalError, match="known sources: .*bbq"):
        _data.get_source("nope")
    with pytest.raises(ValueError, match="already registered"):
        _data.register_source(
            DataSource(name="bbq", title="x", remote_base="x", commit="y", layout_hint="z")
        )
    with pytest.raises(TypeError):
        _data.register_source({"name": "x"})


TASKS_DIR = Path(_data.__file__).parent


def test_every_data_source_registers_itself_in_its_own_module():
    """Every task module that reads benchmark files declares its `DataSource` and registers it
    (`register_source`) itself, so that the registry names every benchmark's data; a module that
    reads another benchmark's files (perplexity: BOLD's Wikipedia text) imports that source."""
    import importlib

    declared = {}
    for path in sorted(TASKS_DIR.glob("*.py")):
        if path.name.startswith("_"):
            continue
        text = path.read_text(encoding="utf-8")
        module = importlib.import_module(f"lm_eval_bias.tasks.{path.stem}")
        held = [v for v in vars(module).values() if isinstance(v, DataSource)]
        assert "hub_file(" not in text, f"{path.name}: read a hub dataset through its DataSource"
        if "benchmark_file(" in text:
            assert held, f"{path.name} reads benchmark files but holds no DataSource"
        if "DataSource(" in text:  # declared here: registered here, under its own name
            assert text.count("DataSource(") == text.count("register_source("), path.name
            for source in held:
                assert _data.get_source(source.name) is source, (path.name, source.name)
                declared[source.name] = path.stem
        else:  # imported from the benchmark that declares it
            assert all(_data.get_source(s.name) is s for s in held), path.name
    assert sorted(declared) == sorted(_data.registered_sources()), (
        "a source registered outside its module"
    )
    # one source per benchmark that reads files (RTP's full set is the hub `datasets` split)
    assert set(declared.values()) == {
        "bbq", "biaslens", "bold", "crows_pairs", "discrim_eval", "discrim_eval_gen",
        "dt_fairness", "holistic_bias", "iat", "redditbias", "rtp", "stereoset", "toxigen_gen",
        "winobias", "winogender",
    }


def test_wrong_jsonl_columns_name_the_file_and_column(demo_copy):
    path = demo_copy / "bbq" / "data" / "Religion.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    del rows[3]["answer_info"]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(BiasEvalError) as err:
        bbq.load_bbq_docs("Religion")
    msg = _one_line(err.value)
    assert str(path) in msg and "line 4" in msg and "answer_info" in msg


def test_wrong_csv_columns_name_the_file_and_column(demo_copy):
    path = demo_copy / "bbq" / "supplemental" / "additional_metadata.csv"
    path.write_text(path.read_text().replace("target_loc", "target_location", 1))
    with pytest.raises(BiasEvalError) as err:
        bbq.load_bbq_docs("Age")
    msg = _one_line(err.value)
    assert str(path) in msg and "target_loc" in msg


def test_readers(tmp_path):
    good = tmp_path / "a.jsonl"
    good.write_text('{"x": 1}\n\n{"x": 2}\n')
    assert read_jsonl(good, ["x"]) == [{"x": 1}, {"x": 2}]
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"x": 1}\nnot json\n')
    with pytest.raises(BiasEvalError, match=r"b.jsonl:2: not a JSON line"):
        read_jsonl(bad)
    arr = tmp_path / "c.jsonl"
    arr.write_text("[1, 2]\n")
    with pytest.raises(BiasEvalError, match="JSON object"):
        read_jsonl(arr)
    csv_path = tmp_path / "d.csv"
    csv_path.write_text('a,b\n1,"two\nlines"\n')
    assert read_csv(csv_path, ["a", "b"]) == [{"a": "1", "b": "two\nlines"}]
    with pytest.raises(BiasEvalError, match="lacks column"):
        read_csv(csv_path, ["a", "c"])


def test_hub_files_offline_fail_at_once_in_one_line(tmp_path, monkeypatch):
    # HF_HUB_OFFLINE=1 / HF_DATASETS_OFFLINE=1 (conftest): no waiting for network timeouts
    import time

    from lm_eval_bias.tasks import discrim_eval, rtp

    monkeypatch.setenv(_data.DATA_DIR_ENV, str(tmp_path))
    for load, where in ((lambda: discrim_eval.load_discrim_eval_docs("implicit"),
                         "Anthropic/discrim-eval"),
                        (lambda: rtp.load_rtp_docs("full"), "allenai/real-toxicity-prompts")):
        start = time.monotonic()
        with pytest.raises(BiasEvalError) as err:
            load()
        assert time.monotonic() - start < 10
        msg = _one_line(err.value)
        assert where in msg and ("go online" in msg or "HF_HUB_OFFLINE" in msg), msg


def test_data_files_that_are_not_utf8_name_their_line(demo_copy):
    path = demo_copy / "bbq" / "data" / "Age.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[7] = lines[7].replace(b"the", b"th\xe9", 1)   # latin-1 bytes in a UTF-8 file
    path.write_bytes(b"".join(lines))
    with pytest.raises(BiasEvalError) as err:
        bbq.load_bbq_docs("Age")
    msg = _one_line(err.value)
    assert f"{path}:8: not UTF-8" in msg
    csv_path = demo_copy / "bbq" / "supplemental" / "additional_metadata.csv"
    rows = csv_path.read_bytes().split(b"\n")
    rows[3] = rows[3] + b"\xff"
    csv_path.write_bytes(b"\n".join(rows))
    with pytest.raises(BiasEvalError) as err:
        read_csv(csv_path)
    assert f"{csv_path}:4: not UTF-8" in _one_line(err.value)


# ---------------------------------------------------------------- provenance of local copies


def _cut_copy(data_dir: Path, tmp_path: Path, lines: int) -> Path:
    """A local data folder whose BBQ Age file is cut to its first `lines` lines."""
    root = tmp_path / "cut"
    (root / "bbq" / "data").mkdir(parents=True)
    src = (data_dir / "bbq" / "data" / "Age.jsonl").read_bytes().splitlines(keepends=True)
    (root / "bbq" / "data" / "Age.jsonl").write_bytes(b"".join(src[:lines]))
    return root


def test_a_cut_local_file_is_refused_against_its_pin(data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(_data, "_FILES_READ", {})
    monkeypatch.setenv(_data.DATA_DIR_ENV, str(_cut_copy(data_dir, tmp_path, 5)))
    with pytest.raises(BiasEvalError) as err:
        benchmark_file("bbq", "data/Age.jsonl")
    msg = _one_line(err.value)
    assert "Age.jsonl is not the upstream BBQ file: sha256 " in msg
    assert "pinned 46e805b3fc2d8cbd... for commit bea11bd97d79; use the unmodified file" in msg


def test_files_read_are_recorded_with_their_hash_and_origin(data_dir, monkeypatch):
    monkeypatch.setattr(_data, "_FILES_READ", {})
    monkeypatch.setenv(_data.DATA_DIR_ENV, str(data_dir))
    benchmark_file("bbq", "data/Age.jsonl")
    bbq.load_bbq_docs("Age", sample="packaged")
    read = _data.files_read()
    assert read["bbq/data/Age.jsonl"] == {"sha256": AGE_SHA256, "origin": "local",
                                          "commit": bbq.SOURCE.commit, "matches_pin": "yes"}
    sample = read["bbq/data/Age.jsonl [sample]"]
    assert sample["origin"] == "sample" and sample["matches_pin"] == "no"
    assert sample["sha256"] == _data.sha256_of(_data.DEMO_DATA_DIR / "bbq" / "data" / "Age.jsonl")


def test_a_declared_sample_folder_is_not_held_to_the_upstream_pins(demo_copy, monkeypatch):
    monkeypatch.setattr(_data, "_FILES_READ", {})
    assert (demo_copy / "bbq" / _data.SAMPLE_MARKER).is_file()
    benchmark_file("bbq", "data/Age.jsonl")
    assert _data.files_read()["bbq/data/Age.jsonl [sample]"]["origin"] == "sample"
