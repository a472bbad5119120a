"""The bad-input table: one row per careless or hostile use of the commands (issue 14), run as a
user runs them (real `lm_eval` and `lm-eval-bias` processes), each with its exit code and the
one line it must print. The last section holds the submissions, runs and weight folders that
`export`, `verify` and `leaderboard` must not certify: real `lm_eval --model hf-quant` runs of the
tiny test model (tests/analysis/test_submission.py's pair, made once per session, and one run on
a BBQ file cut to its first 5 lines, declared a sample so that the run is allowed), exported as a
user would; each bad case changes one thing.

What `line` is matched against depends on the exit code:
- 2, a refusal: the last line of stderr (`lm-eval-bias: error: ...`); for `lm-eval-bias`,
  stderr is that one line;
- 1 (verify's mismatches) and 0: some line of stdout (verify prints `MISMATCH ...` there), with
  at most one line on stderr; an empty `line` means empty stdout and stderr.

Every row also checks, whatever the command:
- no traceback;
- nothing lost: every file of the workspace is byte-identical afterwards (runs, data, submissions,
  weights, an earlier report), and no file appears but those the row expects (`WRITES`);
- no model was loaded: the children start with tests/_fail_loader/sitecustomize.py, whose
  `from_pretrained` writes a marker and raises. A refusal without the marker happened before
  any model loading began, which is what the `lm_eval` rows measure (`_preflight.py`); `verify`
  (without --rerun) and `export` never load one.

Argument placeholders: {ws} the workspace, {bin} the folder of the console scripts, {py} this
Python, {tiny} a tiny Llama checkpoint. In `line` {ws} stands for the escaped workspace path.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest
from conftest import NETGUARD_DIR, build_tiny_llama, run_cli

from analysis.conftest import PLANTED_BASE, PLANTED_OTHER, write_run

Case = namedtuple("Case", "id argv exit_code line")

FAIL_LOADER_DIR = Path(__file__).resolve().parent / "_fail_loader"
MARKER_ENV = "LM_EVAL_BIAS_TEST_LOADER_MARKER"
ERR = "lm-eval-bias: error: "
BIAS = ["{bin}/lm-eval-bias"]
LM_EVAL = ["{bin}/lm_eval", "run", "--model", "hf-quant"]
TINY = "pretrained={tiny}"
AGE = ["--tasks", "bias_bbq_age", "--limit", "2"]
# a checkpoint folder whose path, as lm-eval names its output folder after it, is over 255 bytes
LONG_CHECKPOINT = "checkpoints-" + "x" * 200 + "/step-" + "1" * 60

# report under a file size limit, as on a full disk: writes fail with EFBIG (SIGXFSZ ignored)
FULL_DISK = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
             "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000)); "
             "from lm_eval_bias.cli import main; sys.exit(main(sys.argv[1:]))")

CASES = [
    # ---- the lm_eval command: every refusal before the model loads
    Case("lm_eval output path is a file",
         [*LM_EVAL, "--model_args", TINY, "--device", "cpu", *AGE, "--log_samples",
          "--output_path", "{ws}/a-file.txt"], 2,
         ERR + r"--output_path {ws}/a-file\.txt is a file; lm-eval needs a folder there "
               r"\(or a path ending in \.json\)"),
    Case("lm_eval output path under a file",
         [*LM_EVAL, "--model_args", TINY, "--device", "cpu", *AGE, "--log_samples",
          "--output_path", "{ws}/a-file.txt/runs"], 2,
         ERR + r"--output_path {ws}/a-file\.txt/runs: {ws}/a-file\.txt is a file, so the folder "
               r"\S+ cannot be created; choose another output path"),
    Case("lm_eval output folder is read-only",
         [*LM_EVAL, "--model_args", TINY, "--device", "cpu", *AGE, "--log_samples",
          "--output_path", "{ws}/read-only/out"], 2,
         ERR + r"--output_path {ws}/read-only/out: {ws}/read-only is not writable, so lm-eval "
               r"could not save the results; choose another output path"),
    Case("lm_eval output file name over 255 bytes",
         [*LM_EVAL, "--model_args", "pretrained={ws}/" + LONG_CHECKPOINT, "--device", "cpu",
          *AGE, "--log_samples", "--output_path", "{ws}/out-long"], 2,
         ERR + r"--output_path {ws}/out-long: lm-eval would name a file or folder .* bytes; "
               r"this file system allows 255\); use a shorter checkpoint path .*"),
    Case("lm_eval misspelt optional quantization key",
         [*LM_EVAL, "--model_args", TINY + ",quant=rtn,bits=4,group_sise=32", "--device", "cpu",
          *AGE], 2,
         ERR + r"hf-quant: unknown model_args key group_sise=32; did you mean group_size\?"),
    Case("lm_eval unknown quantization method",
         [*LM_EVAL, "--model_args", TINY + ",quant=rtm", "--device", "cpu", *AGE], 2,
         ERR + r"unknown quantization method quant='rtm'; choose one of: .*"),
    Case("lm_eval --device cuda:0 without CUDA",
         [*LM_EVAL, "--model_args", TINY, "--device", "cuda:0", *AGE], 2,
         ERR + r"--device cuda:0: torch sees no CUDA device here \(torch .*, "
               r"torch\.cuda\.is_available\(\) is False\); use --device cpu, or run where CUDA "
               r"is available"),
    Case("lm_eval BBQ data file cut to 5 lines",
         ["env", "LM_EVAL_BIAS_DATA_DIR={ws}/data-cut", *LM_EVAL, "--model_args", TINY,
          "--device", "cpu", *AGE], 2,
         ERR + r"{ws}/data-cut/bbq/data/Age\.jsonl is not the upstream BBQ file: sha256 \w+\.\.\., "
               r"pinned \w+\.\.\. for commit \w+; use the unmodified file"),
    Case("lm_eval BBQ data file missing",
         ["env", "LM_EVAL_BIAS_DATA_DIR={ws}/data-missing", *LM_EVAL, "--model_args", TINY,
          "--device", "cpu", *AGE], 2,
         ERR + r"BBQ data file not found: {ws}/data-missing/bbq/data/Age\.jsonl; set "
               r"LM_EVAL_BIAS_DATA_DIR to .*"),
    Case("lm_eval bias_suite offline without a cache",
         ["env", "-u", "LM_EVAL_BIAS_DATA_DIR", "LM_EVAL_BIAS_CACHE_DIR={ws}/empty-cache",
          "HF_DATASETS_OFFLINE=1", *LM_EVAL, "--model_args", TINY, "--device", "cpu",
          "--tasks", "bias_suite", "--limit", "1"], 2,
         ERR + r"\w+ data file \S+ is not available offline \(HF_DATASETS_OFFLINE is set, nothing "
               r"cached at {ws}/empty-cache/.*"),
    # ---- outputs never land inside an input
    Case("compare --output-json over a results file",
         [*BIAS, "compare", "{ws}/base", "{ws}/other", "--output-json",
          "{ws}/base/tiny__llama/results_2025-06-01T12-00-00.000001.json"], 2,
         ERR + r".*results_2025-06-01T12-00-00\.000001\.json is inside {ws}/base, which this "
               r"command reads; write the output outside every run and submission it reads"),
    Case("compare --output-md over a samples file",
         [*BIAS, "compare", "{ws}/base", "{ws}/other", "--output-md",
          "{ws}/other/tiny__llama/samples_bias_a_2025-06-01T13-00-00.000002.jsonl"], 2,
         ERR + r".* is inside {ws}/other, which this command reads; .*"),
    Case("export --output inside the run",
         [*BIAS, "export", "{ws}/base", "--output", "{ws}/base/tiny__llama/submission.json"], 2,
         ERR + r".*submission\.json is inside {ws}/base, which this command reads; .*"),
    Case("report --output inside the reference run",
         [*BIAS, "report", "{ws}/base", "{ws}/other", "--output", "{ws}/base/report",
          "--n-boot", "100"], 2,
         ERR + r"{ws}/base/report is inside {ws}/base, which this command reads; .*"),
    Case("compare piped into a reader that leaves at once still writes both files",
         ["bash", "-c", 'set -o pipefail; "$0" "$@" | true', "{bin}/lm-eval-bias", "compare",
          "{ws}/base", "{ws}/other", "--output-json", "{ws}/piped.json", "--output-md",
          "{ws}/piped.md"], 0, ""),
    Case("report on a full disk leaves the earlier report as it was",
         ["{py}", "-c", FULL_DISK, "report", "{ws}/base", "{ws}/other", "--output",
          "{ws}/old-report", "--n-boot", "200", "--seed", "5"], 2,
         ERR + r"cannot write the report in {ws}/old-report: File too large \(while writing "
               r".*\); nothing in {ws}/old-report was changed: free some space or choose "
               r"another output folder"),
    # ---- the reader: bias_item values checked against the record's own options
    Case("reader: pred outside the options",
         [*BIAS, "compare", "{ws}/base", "{ws}/bad-pred"], 2,
         ERR + r".*samples_bias_a_\S+\.jsonl:2: .*pred must index the 3 choices.*"),
    Case("reader: probs of the wrong length",
         [*BIAS, "compare", "{ws}/base", "{ws}/bad-probs-length"], 2,
         ERR + r".*samples_bias_a_\S+\.jsonl:2: .*list of 3 numbers.*"),
    Case("reader: infinite probs",
         [*BIAS, "compare", "{ws}/base", "{ws}/bad-probs-inf"], 2,
         ERR + r".*samples_bias_a_\S+\.jsonl:2: .*probs must be finite.*"),
    Case("reader: nested groups",
         [*BIAS, "compare", "{ws}/base", "{ws}/bad-groups"], 2,
         ERR + r".*samples_bias_a_\S+\.jsonl:2: .*groups must be a flat list of strings.*"),
    # ---- the results JSON: wrongly typed keys are one line naming file and key
    *[Case(f"results JSON: {key} is a JSON {kind}",
           [*BIAS, "compare", "{ws}/base", f"{{ws}}/typed-{key}"], 2,
           ERR + rf"{{ws}}/typed-{key}/tiny__llama/results_\S+\.json: key '{key}' is a JSON "
                 rf"{kind}, lm-eval writes an object there; the file was edited or damaged, "
                 r"rerun lm_eval")
      for key, kind in (("versions", "array"), ("n-shot", "string"), ("task_hashes", "array"),
                        ("results", "string"))],
    # ---- bounded work
    Case("report --n-boot 1000000000",
         [*BIAS, "report", "{ws}/base", "{ws}/other", "--output", "{ws}/rep-huge",
          "--n-boot", "1000000000"], 2,
         ERR + r"--n-boot must be an integer from 100 to 100,000, got 1000000000"),
]

VERIFY = [*BIAS, "verify"]
EXPORT = [*BIAS, "export"]
NOT_CHECKPOINT = ERR + r"{ws}/weights-\w+ is not the checkpoint this run evaluated: config\.json "
EXPORT_DATA = r"does not match the data of the installed tasks: "
EXPORT_HINT = (r"; rerun it on the unmodified data, or export a run on a declared sample \(a SAMPLE "
               r"file in the benchmark's data folder\), which the submission marks as one")

SUBMISSION_CASES = [
    # ---- data provenance: a run on a BBQ file cut to 5 lines (no --limit), declared a sample
    Case("verify: declared-sample run, documents of the installed task",
         [*VERIFY, "{ws}/subs/cut.json", "--runs", "{ws}/cut-run"], 1,
         r"MISMATCH n-samples\.bias_bbq_age\.original \(documents of the installed task\): "
         r"expected 5, found 3680"),
    Case("verify: declared-sample run, data file sha256",
         [*VERIFY, "{ws}/subs/cut.json", "--runs", "{ws}/cut-run"], 1,
         r'MISMATCH data_files\["bbq/data/Age\.jsonl"\]\.sha256 \(read by the installed '
         r'tasks\): expected "515d9da9[0-9a-f]{56}", found "46e805b3[0-9a-f]{56}"'),
    Case("verify: a run that recorded no data",
         [*VERIFY, "{ws}/subs/nodata.json", "--runs", "{ws}/nodata-run"], 1,
         r"MISMATCH data_files \(recomputed from the installed tasks\): expected the SHA-256 of "
         r"every data file the run read, as lm-eval-bias records it, found no record in the "
         r"results JSON"),
    Case("verify: a reference run on another data file",
         [*VERIFY, "{ws}/subs/refcut.json", "--runs", "{ws}/w4", "{ws}/ref-cut"], 1,
         r'MISMATCH reference data_files\["bbq/data/Age\.jsonl"\]\.sha256 \(read by the '
         r'installed tasks\): expected "515d9da9[0-9a-f]{56}", found "46e805b3[0-9a-f]{56}"'),
    Case("export: a run on a cut file, not declared a sample",
         [*EXPORT, "{ws}/cut-undeclared", "--output", "{ws}/out/s.json"], 2,
         ERR + r"run {ws}/cut-undeclared " + EXPORT_DATA + r"n-samples\.bias_bbq_age\.original "
         r"\(documents of the installed task\): expected 5, found 3680 \(\+\d+ more\)" +
         EXPORT_HINT),
    Case("export: a run that recorded no data",
         [*EXPORT, "{ws}/nodata-run", "--output", "{ws}/out/s.json"], 2,
         ERR + r"run {ws}/nodata-run " + EXPORT_DATA + r"data_files \(recomputed from the "
         r"installed tasks\): expected the SHA-256 of every data file the run read, as "
         r"lm-eval-bias records it, found no record in the results JSON" + EXPORT_HINT),
    Case("export: a reference run on another data file",
         [*EXPORT, "{ws}/w4", "--reference", "{ws}/ref-cut", "--output", "{ws}/out/s.json"], 2,
         ERR + r"reference run {ws}/ref-cut " + EXPORT_DATA + r'reference data_files\["bbq/data/'
         r'Age\.jsonl"\]\.sha256 \(read by the installed tasks\): expected "515d9da9[0-9a-f]{56}", '
         r'found "46e805b3[0-9a-f]{56}"' + EXPORT_HINT),
    Case("export: a run on a declared sample is written, marked as one",
         [*EXPORT, "{ws}/cut-run", "--output", "{ws}/out/sample.json"], 0,
         r"wrote {ws}/out/sample\.json: \S+, 1 tasks, 1 samples files digested; data: a declared "
         r"sample \(bbq/data/Age\.jsonl\S*( \S+)*\), not the benchmark"),
    # ---- weights folders: another model's weights
    Case("export --weights: another model's folder",
         [*EXPORT, "{ws}/w4", "--weights", "{ws}/weights-other", "--output", "{ws}/out/s.json"], 2,
         NOT_CHECKPOINT + r"hidden_size: run 64, folder 32 \(\+\d more\); give the folder the "
         r"run loaded"),
    Case("verify --weights: another model's folder",
         [*VERIFY, "{ws}/subs/sub.json", "--runs", "{ws}/w4", "{ws}/ref", "--weights",
          "{ws}/weights-other"], 2, NOT_CHECKPOINT + r".*"),
    Case("export --weights: a folder with more parameters",
         [*EXPORT, "{ws}/w4", "--weights", "{ws}/weights-wide", "--output", "{ws}/out/s.json"], 2,
         NOT_CHECKPOINT + r"intermediate_size: run 128, folder 256 \(\+1 more\).*"),
    # ---- software versions
    Case("verify: software.run_transformers edited",
         [*VERIFY, "{ws}/subs/t.json", "--runs", "{ws}/w4", "{ws}/ref"], 1,
         r'MISMATCH software\.run_transformers \(recomputed from the run\): expected "4\.0\.0", '
         r'found "[0-9.]+"'),
    Case("verify: software.lm_eval_bias not a version",
         [*VERIFY, "{ws}/subs/v.json", "--runs", "{ws}/w4", "{ws}/ref"], 1,
         r"MISMATCH schema at \$\.software\.lm_eval_bias: expected valid per "
         r"submission\.schema\.json, found 'latest; rm -rf /' does not match .*"),
    Case("verify: software.lm_eval_bias newer than here",
         [*VERIFY, "{ws}/subs/n.json", "--runs", "{ws}/w4", "{ws}/ref"], 1,
         r"MISMATCH software\.lm_eval_bias: expected at most \S+, the version verifying here, "
         r"found 99\.0 \(upgrade lm-eval-bias to verify it\)"),
    # ---- deeply nested submissions
    *[Case(f"verify: submission nested {depth} deep", [*VERIFY, f"{{ws}}/subs/deep{depth}.json",
                                                       "--runs", "{ws}/w4"], 1,
           r"MISMATCH submission file: expected valid JSON, found JSON nested deeper than 64 "
           r"levels") for depth in (100_000, 500)],
    Case("leaderboard: a deeply nested submission is skipped",
         [*BIAS, "leaderboard", "{ws}/board", "--output", "{ws}/out/site"], 0,
         r"skipped +deep: not a readable JSON file \(JSON nested deeper than 64 levels\)"),
    Case("leaderboard: a deeply nested submission with its runs is skipped",
         [*BIAS, "leaderboard", "{ws}/board-runs", "--output", "{ws}/out/site2"], 0,
         r"skipped +deep: failed verification: submission file: expected valid JSON, found "
         r"JSON nested deeper than 64 levels"),
    # ---- verify --rerun arguments: refused before anything is read
    Case("verify --rerun 0", [*VERIFY, "{ws}/subs/sub.json", "--runs", "{ws}/w4", "{ws}/ref",
                              "--rerun", "0"], 2,
         ERR + r"--rerun takes a number of documents >= 1, got 0"),
    Case("verify --rerun with a negative --tolerance",
         [*VERIFY, "{ws}/subs/sub.json", "--runs", "{ws}/w4", "{ws}/ref", "--rerun", "2",
          "--tolerance", "-1"], 2, ERR + r"--tolerance takes a number >= 0, got -1\.0"),
    # ---- outputs
    Case("leaderboard --output is a file",
         [*BIAS, "leaderboard", "{ws}/board", "--output", "{ws}/out/a_file"], 2,
         ERR + r"--output {ws}/out/a_file is a file; give a folder to write index\.html into"),
    Case("export --open-llm-leaderboard inside the run",
         [*EXPORT, "{ws}/w4", "--output", "{ws}/out/s.json", "--open-llm-leaderboard",
          "{ws}/w4/oll.json"], 2,
         ERR + r"{ws}/w4/oll\.json is inside {ws}/w4, which this command reads; .*"),
]
CASES += SUBMISSION_CASES
SUBMISSION_IDS = {c.id for c in SUBMISSION_CASES}

# Files a row is meant to write (every other row writes none); a name ending in "/" is a folder
# whose files it writes. They are removed after the row, so the workspace stays as made.
WRITES = {
    "compare piped into a reader that leaves at once still writes both files":
        ("piped.json", "piped.md"),
    "export: a run on a declared sample is written, marked as one": ("out/sample.json",),
    "leaderboard: a deeply nested submission is skipped": ("out/site/",),
    "leaderboard: a deeply nested submission with its runs is skipped": ("out/site2/",),
}

_QUANT4 = {"method": "rtn", "bits": 4, "group_size": 32, "sym": False,
           "model_bytes_before": 10, "model_bytes_after": 3}
_NONE = {"method": "none", "model_bytes_before": 10, "model_bytes_after": 10}
_BAD_ITEMS = {"bad-pred": {"pred": 3}, "bad-probs-length": {"probs": [0.5, 0.5]},
              "bad-probs-inf": {"probs": [0.5, 0.5, float("inf")]},
              "bad-groups": {"groups": [["Muslim"], "Jewish"]}}
_BAD_KEYS = {"versions": ["bias_a"], "n-shot": "0", "task_hashes": [], "results": "none"}


def _symlinked_copy(src: Path, dst: Path, replace: dict[str, bytes | None]) -> None:
    """`dst` mirrors `src` through symbolic links, except the files named in `replace` (relative
    paths): written with the given bytes, or left out (None)."""
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src).as_posix()
        if path.is_dir():
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        if rel in replace:
            if replace[rel] is not None:
                (dst / rel).write_bytes(replace[rel])
        else:
            (dst / rel).symlink_to(path)


def _prepare_runs(ws: Path) -> None:
    write_run(ws / "base", PLANTED_BASE, quantization=_NONE)
    write_run(ws / "other", PLANTED_OTHER, quantization=_QUANT4, ts="2025-06-01T13-00-00.000002")
    for name, extra in _BAD_ITEMS.items():
        items = [dict(i) for i in PLANTED_OTHER]
        items[1]["bias_item_extra"] = extra
        write_run(ws / name, items, quantization=_QUANT4, ts="2025-06-01T13-00-00.000002")
    for key, value in _BAD_KEYS.items():
        files = write_run(ws / f"typed-{key}", PLANTED_OTHER, quantization=_QUANT4,
                          ts="2025-06-01T13-00-00.000002")
        results = json.loads(files.results.read_text())
        results[key] = value
        files.results.write_text(json.dumps(results))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_llama_dir, data_dir) -> dict[str, str]:
    """Everything the rows read, made once: runs (good, damaged), an earlier report, benchmark
    data with BBQ's Age file cut or missing, a read-only folder, a file where a folder goes."""
    ws = tmp_path_factory.mktemp("bad-input")
    _prepare_runs(ws)
    age = "data/Age.jsonl"
    cut = b"".join((data_dir / "bbq" / age).read_bytes().splitlines(keepends=True)[:5])
    _symlinked_copy(data_dir / "bbq", ws / "data-cut" / "bbq", {age: cut})
    _symlinked_copy(data_dir / "bbq", ws / "data-missing" / "bbq", {age: None})
    (ws / "empty-cache").mkdir()
    (ws / "a-file.txt").write_text("keep me\n")
    (ws / "read-only").mkdir()
    (ws / "read-only").chmod(0o555)
    (ws / LONG_CHECKPOINT).mkdir(parents=True)  # a real folder, each name within the limit
    shutil.copy(tiny_llama_dir / "config.json", ws / LONG_CHECKPOINT / "config.json")
    report = run_cli([*[a.replace("{bin}", str(Path(sys.executable).parent)) for a in BIAS],
                      "report", str(ws / "base"), str(ws / "other"), "--output",
                      str(ws / "old-report"), "--n-boot", "100"], timeout=300)
    assert report.returncode == 0, report.stderr[-2000:]
    yield {"ws": str(ws), "bin": str(Path(sys.executable).parent), "py": sys.executable,
           "tiny": str(tiny_llama_dir)}
    (ws / "read-only").chmod(0o755)


