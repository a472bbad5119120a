"""Logs of lm-eval's OWN built-in bias tasks are analysed (`lm_eval_bias.analysis.builtin`).

Two real `lm_eval` runs (hf-quant at full precision and RTN 3-bit) of lm-eval 0.4.13's built-in
``bbq`` and ``crows_pairs_english`` on the tiny test model, each task read from the local copy
of its data: a YAML in tmp_path ``include:``s the built-in task's own YAML and changes only the
data location (``dataset_path``/``dataset_kwargs``), so the built-in ``process_docs``,
``doc_to_text`` and ``process_results`` run unchanged. Then the records rebuilt from those logs
are checked against what lm-eval itself logged and aggregated, `compare` / `report` / `export` run
on them, and a copy in the layout of a ``--hf_hub_log_args`` details repo is read.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import lm_eval
import pytest

from lm_eval_bias.analysis.builtin import REBUILT_KEY, rebuilder_for
from lm_eval_bias.analysis.builtin import bbq as builtin_bbq
from lm_eval_bias.analysis.compare import compare_runs
from lm_eval_bias.analysis.report import build_report_from_folders
from lm_eval_bias.analysis.runs import read_run
from lm_eval_bias.analysis.submission import build_submission, validate_schema
from lm_eval_bias.analysis.verify import verify_submission
from lm_eval_bias.errors import BiasEvalError
from tests.conftest import run_cli

LIMIT = 40
BUILTIN = Path(lm_eval.__file__).parent / "tasks"
#: RTN 3-bit: 4-bit changes none of the 40 CrowS-Pairs answers of the tiny model built with the
#: repository's tokenizer (3-bit changes 1 to 3, depending on the tokenizer's training text); no
#: tried precision changes a BBQ answer (the options' lengths decide them), so BBQ's flip count is
#: checked against a recount from the logs, which is 0 here.
QUANTS = {"ref": "quant=none", "w3": "quant=rtn,bits=3,group_size=32"}


def _task_yamls(folder: Path, data_dir: Path) -> Path:
    """Built-in bbq and crows_pairs_english, with only their data location changed."""
    folder.mkdir(parents=True, exist_ok=True)
    tasks = {
        "bbq": (BUILTIN / "bbq" / "bbq_multiple_choice.yaml", "json",
                data_dir / "bbq" / "data" / "Gender_identity.jsonl"),
        "crows_pairs_english": (BUILTIN / "crows_pairs" / "crows_pairs_english.yaml", "csv",
                                data_dir / "crows_pairs" / "crows_pairs_anonymized.csv"),
    }
    for name, (base, builder, data) in tasks.items():
        (folder / f"{name}.yaml").write_text(
            f"include: {base}\ntask: {name}\ndataset_path: {builder}\ndataset_name: null\n"
            f"dataset_kwargs:\n  data_files:\n    test: {data}\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_llama_dir: Path, data_dir: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("builtin-logs")
    include = _task_yamls(root / "tasks", data_dir)
    exe = Path(sys.executable).parent / "lm_eval"
    outs, procs = {}, []
    for name, quant in QUANTS.items():
        out = root / name
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        procs.append(subprocess.Popen(  # both at once: most of the time is start-up
            [str(exe) if exe.exists() else "lm_eval", "--model", "hf-quant", "--model_args",
             f"pretrained={tiny_llama_dir},{quant}", "--tasks", "bbq,crows_pairs_english",
             "--include_path", str(include), "--limit", str(LIMIT), "--log_samples",
             "--output_path", str(out), "--device", "cpu", "--batch_size", "8"],
            stdout=subprocess.DEVNULL, stderr=(root / f"{name}.stderr").open("w"),
            env=dict(os.environ)))
        outs[name] = out
    for proc, name in zip(procs, outs):
        assert proc.wait(timeout=900) == 0, (root / f"{name}.stderr").read_text()[-3000:]
    return outs


def _samples(run_dir: Path, task: str) -> list[dict]:
    (path,) = run_dir.rglob(f"samples_{task}_*.jsonl")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _lls(sample: dict) -> list[float]:
    return [float(r[0]) for r in sample["filtered_resps"]]


def test_records_are_rebuilt_and_agree_with_lm_evals_own_scores(runs):
    for out in runs.values():
        run = read_run(out)
        assert run.rebuilt == {"bbq": "bbq", "crows_pairs_english": "crows_pairs"}
        assert run.info()["rebuilt"] == run.rebuilt
        results = run.results["results"]
        for task, metric in (("bbq", "acc"), ("crows_pairs_english", "pct_stereotype")):
            items = run.items[run.items["task"] == task]
            assert len(items) == LIMIT
            if metric == "acc":   # pred == gold is lm-eval's acc (any unknown phrasing counts)
                ours = float((items["pred"] == items["gold"]).mean())
            else:                 # biased is lm-eval's pct_stereotype
                ours = float(items["biased"].astype(float).mean())
            assert math.isclose(ours, results[task][f"{metric},none"], abs_tol=1e-12)
        bbq = run.items[run.items["task"] == "bbq"]
        assert set(bbq["context_condition"]) == {"ambig", "disambig"}
        assert bbq["unknown_choice"].eq(2).all()
        for probs in bbq["probs"]:
            assert len(probs) == 3 and math.isclose(sum(probs), 1.0, abs_tol=1e-9)


def _flips_from_logs(runs, task: str, answer) -> int:
    base, other = _samples(runs["ref"], task), _samples(runs["w3"], task)
    assert [s["doc_hash"] for s in base] == [s["doc_hash"] for s in other]
    return sum(answer(b) != answer(o) for b, o in zip(base, other))


def _bbq_answer(sample: dict) -> int:
    """lm-eval bbq's answer (first argmax of its 12 options), every unknown phrasing as one."""
    lls = _lls(sample)
    return min(lls.index(max(lls)), 2)


