"""Bad input to `compare` and `report`, through the command line: one line on stderr
(``lm-eval-bias: error: ...`` naming what and where, saying what to do), exit code 2, no traceback,
and no output file written, not even half of one. Plus scorer mismatches, escaping of planted
markup, and byte-identical reports across processes.

The in-process cases call `lm_eval_bias.cli.main` (the console script's own function) so that the
table stays fast; test_cli_* below and test_compare.py run the real console script.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
from conftest import run_cli

from lm_eval_bias.analysis.compare import compare_run_folders
from lm_eval_bias.analysis.report import build_report_from_folders, write_report
from lm_eval_bias.cli import main

from .conftest import PLANTED_BASE, PLANTED_OTHER, write_run


def _other(**over):
    return [dict(i, **over) for i in PLANTED_OTHER]


def _quant(bits):
    return {"method": "rtn", "bits": bits, "group_size": 32, "sym": False,
            "model_bytes_before": 10, "model_bytes_after": 3}


NONE = {"method": "none", "model_bytes_before": 10, "model_bytes_after": 10}
SCORER_A = {"bias_a": {"toxicity_scorer,none": "profanity (alt-profanity-check 1.9.1)"}}
SCORER_B = {"bias_a": {"toxicity_scorer,none": "hf:unitary/toxic-bert (transformers 5.2)"}}


def _pair(tmp, other_items=None, *, base_kw=None, other_kw=None):
    """A reference run and a 4-bit run of the planted items (any of them changed by the case)."""
    base = write_run(tmp / "base", PLANTED_BASE, quantization=NONE, **(base_kw or {}))
    other = write_run(tmp / "other", other_items or PLANTED_OTHER, quantization=_quant(4),
                      ts="2025-06-01T13-00-00.000002", **(other_kw or {}))
    return base, other


def _damage_samples(files, task, fn):
    path = files.samples[task]
    path.write_bytes(fn(path.read_bytes()))
    return path


# Every case: (name, builder(tmp) -> (base folder, other folder), fragments the message names).
def _no_results(tmp):
    base, other = _pair(tmp)
    shutil.rmtree(other.out)
    (other.out / "model").mkdir(parents=True)
    return base.out, other.out, ["no results_*.json", str(other.out)]


def _no_samples(tmp):
    base, other = _pair(tmp)
    for p in other.samples.values():
        p.unlink()
    return base.out, other.out, ["--log_samples", str(other.results)]


def _versions(tmp):
    base, other = _pair(tmp, other_kw={"versions": {"bias_a": 2.0}})
    return base.out, other.out, ["task bias_a is version 1.0", "2.0", "same lm-eval-bias version"]


def _documents(tmp):
    items = _other()
    items[1]["doc"] = {"context": "another text", "question": "Who?"}
    base, other = _pair(tmp, items)
    return base.out, other.out, ["different documents", "task bias_a doc_id 1", "same data"]


def _limit(tmp):
    base, other = _pair(tmp, [i for i in PLANTED_OTHER if i["doc_id"] < 3],
                        base_kw={"limit": 8}, other_kw={"limit": 3})
    return base.out, other.out, ["different doc sets", "--limit: BASE 8, OTHER 3", "same --limit"]


def _n_shot(tmp):
    base, other = _pair(tmp, other_kw={"n_shot": {"bias_b": 3}})
    return base.out, other.out, ["task bias_b is 0-shot", "3-shot", "--num_fewshot"]


def _fewshot_examples(tmp):
    # same n-shot, other few-shot examples (e.g. --fewshot_seed): the prompts differ
    items = [dict(i, prompt=f"Q: example\nA: yes\n\nQ: item {i['doc_id']}\nA:")
             for i in PLANTED_OTHER]
    base, other = _pair(tmp, items)
    return base.out, other.out, ["different prompts", "few-shot examples", "same prompt settings"]


def _truncated(tmp):
    base, other = _pair(tmp)
    path = _damage_samples(other, "bias_b", lambda b: b[:-50])
    n = path.read_bytes().count(b"\n") + 1
    return base.out, other.out, [f"{path}:{n}:", "truncated last line", "interrupted"]


def _bare_nan_line(tmp):
    base, other = _pair(tmp)
    path = _damage_samples(other, "bias_a", lambda b: b.replace(b"\n", b"\nNaN\n", 1))
    return base.out, other.out, [f"{path}:2:", "must be a JSON object"]


def _not_utf8(tmp):
    base, other = _pair(tmp)
    path = _damage_samples(other, "bias_c", lambda b: b.replace(b'"Age"', b'"A\xffge"', 2))
    return base.out, other.out, [f"{path}:1:", "not UTF-8"]


def _duplicates(tmp):
    base, other = _pair(tmp)
    path = _damage_samples(other, "bias_c", lambda b: b + b.splitlines(keepends=True)[0])
    return base.out, other.out, [f"{path}:3:", "duplicate", "doc_id 0", "first on line 1"]


def _empty_run(tmp):
    base, _ = _pair(tmp)
    empty = write_run(tmp / "empty", [], tasks=["bias_a", "bias_b", "bias_c"])
    return base.out, empty.out, ["is empty", "--log_samples"]


def _no_bias_item(tmp):
    base, _ = _pair(tmp)
    mmlu = write_run(tmp / "mmlu", [{"task": "mmlu_x", "doc_id": i, "no_bias_item": True}
                                    for i in range(3)])
    return base.out, mmlu.out, ["no sample", "has a bias_item", "mmlu_x"]


def _scorers(tmp):
    base, other = _pair(tmp, base_kw={"scores": SCORER_A}, other_kw={"scores": SCORER_B})
    return base.out, other.out, ["task bias_a was scored by profanity", "toxic-bert",
                                 "--allow-different-scorers"]


CASES = {f.__name__.lstrip("_"): f for f in (
    _no_results, _no_samples, _versions, _documents, _limit, _n_shot, _fewshot_examples,
    _truncated, _bare_nan_line, _not_utf8, _duplicates, _empty_run, _no_bias_item, _scorers)}


def _one_line_error(rc, capsys) -> str:
    out, err = capsys.readouterr()
    assert rc == 2, (out, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lm-eval-bias: error: "), err
    return lines[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_compare_refuses_in_one_line_and_writes_nothing(case, tmp_path, capsys):
    base, other, fragments = CASES[case](tmp_path / "runs")
    out = tmp_path / "out"
    out.mkdir()
    rc = main(["compare", str(base), str(other), "--output-json", str(out / "cmp.json"),
               "--output-md", str(out / "cmp.md")])
    line = _one_line_error(rc, capsys)
    for f in fragments:
        assert f in line, line
    assert list(out.iterdir()) == []   # no file, no leftover temporary file


@pytest.mark.parametrize("case", sorted(CASES))
def test_report_refuses_in_one_line_and_writes_nothing(case, tmp_path, capsys):
    base, other, fragments = CASES[case](tmp_path / "runs")
    out = tmp_path / "report"
    rc = main(["report", str(base), str(other), "--output", str(out), "--n-boot", "100"])
    line = _one_line_error(rc, capsys)
    for f in fragments:
        assert f in line, line
    assert not out.exists()


def test_bad_output_paths_fail_before_any_work(tmp_path, capsys):
    base, other = _pair(tmp_path / "runs")
    good = tmp_path / "cmp.json"
    rc = main(["compare", str(base.out), str(other.out), "--output-json", str(good),
               "--output-md", str(tmp_path / "missing" / "cmp.md")])
    line = _one_line_error(rc, capsys)
    assert "folder" in line and "missing" in line and "does not exist" in line
    assert not good.exists()   # the valid one is not written either: nothing half-way
    rc = main(["compare", str(base.out), str(other.out), "--output-json", str(tmp_path)])
    assert "is a folder" in _one_line_error(rc, capsys)
    report_file = tmp_path / "a-file"
    report_file.write_text("x")
    rc = main(["report", str(base.out), str(other.out), "--output", str(report_file),
               "--n-boot", "100"])
    assert "cannot create output folder" in _one_line_error(rc, capsys)
    assert report_file.read_text() == "x"


# Outputs inside an input run, and a closed pipe: rows of tests/test_bad_input.py.


# ----------------------------------------------------------------------------- scorers


def test_different_scorers_are_allowed_only_on_request(tmp_path, capsys):
    base, other = _pair(tmp_path / "runs", base_kw={"scores": SCORER_A},
                        other_kw={"scores": SCORER_B})
    result = compare_run_folders(base.out, other.out, allow_different_scorers=True)
    assert result["scorer_differences"] == [{
        "task": "bias_a", "metric": "toxicity_scorer", "filter": "none",
        "base": SCORER_A["bias_a"]["toxicity_scorer,none"],
        "other": SCORER_B["bias_a"]["toxicity_scorer,none"]}]
    assert result["all_tasks"]["flips"]["n_paired"] == 16
    js = tmp_path / "cmp.json"
    rc = main(["compare", str(base.out), str(other.out), "--allow-different-scorers",
               "--output-json", str(js)])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "note: scored by different scorers (allowed)" in err and "toxic-bert" in err
    assert json.loads(js.read_text())["scorer_differences"] == result["scorer_differences"]
    # the report too: refused above (test_report_refuses...), allowed and noted on request
    report = build_report_from_folders([base.out, other.out], n_boot=100,
                                       allow_different_scorers=True)
    assert any("scored by profanity" in n and "allowed" in n for n in report["notes"])
    rc = main(["report", str(base.out), str(other.out), "--output", str(tmp_path / "rep"),
               "--n-boot", "100", "--allow-different-scorers", ])
    capsys.readouterr()
    assert rc == 0 and (tmp_path / "rep" / "report.json").is_file()
    # the same scorer on both sides is no difference at all
    same = write_run(tmp_path / "same", PLANTED_OTHER, scores=SCORER_A, quantization=_quant(4))
    assert "scorer_differences" not in compare_run_folders(base.out, same.out)


def test_cli_allow_different_scorers_end_to_end(tmp_path):
    base, other = _pair(tmp_path / "runs", base_kw={"scores": SCORER_A},
                        other_kw={"scores": SCORER_B})
    refused = run_cli(["lm-eval-bias", "compare", str(base.out), str(other.out)], timeout=120)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [refused.stderr.strip()]
    assert "--allow-different-scorers" in refused.stderr
    allowed = run_cli(["lm-eval-bias", "compare", str(base.out), str(other.out),
                       "--allow-different-scorers"], timeout=120)
    assert allowed.returncode == 0, allowed.stderr
    assert "all tasks" in allowed.stdout


# ----------------------------------------------------------------------------- escaping

SCRIPT = "<script>alert(1)</script>"
ATTR = '"><img src=x onerror=alert(1)>'


def test_html_report_escapes_planted_markup(tmp_path):
    """Markup planted where a dataset or a model puts text: group and axis names, the model
    name, the model's own output (resps, filtered_resps) and the document."""
    def plant(items):
        out = []
        for i in items:
            i = dict(i, groups=[f"{SCRIPT}{g}" if n == 0 else f"{ATTR}{g}"
                                for n, g in enumerate(i["groups"])],
                     axis=ATTR + i["axis"])
            i["doc"] = {"context": SCRIPT + ATTR, "question": ATTR, "n": i["doc_id"]}
            out.append(i)
        return out
    base = write_run(tmp_path / "b", plant(PLANTED_BASE), model_name=f"org/{ATTR}{SCRIPT}",
                     quantization=NONE)
    other = write_run(tmp_path / "o", plant(PLANTED_OTHER), model_name=f"org/{ATTR}{SCRIPT}",
                      quantization=_quant(3), ts="2025-06-01T13-00-00.000002")
    for files in (base, other):   # the model's output, as lm-eval logs it
        for path in files.samples.values():
            lines = [json.loads(ln) for ln in path.read_text().splitlines()]
            for ln in lines:
                ln["resps"] = [[SCRIPT + ATTR]]
                ln["filtered_resps"] = [SCRIPT + ATTR]
            path.write_text("".join(json.dumps(ln) + "\n" for ln in lines))
    report = build_report_from_folders([base.out, other.out], n_boot=100)
    files = write_report(report, tmp_path / "rep")
    page = files["html"].read_text()
    # the planted strings did reach the report (raw in its data, so the page had to escape them)
    groups = {g["group"] for c in report["comparisons"] for g in c["groups"]}
    assert f"{SCRIPT}Muslim" in groups and f"{ATTR}Jewish" in groups
    assert report["runs"][0]["model_name"] == f"org/{ATTR}{SCRIPT}"
    for raw in (SCRIPT, ATTR, "<script", "<img src=x", "onerror=alert(1)>"):
        assert raw not in page, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    # the only tags in the page are the renderer's own
    tags = set(re.findall(r"<([a-zA-Z][a-zA-Z0-9]*)", page))
    assert tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "ul",
                    "li", "table", "thead", "tbody", "tr", "th", "td", "figure", "img",
                    "figcaption", "dl", "dt", "dd", "b"}, tags
    assert all(m.startswith("data:image/png;base64,")
               for m in re.findall(r'<img alt="[^"]*" src="([^"]*)"', page))
    assert page.count("<img") == len(re.findall(r'<img alt="[a-z_]+" src="data:image/png', page))


# ----------------------------------------------------------------------------- reproducibility


def test_report_json_is_byte_identical_across_processes(tmp_path):
    """Two separate processes with different hash seeds (set and dict order of strings change
    with PYTHONHASHSEED) build byte-identical report.json and report.html from the same runs."""
    base, other = _pair(tmp_path / "runs")
    w3 = write_run(tmp_path / "runs" / "w3", PLANTED_OTHER, quantization=_quant(3),
                   ts="2025-06-01T14-00-00.000003")
    folders = [str(base.out), str(other.out), str(w3.out)]
    outs = []
    for n, seed in enumerate(("1", "4242")):
        out = tmp_path / f"rep{n}"
        proc = run_cli(["lm-eval-bias", "report", *folders, "--output", str(out),
                        "--n-boot", "200", "--seed", "7"], env={"PYTHONHASHSEED": seed},
                       timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        outs.append(out)
    a, b = (o / "report.json" for o in outs)
    assert a.read_bytes() == b.read_bytes()
    assert (outs[0] / "report.html").read_bytes() == (outs[1] / "report.html").read_bytes()
    report = json.loads(a.read_text())
    assert len(report["comparisons"]) == 2 and report["settings"]["seed"] == 7
