"""Submissions, runs and weight folders that must not be certified, and outputs that must not be
written: one row per case (issue 14), each with the command, its exit code and the line it must
print (2: a refusal, `lm-eval-bias: error: ...` on stderr; 1: verify's MISMATCH lines), never a
traceback.

The files come from real `lm_eval --model hf-quant` runs of the tiny test model
(tests/analysis/test_submission.py's pair, and one run on a BBQ file cut to its first 5 lines,
declared a sample so that the run is allowed), exported as a user would; each bad case changes
one thing. Commands run through `lm_eval_bias.cli.main` in this process, so any exception other
than the CLI's own refusals fails the test with its traceback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest
from analysis.test_submission import real_runs
from conftest import build_tiny_llama

from lm_eval_bias.analysis.runs import read_run
from lm_eval_bias.analysis.submission import export_submission
from lm_eval_bias.cli import main

pytest.importorskip("jsonschema", reason="pip install 'lm-eval-bias[leaderboard]'")

Case = namedtuple("Case", "id argv exit_code line")

CASES = [
    # data provenance: a run on a BBQ file cut to 5 lines (no --limit)
    Case("verify_cut_data_file", ["verify", "{cut_sub}", "--runs", "{cut_run}"], 1,
         r"^MISMATCH n-samples\.bias_bbq_age\.original \(documents of the installed task\): "
         r"expected 5, found 3680$"),
    Case("verify_cut_data_file_sha", ["verify", "{cut_sub}", "--runs", "{cut_run}"], 1,
         r'^MISMATCH data_files\["bbq/data/Age\.jsonl"\]\.sha256 \(read by the installed '
         r'tasks\): expected "515d9da9[0-9a-f]{56}", found "46e805b3[0-9a-f]{56}"$'),
    Case("verify_no_data_record", ["verify", "{nodata_sub}", "--runs", "{nodata_run}"], 1,
         r"^MISMATCH data_files \(recomputed from the installed tasks\): expected the SHA-256 of "
         r"every data file the run read, as lm-eval-bias records it, found no record in the "
         r"results JSON$"),
    # weights folders: another model's weights
    Case("export_other_weights", ["export", "{w4}", "--weights", "{other_weights}", "--output",
                                  "{out}/s.json"], 2,
         r"^lm-eval-bias: error: \S+ is not the checkpoint this run evaluated: config\.json "
         r"hidden_size: run 64, folder 32 \(\+\d more\); give the folder the run loaded$"),
    Case("verify_other_weights", ["verify", "{sub}", "--runs", "{w4}", "{ref}", "--weights",
                                  "{other_weights}"], 2,
         r"^lm-eval-bias: error: \S+ is not the checkpoint this run evaluated: config\.json "),
    Case("export_weights_more_parameters", ["export", "{w4}", "--weights", "{wide_weights}",
                                            "--output", "{out}/s.json"], 2,
         r"^lm-eval-bias: error: \S+ is not the checkpoint this run evaluated: config\.json "
         r"intermediate_size: run 128, folder 256 \(\+1 more\)"),
    # software versions
    Case("verify_software_run_transformers", ["verify", "{sub_transformers}", "--runs", "{w4}",
                                              "{ref}"], 1,
         r'^MISMATCH software\.run_transformers \(recomputed from the run\): expected "4\.0\.0", '
         r'found "[0-9.]+"$'),
    Case("verify_software_not_a_version", ["verify", "{sub_badversion}", "--runs", "{w4}",
                                           "{ref}"], 1,
         r"^MISMATCH schema at \$\.software\.lm_eval_bias: expected valid per "
         r"submission\.schema\.json, found 'latest; rm -rf /' does not match"),
    Case("verify_software_newer", ["verify", "{sub_newer}", "--runs", "{w4}", "{ref}"], 1,
         r"^MISMATCH software\.lm_eval_bias: expected at most \S+, the version verifying here, "
         r"found 99\.0 \(upgrade lm-eval-bias to verify it\)$"),
    # deeply nested submissions
    Case("verify_deeply_nested", ["verify", "{deep}", "--runs", "{w4}"], 1,
         r"^MISMATCH submission file: expected valid JSON, found JSON nested deeper than 64 "
         r"levels$"),
    Case("verify_nested_under_parser_limit", ["verify", "{deep_parsable}", "--runs", "{w4}"], 1,
         r"^MISMATCH submission file: expected valid JSON, found JSON nested deeper than 64 "
         r"levels$"),
    Case("leaderboard_deeply_nested", ["leaderboard", "{deep_board}", "--output", "{out}/site"],
         0, r"^skipped +deep: not a readable JSON file \(JSON nested deeper than 64 levels\)$"),
    Case("leaderboard_deeply_nested_with_runs", ["leaderboard", "{deep_board_runs}", "--output",
                                                 "{out}/site2"], 0,
         r"^skipped +deep: failed verification: submission file: expected valid JSON, found "
         r"JSON nested deeper than 64 levels$"),
    # verify --rerun arguments: refused before anything is read
    Case("verify_rerun_zero", ["verify", "{sub}", "--runs", "{w4}", "{ref}", "--rerun", "0"], 2,
         r"^lm-eval-bias: error: --rerun takes a number of documents >= 1, got 0$"),
    Case("verify_rerun_negative_tolerance", ["verify", "{sub}", "--runs", "{w4}", "{ref}",
                                             "--rerun", "2", "--tolerance", "-1"], 2,
         r"^lm-eval-bias: error: --tolerance takes a number >= 0, got -1\.0$"),
    # outputs
    Case("leaderboard_output_is_a_file", ["leaderboard", "{deep_board}", "--output",
                                          "{out}/a_file"], 2,
         r"^lm-eval-bias: error: --output \S+a_file is a file; give a folder to write "
         r"index\.html into$"),
    Case("export_open_llm_inside_run", ["export", "{w4}", "--output", "{out}/s.json",
                                        "--open-llm-leaderboard", "{w4}/oll.json"], 2,
         r"^lm-eval-bias: error: \S+oll\.json is inside \S+, which this command reads"),
]


def _lm_eval(args: list[str], log: Path, env: dict) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "lm_eval"
    return subprocess.Popen([str(exe) if exe.exists() else "lm_eval", *args],
                            stdout=subprocess.DEVNULL, stderr=log.open("w"), env=env)


def _cut_data_dir(data_dir: Path, root: Path) -> Path:
    """A data folder whose BBQ Age file is cut to its first 5 lines, declared a sample (so the
    run is allowed; it records the file as such)."""
    cut = root / "data"
    (cut / "bbq" / "data").mkdir(parents=True)
    shutil.copytree(data_dir / "bbq" / "supplemental", cut / "bbq" / "supplemental")
    lines = (data_dir / "bbq" / "data" / "Age.jsonl").read_text().splitlines(keepends=True)
    (cut / "bbq" / "data" / "Age.jsonl").write_text("".join(lines[:5]))
    (cut / "bbq" / "SAMPLE").write_text("cut to 5 lines by a test\n")
    return cut


def _edited(sub: Path, dst: Path, edit) -> Path:
    doc = json.loads(sub.read_text())
    edit(doc)
    dst.write_text(json.dumps(doc))
    return dst


def _deep(path: Path, depth: int) -> Path:
    path.write_text('{"schema": ' + "[" * depth + "]" * depth + "}")
    return path


def _software_cases(sub: Path, root: Path) -> dict:
    def software(key, value):
        return lambda d: d["software"].__setitem__(key, value)

    return {
        "sub_transformers": _edited(sub, root / "t.json", software("run_transformers", "4.0.0")),
        "sub_badversion": _edited(sub, root / "v.json", software("lm_eval_bias", "latest; rm -rf /")),
        "sub_newer": _edited(sub, root / "n.json", software("lm_eval_bias", "99.0")),
    }


def _boards(root: Path, w4: Path) -> dict:
    board = root / "board"
    board.mkdir()
    _deep(board / "deep.json", 100_000)
    board_runs = root / "board_runs"
    (board_runs / "deep").mkdir(parents=True)
    _deep(board_runs / "deep" / "submission.json", 100_000)
    shutil.copytree(w4, board_runs / "deep" / "run")
    return {"deep_board": board, "deep_board_runs": board_runs}


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_llama_dir, data_dir) -> dict:
    root = tmp_path_factory.mktemp("bad-submissions")
    env = {**os.environ, "LM_EVAL_BIAS_DATA_DIR": str(_cut_data_dir(data_dir, root))}
    cut_run = root / "cut_run"
    proc = _lm_eval(["--model", "hf-quant", "--model_args", f"pretrained={tiny_llama_dir}",
                     "--tasks", "bias_bbq_age", "--log_samples", "--output_path", str(cut_run),
                     "--device", "cpu", "--batch_size", "8"], root / "cut.log", env)
    ref, w4 = real_runs(tmp_path_factory, tiny_llama_dir)
    other = build_tiny_llama(root / "other", hidden_size=32, intermediate_size=64)
    wide = build_tiny_llama(root / "wide", intermediate_size=256)
    sub = root / "sub.json"
    export_submission(w4, sub, reference_path=ref)
    nodata_run = Path(shutil.copytree(w4, root / "nodata_run"))
    results = read_run(nodata_run).results_file
    results.write_text(json.dumps({k: v for k, v in json.loads(results.read_text()).items()
                                   if k != "data_files"}))
    export_submission(nodata_run, root / "nodata.json")
    assert proc.wait(timeout=900) == 0, (root / "cut.log").read_text()[-3000:]
    export_submission(cut_run, root / "cut.json")
    out = root / "out"
    out.mkdir()
    (out / "a_file").write_text("not a folder\n")
    return {"w4": w4, "ref": ref, "sub": sub, "cut_run": cut_run, "cut_sub": root / "cut.json",
            "nodata_run": nodata_run, "nodata_sub": root / "nodata.json", "other_weights": other,
            "wide_weights": wide, "out": out, "deep": _deep(root / "deep.json", 100_000),
            "deep_parsable": _deep(root / "deep2.json", 500),
            **_software_cases(sub, root), **_boards(root, w4)}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_submission(case: Case, files: dict, capsys):
    argv = [a.format(**files) for a in case.argv]
    code = main(argv)
    out, err = capsys.readouterr()
    lines = (out + err).splitlines()
    assert code == case.exit_code, "\n".join(lines[-20:])
    assert any(re.search(case.line, x) for x in lines), "\n".join(lines[-20:])
    assert "Traceback" not in out + err
    if code == 2:  # a refusal is one line
        assert len([x for x in err.splitlines() if x.startswith("lm-eval-bias: error:")]) == 1