def test_compare_counts_the_flips_of_two_builtin_runs(runs):
    result = compare_runs(read_run(runs["ref"]), read_run(runs["w3"]))
    tasks = {t["task"]: t for t in result["tasks"]}
    assert set(tasks) == {"bbq", "crows_pairs_english"}
    expected = {
        "bbq": _flips_from_logs(runs, "bbq", _bbq_answer),
        # lm-eval's crows_pairs: stereotyped exactly when ll(sent_more) > ll(sent_less)
        "crows_pairs_english": _flips_from_logs(
            runs, "crows_pairs_english", lambda s: _lls(s)[0] > _lls(s)[1]),
    }
    for task, n in expected.items():
        assert tasks[task]["flips"]["n_paired"] == LIMIT
        assert tasks[task]["flips"]["response_flips"] == n, task
    assert expected["crows_pairs_english"] > 0  # RTN 3-bit changes answers on the tiny model
    assert "rebuilt" in result["base"] and "rebuilt" in result["other"]


def test_cli_compare_says_the_records_were_rebuilt(runs):
    proc = run_cli(["lm-eval-bias", "compare", str(runs["ref"]), str(runs["w3"])])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("records rebuilt from lm-eval's built-in task logs "
                             "(bbq, crows_pairs_english)") == 2


def test_report_reads_builtin_runs_and_says_so(runs):
    report = build_report_from_folders([runs["ref"], runs["w3"]], n_boot=100)
    assert sum("records rebuilt" in n for n in report["notes"]) == 2
    bbq = next(t for t in report["tasks"] if t["task"] == "bbq")
    rows = {r["metric"]: r for r in bbq["scores"] if r["source"] == "items"}
    for cond, name in (("c0", "ref"), ("c1", "w3")):
        theirs = read_run(runs[name]).results["results"]["bbq"]
        for ours, metric in (("accuracy", "acc"), ("acc_amb", "accuracy_amb"),
                             ("acc_disamb", "accuracy_disamb")):
            assert math.isclose(rows[ours]["values"][cond]["estimate"],
                                theirs[f"{metric},none"], abs_tol=1e-12), (cond, ours)


def test_export_marks_rebuilt_records_and_verify_checks_the_mark(runs, tmp_path):
    """The submission of runs whose records were rebuilt says so, per task (``rebuilt_from``, as
    the rebuilt records name it), for the run and its reference; verify recomputes the mark from
    the runs, so a submission that drops it is caught. (The installed-task checks are left out:
    lm-eval's own bbq and crows_pairs_english read their data from the hub, offline here, while
    these runs read local copies.)"""
    sub = tmp_path / "sub.json"
    proc = run_cli(["lm-eval-bias", "export", str(runs["w3"]), "--reference", str(runs["ref"]),
                    "--output", str(sub)])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("; records rebuilt from lm-eval built-in task logs: bbq, "
                                        "crows_pairs_english"), proc.stdout
    assert proc.stderr == ""
    doc = json.loads(sub.read_text(encoding="utf-8"))
    assert validate_schema(doc) == []
    marks = {"bbq": "lm-eval:bbq", "crows_pairs_english": "lm-eval:crows_pairs"}
    for tasks in (doc["tasks"], doc["reference"]["tasks"]):
        assert {t: v["rebuilt_from"] for t, v in tasks.items()} == marks
    for task, mark in marks.items():  # the mark is what every rebuilt record carries
        rebuilder = rebuilder_for(task)
        assert {rebuilder.rebuild(x)[REBUILT_KEY] for x in _samples(runs["w3"], task)} == {mark}
    res = verify_submission(sub, [runs["w3"], runs["ref"]], installed=False)
    assert res.ok, [m.line() for m in res.mismatches]
    assert "records rebuilt from lm-eval built-in task logs: bbq, crows_pairs_english" in \
        res.summary()
    doc["tasks"]["bbq"]["rebuilt_from"] = None
    doc["reference"]["tasks"]["crows_pairs_english"]["rebuilt_from"] = None
    bad = tmp_path / "unmarked.json"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    found = verify_submission(bad, [runs["w3"], runs["ref"]], installed=False).mismatches
    assert [m.line() for m in found] == [
        'tasks.bbq.rebuilt_from (recomputed from the run): expected None, found "lm-eval:bbq"',
        ("reference.tasks.crows_pairs_english.rebuilt_from (recomputed from the run): expected "
         'None, found "lm-eval:crows_pairs"')]