# ----------------------------------------------------------------------------- submissions


def _results_file(run_dir: Path) -> Path:
    (path,) = run_dir.rglob("results_*.json")
    return path


def _copy_run(src: Path, dst: Path, edit) -> Path:
    """A copy of run `src` whose results JSON is changed by `edit(results)`."""
    shutil.copytree(src, dst)
    results = _results_file(dst)
    data = json.loads(results.read_text())
    edit(data)
    results.write_text(json.dumps(data))
    return dst


def _start_sample_run(ws: Path, data_dir: Path, tiny: Path, log: Path) -> subprocess.Popen:
    """`lm_eval` on a BBQ folder whose Age file is cut to its first 5 lines, declared a sample
    (a SAMPLE file), so the run is allowed and records the file as one."""
    age = "data/Age.jsonl"
    cut = b"".join((data_dir / "bbq" / age).read_bytes().splitlines(keepends=True)[:5])
    _symlinked_copy(data_dir / "bbq", ws / "data-sample" / "bbq", {age: cut})
    (ws / "data-sample" / "bbq" / "SAMPLE").write_text("cut to 5 lines by a test\n")
    exe = Path(sys.executable).parent / "lm_eval"
    env = {**os.environ, "LM_EVAL_BIAS_DATA_DIR": str(ws / "data-sample")}
    return subprocess.Popen(
        [str(exe), "--model", "hf-quant", "--model_args", f"pretrained={tiny}", "--tasks",
         "bias_bbq_age", "--log_samples", "--output_path", str(ws / "cut-run"), "--device",
         "cpu", "--batch_size", "8"], stdout=subprocess.DEVNULL, stderr=log.open("w"), env=env)


