"""The bad-input table: one row per careless or hostile use of the commands (issue 14), run as a
user runs them (real `lm_eval` and `lm-eval-bias` processes), each with its exit code and the
one line it must print. Verify / export / leaderboard submissions have their own table in
tests/test_bad_submissions.py, with the same layout.

Every row also checks, whatever the command:
- no traceback, and for `lm-eval-bias` exactly one line on stderr;
- nothing lost: every file of the workspace is byte-identical afterwards (runs, data, an earlier
  report), and no file appears but those the row expects;
- no model was loaded: the children start with tests/_fail_loader/sitecustomize.py, whose
  `from_pretrained` writes a marker and raises. A refusal without the marker happened before
  any model loading began, which is what the `lm_eval` rows measure (`_preflight.py`).

Argument placeholders: {ws} the workspace, {bin} the folder of the console scripts, {py} this
Python, {tiny} a tiny Llama checkpoint. In `line` (a regex matched against the last line of
stderr) {ws} stands for the escaped workspace path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections import namedtuple
from pathlib import Path

import pytest
from conftest import NETGUARD_DIR, run_cli

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

# Files a row is meant to write (every other row writes none).
WRITES = {
    "compare piped into a reader that leaves at once still writes both files":
        ("piped.json", "piped.md"),
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


def _fill(text: str, places: dict[str, str]) -> str:
    for key, value in places.items():
        text = text.replace("{" + key + "}", value)
    return text


def _snapshot(ws: Path) -> dict[str, bytes]:
    return {p.relative_to(ws).as_posix(): p.read_bytes() for p in sorted(ws.rglob("*"))
            if p.is_file() and not p.is_symlink()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, workspace, tmp_path):
    if case.id == "lm_eval output folder is read-only" and os.geteuid() == 0:
        pytest.skip("root may write into a read-only folder, so there is nothing to refuse")
    if case.id == "lm_eval --device cuda:0 without CUDA":
        import torch

        if torch.cuda.is_available():
            pytest.skip("CUDA is available here")
    ws = Path(workspace["ws"])
    marker = tmp_path / "model-loader-called"
    env = {MARKER_ENV: str(marker), "PYTHONPATH": os.pathsep.join(
        [str(FAIL_LOADER_DIR), str(NETGUARD_DIR), os.environ.get("PYTHONPATH", "")])}
    before = _snapshot(ws)
    proc = run_cli([_fill(a, workspace) for a in case.argv], env=env, timeout=600)
    err = proc.stderr.strip()
    assert proc.returncode == case.exit_code, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    last = err.splitlines()[-1] if err else ""
    assert re.fullmatch(_fill(case.line, {"ws": re.escape(str(ws))}), last), last
    if "{bin}/lm_eval" not in case.argv:  # lm_eval logs before our line; ours print one line
        assert len(err.splitlines()) <= 1, err
    assert not marker.exists(), f"the model loader was called: {marker.read_text()}"
    after = _snapshot(ws)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing lost
    assert sorted(set(after) - set(before)) == sorted(WRITES.get(case.id, ()))
    if case.id in WRITES:
        assert json.loads((ws / "piped.json").read_text())["all_tasks"]["n_paired"] > 0
        assert (ws / "piped.md").read_text().startswith("#")
        for name in WRITES[case.id]:
            (ws / name).unlink()  # the workspace stays as the fixture made it