def test_a_submission_of_our_own_tasks_is_not_marked_rebuilt(planted):
    base, other = planted
    doc = build_submission(read_run(other.out), read_run(base.out))
    assert {t["rebuilt_from"] for t in doc["tasks"].values()} == {None}
    assert {t["rebuilt_from"] for t in doc["reference"]["tasks"].values()} == {None}


# ----------------------------------------------------------------------------- refusals


def test_a_log_whose_logged_acc_disagrees_is_refused(runs, tmp_path):
    """An edited answer (another option made most likely) with lm-eval's logged acc left as it
    was: the line is not what lm-eval's bbq computes, so it is refused, naming the line."""
    out = tmp_path / "edited"
    shutil.copytree(runs["ref"], out)
    (path,) = out.rglob("samples_bbq_*.jsonl")
    lines = path.read_text(encoding="utf-8").splitlines()
    sample = json.loads(lines[2])
    gold = builtin_bbq.rebuild(sample)["gold"]   # 0, 1: the named answers; 2: "unknown"
    if sample["acc"] == 1.0:   # make a named option that is not the gold answer most likely
        flipped = 0 if gold != 0 else 1
    else:                      # make the gold answer most likely (option 2: an "unknown" wording)
        flipped = gold
    top = max(_lls(sample))
    sample["filtered_resps"][flipped][0] = str(top + 1.0)
    lines[2] = json.dumps(sample)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(BiasEvalError, match=r":3: cannot rebuild .*\(lm-eval logged acc=") as e:
        read_run(out)
    assert "\n" not in str(e.value)


def test_unknown_task_without_records_is_refused_naming_the_builtins(runs, tmp_path):
    out = tmp_path / "unknown"
    shutil.copytree(runs["ref"], out)
    (results_file,) = out.rglob("results_*.json")
    results = json.loads(results_file.read_text(encoding="utf-8"))
    for old in ("bbq", "crows_pairs_english"):
        new = f"my_{old}"
        for key in ("configs", "results", "n-samples", "versions"):
            if old in results.get(key, {}):
                results[key][new] = results[key].pop(old)
        (samples,) = out.rglob(f"samples_{old}_*.jsonl")
        samples.rename(samples.with_name(samples.name.replace(f"_{old}_", f"_{new}_")))
    results_file.write_text(json.dumps(results), encoding="utf-8")
    with pytest.raises(BiasEvalError, match=r"my_bbq, my_crows_pairs_english .*bbq, "
                       r"bbq_ambig, bbq_disambig, crows_pairs_english") as e:
        read_run(out)
    assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------- details repo


def _push_like_lm_eval(run_dir: Path, repo: Path, model_name: str) -> str:
    """Copy one run into `repo` as lm-eval's --hf_hub_log_args pushes it: the results file to
    <model_name>/, the output folder (results and samples) to <model_name_sanitized>/."""
    (results_file,) = run_dir.rglob("results_*.json")
    sanitized = repo / model_name.replace("/", "__")
    (repo / model_name).mkdir(parents=True, exist_ok=True)
    sanitized.mkdir(parents=True, exist_ok=True)
    shutil.copy2(results_file, repo / model_name / results_file.name)
    for f in results_file.parent.iterdir():
        shutil.copy2(f, sanitized / f.name)
    return results_file.name


def test_a_details_repo_copy_is_a_run_folder(runs, tmp_path):
    repo = tmp_path / "details-repo"
    name = _push_like_lm_eval(runs["ref"], repo, "org/tiny")
    direct = read_run(runs["ref"])
    for path in (repo, repo / "org" / "tiny" / name, repo / "org__tiny" / name):
        run = read_run(path)
        assert run.results_file.parent == repo / "org__tiny" or path.is_file()
        assert run.ignored_results_files == []
        assert run.items.drop(columns=["uncertainty"]).equals(
            direct.items.drop(columns=["uncertainty"]))


def test_a_details_repo_with_several_runs_asks_which(runs, tmp_path):
    repo = tmp_path / "details-repo"
    _push_like_lm_eval(runs["ref"], repo, "org/tiny")
    newer = _push_like_lm_eval(runs["w3"], repo, "org/tiny")
    with pytest.raises(BiasEvalError, match=r"holding 2 runs .*give the results_<timestamp>") as e:
        read_run(repo)
    assert "\n" not in str(e.value)
    picked = read_run(repo / "org" / "tiny" / newer)
    assert picked.quantization == read_run(runs["w3"]).quantization
    result = compare_runs(read_run(runs["ref"]), read_run(repo / "org__tiny" / newer))
    assert {t["task"] for t in result["tasks"]} == {"bbq", "crows_pairs_english"}
