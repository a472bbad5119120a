"""`export` and `verify`: the submission's content (hand-checked on the planted runs, and on two
real `lm_eval` runs of a tiny model: full precision and RTN 4-bit on two real tasks), its schema,
and that verification catches a tampered score, a tampered samples line and a tampered task
version, each with its own mismatch line; a clean submission verifies with one summary line.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli

from lm_eval_bias.analysis.runs import read_run
from lm_eval_bias.analysis.submission import (
    build_submission,
    export_submission,
    validate_schema,
    weights_digest,
)
from lm_eval_bias.analysis.verify import diff, verify_submission
from lm_eval_bias.errors import BiasEvalError

from .conftest import write_run

pytest.importorskip("jsonschema", reason="pip install 'lm-eval-bias[leaderboard]'")

TASKS = "bias_bbq_age,bias_crows_pairs_age"
LIMIT = "10"


def real_runs(tmp_path_factory, tiny_llama_dir: Path) -> tuple[Path, Path]:
    """Two real lm_eval runs (hf-quant quant=none and quant=rtn bits=4), made once per session
    (the leaderboard tests reuse them)."""
    root = tmp_path_factory.getbasetemp() / "bias-submission-runs"
    ref, w4 = root / "ref", root / "w4"
    if not (root / "done").exists():
        exe = Path(sys.executable).parent / "lm_eval"
        procs = []
        for out, quant in ((ref, "quant=none"), (w4, "quant=rtn,bits=4,group_size=32")):
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            procs.append(subprocess.Popen(  # both at once: most of the time is start-up
                [str(exe) if exe.exists() else "lm_eval", "--model", "hf-quant", "--model_args",
                 f"pretrained={tiny_llama_dir},{quant}", "--tasks", TASKS, "--limit", LIMIT,
                 "--log_samples", "--output_path", str(out), "--device", "cpu",
                 "--batch_size", "8"],
                stdout=subprocess.DEVNULL, stderr=(out / "stderr.txt").open("w")))
        for proc, out in zip(procs, (ref, w4)):
            assert proc.wait(timeout=900) == 0, (out / "stderr.txt").read_text()[-3000:]
        (root / "done").write_text("ok")
    return ref, w4


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_llama_dir):
    return real_runs(tmp_path_factory, tiny_llama_dir)


@pytest.fixture(scope="module")
def submission(runs, tmp_path_factory) -> tuple[Path, dict]:
    ref, w4 = runs
    path = tmp_path_factory.mktemp("sub") / "submission.json"
    proc = run_cli(["lm-eval-bias", "export", str(w4), "--reference", str(ref),
                    "--output", str(path)])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"wrote {path}")
    return path, json.loads(path.read_text())


def _copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _lines(m) -> list[str]:
    return [x.line() for x in m.mismatches]


# ----------------------------------------------------------------------------- planted runs


def test_planted_submission_counts(planted):
    base, other = planted
    doc = build_submission(read_run(other.out), read_run(base.out))
    assert validate_schema(doc) == []
    a = doc["tasks"]["bias_a"]["items"]["none"]
    # OTHER bias_a: biased F,T,F,T,-,-,T,T over docs 0..7 (conftest _PLANTED) -> 4 of 6 defined
    assert (a["n"], a["n_bias_defined"], a["n_biased"], a["n_invalid"]) == (8, 6, 4, 1)
    assert a["biased_rate"] == pytest.approx(4 / 6)
    # Muslim: docs 0 (F), 1 (T), 3 (T), 7 (T)
    assert a["per_group"]["Muslim"]["n_biased"] == 3 and a["per_group"]["Muslim"]["n"] == 4
    assert a["per_axis"]["Religion"]["n"] == 8
    # change vs the base: the figures test_compare.py states (bias_a: 2 u2b, 1 b2u, 6 flips)
    flips = doc["change"]["tasks"]["bias_a"]["none"]["flips"]
    assert (flips["response_flips"], flips["u2b"], flips["b2u"]) == (6, 2, 1)
    assert doc["change"]["all_tasks"]["flips"]["n_paired"] == 16
    assert doc["quantization"]["bits"] == 4 and doc["reference"]["quantization"]["method"] == "none"
    assert doc["model"]["pinned"] is False  # hub id on branch "main" without a commit sha
    assert doc["tasks"]["bias_a"]["scores"]["bias_amb,none"] == {"value": 0.25, "stderr": 0.06}
    assert doc["tasks"]["bias_a"]["scores"]["acc_amb,none"] == {"value": None, "stderr": None}
    for task, f in doc["files"]["samples"].items():
        data = other.samples[task].read_bytes()
        assert f == {"name": other.samples[task].name,
                     "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def test_local_model_needs_its_weights(tmp_path):
    run = write_run(tmp_path / "r", [{"task": "bias_a", "doc_id": 0, "pred": 0, "biased": True}],
                    model_name="/nowhere/my-model")
    with pytest.raises(BiasEvalError, match="give --weights FOLDER"):
        build_submission(read_run(run.out))


def test_weights_digest_streams_every_safetensors(tmp_path):
    (tmp_path / "a.safetensors").write_bytes(b"abc")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.safetensors").write_bytes(b"xyz")
    d = weights_digest(tmp_path)
    assert d["files"] == {"a.safetensors": hashlib.sha256(b"abc").hexdigest(),
                          "sub/b.safetensors": hashlib.sha256(b"xyz").hexdigest()}
    text = "".join(f"{k}:{v}\n" for k, v in sorted(d["files"].items()))
    assert d["sha256"] == hashlib.sha256(text.encode()).hexdigest()


def test_diff_reports_paths_and_tolerates_rounding():
    out = []
    n = diff({"a": {"b": 1.0, "c": None}, "x": 1}, {"a": {"b": 1.0 + 1e-13, "c": 0.5}, "y": 2},
             "doc", out)
    assert n == 4
    assert [m.line() for m in out] == ["doc.a.c: expected None, found 0.5",
                                       "doc.x: expected 1, found (absent)",
                                       "doc.y: expected (absent), found 2"]


# ----------------------------------------------------------------------------- real runs


def test_export_holds_what_a_leaderboard_needs(runs, submission, tiny_llama_dir):
    _, w4 = runs
    _, doc = submission
    assert validate_schema(doc) == []
    run = read_run(w4)
    assert doc["model"]["local"] and doc["model"]["pinned"]
    st = tiny_llama_dir / "model.safetensors"
    assert doc["model"]["weights"]["files"] == {
        "model.safetensors": hashlib.sha256(st.read_bytes()).hexdigest()}
    assert doc["quantization"] == run.quantization and doc["quantization"]["bits"] == 4
    assert doc["reference"]["quantization"]["method"] == "none"
    assert doc["software"]["run_lm_eval"] == run.results["lm_eval_version"]
    assert doc["generation"]["tasks"]["bias_bbq_age"]["output_type"] == "multiple_choice"
    assert doc["generation"]["limit"] == float(LIMIT)
    for task in TASKS.split(","):
        t = doc["tasks"][task]
        assert t["version"] == run.versions[task] and t["task_hash"] == run.task_hashes[task]
        path = run.samples_files[task]
        assert doc["files"]["samples"][task]["sha256"] == hashlib.sha256(
            path.read_bytes()).hexdigest()
        # per-group biased rate, recomputed here straight from the samples lines
        counts: dict[str, list[int]] = {}
        for line in path.read_text().splitlines():
            item = json.loads(line)["bias_item"]
            for g in item["groups"]:
                c = counts.setdefault(g, [0, 0])
                if item["biased"] is not None:
                    c[0] += 1
                    c[1] += int(item["biased"])
        per_group = t["items"]["none"]["per_group"]
        assert set(per_group) == set(counts)
        for g, (n_def, n_biased) in counts.items():
            assert per_group[g]["n_bias_defined"] == n_def
            assert per_group[g]["n_biased"] == n_biased
        assert t["scores"]  # lm-eval's aggregates
    assert doc["tasks"]["bias_bbq_age"]["scores"]["bias_amb,none"]["value"] == pytest.approx(
        run.results["results"]["bias_bbq_age"]["bias_amb,none"])
    assert doc["change"]["all_tasks"]["flips"]["n_paired"] == 2 * int(LIMIT)
    assert set(doc["headline"]) == {"bbq", "crows_pairs"}


def test_clean_submission_verifies_with_one_line(runs, submission):
    ref, w4 = runs
    path, _ = submission
    proc = run_cli(["lm-eval-bias", "verify", str(path), "--runs", str(w4), str(ref)])
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and "verified" in lines[0]
    assert "2 task hashes against installed tasks" in lines[0]


def test_tampered_score_is_caught(runs, submission, tmp_path):
    ref, w4 = runs
    _, doc = submission
    doc = json.loads(json.dumps(doc))
    true = doc["tasks"]["bias_bbq_age"]["scores"]["bias_disamb,none"]["value"]
    doc["tasks"]["bias_bbq_age"]["scores"]["bias_disamb,none"]["value"] = true + 0.125
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    res = verify_submission(bad, [w4, ref])
    lines = _lines(res)
    key = 'tasks.bias_bbq_age.scores["bias_disamb,none"].value'
    assert (f"{key} (recomputed from the run): expected {true + 0.125!r}, found {true!r}"
            in lines)
    assert (f"{key} (recomputed from samples with the installed aggregation): expected "
            f"{true + 0.125!r}, found {true!r}" in lines)
    assert len(lines) == 2, lines


def test_tampered_samples_line_is_caught(runs, submission, tmp_path):
    ref, w4 = runs
    path, doc = submission
    copy = _copy_run(w4, tmp_path / "w4")
    samples = read_run(copy).samples_files["bias_crows_pairs_age"]
    lines = samples.read_text().splitlines(keepends=True)
    rec = json.loads(lines[2])
    rec["bias_item"]["biased"] = not rec["bias_item"]["biased"]
    lines[2] = json.dumps(rec) + "\n"
    samples.write_text("".join(lines))
    res = verify_submission(path, [copy, ref])
    out = _lines(res)
    assert any(x.startswith("files.samples.bias_crows_pairs_age.sha256 (recomputed from the "
                            f"run): expected \"{doc['files']['samples']['bias_crows_pairs_age']['sha256']}\"")
               for x in out), out
    assert any(x.startswith("tasks.bias_crows_pairs_age.items.none.n_biased") for x in out), out
    assert any(x.startswith("change.all_tasks.flips") for x in out), out


def test_tampered_task_version_is_caught(runs, submission, tmp_path):
    ref, w4 = runs
    _, doc = submission
    doc = json.loads(json.dumps(doc))
    doc["tasks"]["bias_crows_pairs_age"]["version"] = 7.0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    out = _lines(verify_submission(bad, [w4, ref]))
    assert out == [
        "tasks.bias_crows_pairs_age.version (recomputed from the run): expected 7.0, found 2.0",
        "tasks.bias_crows_pairs_age.version (installed task): expected 7.0, found 2.0",
    ]


def test_consistent_but_foreign_task_version_is_caught(runs, tmp_path):
    """A run whose results claim another task version, exported consistently: only the installed
    task can tell."""
    _, w4 = runs
    copy = _copy_run(w4, tmp_path / "w4")
    results = read_run(copy).results_file
    data = json.loads(results.read_text())
    data["versions"]["bias_bbq_age"] = 7.0
    results.write_text(json.dumps(data))
    sub = tmp_path / "s.json"
    export_submission(copy, sub)
    out = _lines(verify_submission(sub, [copy]))
    assert out == ["tasks.bias_bbq_age.version (installed task): expected 7.0, found 2.0"]


def test_cli_lists_mismatches_and_exits_1(runs, submission, tmp_path):
    ref, w4 = runs
    _, doc = submission
    doc = json.loads(json.dumps(doc))
    del doc["files"]
    doc["schema_version"] = 3
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    proc = run_cli(["lm-eval-bias", "verify", str(bad), "--runs", str(w4), str(ref)])
    assert proc.returncode == 1
    lines = proc.stdout.strip().splitlines()
    assert lines[:2] == [
        ("MISMATCH schema at $: expected valid per submission.schema.json, found 'files' is a "
         "required property"),
        ("MISMATCH schema at $.schema_version: expected valid per submission.schema.json, found "
         "2 was expected"),
    ]
    assert lines[-1].endswith("2 mismatches (" + doc["model"]["name"] + " (rtn 4-bit))")


def test_verify_refuses_missing_reference_run(runs, submission):
    _, w4 = runs
    path, _ = submission
    proc = run_cli(["lm-eval-bias", "verify", str(path), "--runs", str(w4)])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        (f"lm-eval-bias: error: {path} was made against a reference run; give it too: --runs "
         "RUN REFERENCE")]


def test_foreign_documents_are_caught_by_the_installed_task(runs, tmp_path):
    """A run over an edited document, with its doc_hash and the task hash made consistent: the
    samples, the results and the submission agree, only the installed task can tell."""
    _, w4 = runs
    copy = _copy_run(w4, tmp_path / "w4")
    run = read_run(copy)
    samples = run.samples_files["bias_bbq_age"]
    lines = [json.loads(x) for x in samples.read_text().splitlines()]
    lines[0]["doc"]["context"] += " (edited)"
    lines[0]["doc_hash"] = hashlib.sha256(
        json.dumps(lines[0]["doc"], indent=2, ensure_ascii=False).encode()).hexdigest()
    samples.write_text("".join(json.dumps(x) + "\n" for x in lines))
    data = json.loads(run.results_file.read_text())
    data["task_hashes"]["bias_bbq_age"] = hashlib.sha256("".join(
        x["doc_hash"] + x["prompt_hash"] + x["target_hash"] for x in lines).encode()).hexdigest()
    run.results_file.write_text(json.dumps(data))
    sub = tmp_path / "s.json"
    export_submission(copy, sub)
    claimed = json.loads(sub.read_text())["tasks"]["bias_bbq_age"]["task_hash"]
    out = _lines(verify_submission(sub, [copy]))
    assert out[0] == ("tasks.bias_bbq_age samples doc_id 0 document (installed task): expected "
                      "the installed task's document, found a different document (1 of "
                      f"{LIMIT} lines differ)")
    assert out[1].startswith(f"tasks.bias_bbq_age.task_hash (recomputed from the installed task): "
                             f"expected \"{claimed}\", found ")
    assert len(out) == 2


def test_other_weights_are_caught(runs, submission, tmp_path, tiny_llama_dir):
    ref, w4 = runs
    path, doc = submission
    other = tmp_path / "weights"
    shutil.copytree(tiny_llama_dir, other)
    with (other / "model.safetensors").open("ab") as fh:
        fh.write(b"\0")
    out = _lines(verify_submission(path, [w4, ref], weights=other))
    assert len(out) == 2
    assert out[0].startswith('model.weights.files["model.safetensors"] (recomputed from the run)')
    assert out[1].startswith("model.weights.sha256 (recomputed from the run): expected "
                             f"\"{doc['model']['weights']['sha256']}\"")