def _write(doc: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def _deep(path: Path, depth: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"schema": ' + "[" * depth + "]" * depth + "}")
    return path


def _bad_submissions(ws: Path, subs: Path) -> None:
    """Submissions that change one thing: software versions edited, nested too deeply, made (as
    an older lm-eval-bias did, without the data check) from a run without a data record or
    against a reference run on another data file."""
    from lm_eval_bias.analysis.runs import read_run
    from lm_eval_bias.analysis.submission import build_submission

    sub = json.loads((subs / "sub.json").read_text())
    for name, key, value in (("t", "run_transformers", "4.0.0"),
                             ("v", "lm_eval_bias", "latest; rm -rf /"),
                             ("n", "lm_eval_bias", "99.0")):
        _write({**sub, "software": {**sub["software"], key: value}}, subs / f"{name}.json")
    for depth in (100_000, 500):
        _deep(subs / f"deep{depth}.json", depth)
    _write(build_submission(read_run(ws / "nodata-run")), subs / "nodata.json")
    _write(build_submission(read_run(ws / "w4"), read_run(ws / "ref-cut")), subs / "refcut.json")
    _deep(ws / "board" / "deep.json", 100_000)
    _deep(ws / "board-runs" / "deep" / "submission.json", 100_000)
    shutil.copytree(ws / "w4", ws / "board-runs" / "deep" / "run")


@pytest.fixture(scope="module")
def submission_files(workspace, tmp_path_factory, tiny_llama_dir, data_dir) -> dict[str, str]:
    """The submission rows' files in the workspace, made once: runs (a copy of the session's
    real pair; the declared-sample run; copies with their data record removed or edited),
    submissions, weight folders of other models, boards. Needs `jsonschema`."""
    pytest.importorskip("jsonschema", reason="pip install 'lm-eval-bias[leaderboard]'")
    from analysis.test_submission import real_runs

    from lm_eval_bias.analysis.submission import export_submission

    ws = Path(workspace["ws"])
    log = tmp_path_factory.mktemp("sample-run") / "lm_eval.log"
    proc = _start_sample_run(ws, data_dir, tiny_llama_dir, log)
    ref, w4 = real_runs(tmp_path_factory, tiny_llama_dir)
    shutil.copytree(ref, ws / "ref")
    shutil.copytree(w4, ws / "w4")
    cut_sha = hashlib.sha256(
        (ws / "data-sample" / "bbq" / "data" / "Age.jsonl").read_bytes()).hexdigest()
    _copy_run(ref, ws / "ref-cut", lambda r: r["data_files"]["bbq/data/Age.jsonl"].update(
        sha256=cut_sha))
    _copy_run(w4, ws / "nodata-run", lambda r: r.pop("data_files"))
    build_tiny_llama(ws / "weights-other", hidden_size=32, intermediate_size=64)
    build_tiny_llama(ws / "weights-wide", intermediate_size=256)
    (ws / "subs").mkdir()
    export_submission(ws / "w4", ws / "subs" / "sub.json", reference_path=ws / "ref")
    _bad_submissions(ws, ws / "subs")
    (ws / "out").mkdir()
    (ws / "out" / "a_file").write_text("not a folder\n")
    assert proc.wait(timeout=900) == 0, log.read_text()[-3000:]
    export_submission(ws / "cut-run", ws / "subs" / "cut.json")
    _copy_run(ws / "cut-run", ws / "cut-undeclared", lambda r: r.__setitem__("data_files", {
        k.removesuffix(" [sample]"): {**v, "origin": "local"} for k, v in r["data_files"].items()}))
    return workspace


# ----------------------------------------------------------------------------- the test


def _fill(text: str, places: dict[str, str]) -> str:
    for key, value in places.items():
        text = text.replace("{" + key + "}", value)
    return text


def _snapshot(ws: Path) -> dict[str, bytes]:
    return {p.relative_to(ws).as_posix(): p.read_bytes() for p in sorted(ws.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def _check_line(case: Case, out: str, err: str, ws: Path) -> None:
    """`line` against the last stderr line (exit 2) or a stdout line (exit 0 and 1)."""
    line = _fill(case.line, {"ws": re.escape(str(ws))})
    if case.exit_code == 2:
        last = err.splitlines()[-1] if err else ""
        assert re.fullmatch(line, last), last
        return
    assert len(err.splitlines()) <= 1, err
    if not line:
        assert not out and not err, out + err
        return
    assert any(re.fullmatch(line, x) for x in out.splitlines()), out[-3000:]


def _check_written(case: Case, ws: Path, new: list[str]) -> None:
    """Only the files the row means to write appeared; then they are removed."""
    expected = WRITES.get(case.id, ())
    assert all(any(n == w or (w.endswith("/") and n.startswith(w)) for w in expected)
               for n in new), new
    assert all(any(n == w or n.startswith(w) for n in new) for w in expected), (expected, new)
    if case.id == "compare piped into a reader that leaves at once still writes both files":
        assert json.loads((ws / "piped.json").read_text())["all_tasks"]["n_paired"] > 0
        assert (ws / "piped.md").read_text().startswith("#")
    if case.id == "export: a run on a declared sample is written, marked as one":
        data = json.loads((ws / "out" / "sample.json").read_text())["data"]
        assert data["sample"] is True and "bbq/data/Age.jsonl" in data["sample_files"]
    for name in expected:  # the workspace stays as the fixtures made it
        target = ws / name
        shutil.rmtree(target) if name.endswith("/") else target.unlink()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, workspace, tmp_path, request):
    if case.id == "lm_eval output folder is read-only" and os.geteuid() == 0:
        pytest.skip("root may write into a read-only folder, so there is nothing to refuse")
    if case.id == "lm_eval --device cuda:0 without CUDA":
        import torch

        if torch.cuda.is_available():
            pytest.skip("CUDA is available here")
    if case.id in SUBMISSION_IDS:
        request.getfixturevalue("submission_files")
    ws = Path(workspace["ws"])
    marker = tmp_path / "model-loader-called"
    env = {MARKER_ENV: str(marker), "PYTHONPATH": os.pathsep.join(
        [str(FAIL_LOADER_DIR), str(NETGUARD_DIR), os.environ.get("PYTHONPATH", "")])}
    before = _snapshot(ws)
    proc = run_cli([_fill(a, workspace) for a in case.argv], env=env, timeout=600)
    out, err = proc.stdout.strip(), proc.stderr.strip()
    assert proc.returncode == case.exit_code, (out + "\n" + err)[-3000:]
    assert "Traceback" not in out + err, (out + "\n" + err)[-3000:]
    _check_line(case, out, err, ws)
    if "{bin}/lm_eval" not in case.argv:  # lm_eval logs before our line; ours print one line
        assert len(err.splitlines()) <= 1, err
    assert not marker.exists(), f"the model loader was called: {marker.read_text()}"
    after = _snapshot(ws)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing lost
    _check_written(case, ws, sorted(set(after) - set(before)))
