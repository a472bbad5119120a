"""A static, self-contained leaderboard page from a folder of submissions.

Layout of SUBMISSIONS_DIR (one entry per model and quantization setting)::

    SUBMISSIONS_DIR/<name>/submission.json   # what `lm-eval-bias export` wrote
    SUBMISSIONS_DIR/<name>/run/              # the run's lm-eval --output_path folder
    SUBMISSIONS_DIR/<name>/reference/        # the reference run, when the submission has one
    SUBMISSIONS_DIR/<name>.json              # a submission without its runs

Every entry is checked with `analysis.verify`: a submission whose runs are present and match is
*verified*; one without runs is only checked against the schema and listed as *unverified*
(marked on the page); one that fails either check is *skipped* and named, with its first mismatch,
below the table. The detail view of a verified submission with a reference run shows the plots of
`lm-eval-bias report` over the two runs (when matplotlib is installed). The page (``index.html``) has no external resource: the CSS and the JavaScript
are inline, the data is one JSON block (with ``<``, ``>``, ``&`` escaped, so no string can end the
script element), and the script builds the table with ``textContent`` only. Strings rendered in
Python are escaped with `html.escape`.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from typing import Any

from lm_eval_bias._files import write_atomic
from lm_eval_bias.analysis.output import jsonable
from lm_eval_bias.analysis.runs import read_run
from lm_eval_bias.analysis.submission import read_submission_text, validate_schema
from lm_eval_bias.analysis.verify import Verification, verify_files
from lm_eval_bias.errors import BiasEvalError

_TEMPLATE = Path(__file__).resolve().parent / "leaderboard_template.html"


def model_family(name: str | None) -> str:
    """Family of a model id: its last path part, cut before the first ``-<digit>`` part
    (``HuggingFaceTB/SmolLM2-135M-Instruct`` -> ``SmolLM2``, ``meta-llama/Llama-3.1-8B`` ->
    ``Llama``)."""
    if not name:
        return "unknown"
    base = str(name).rstrip("/").split("/")[-1]
    return re.split(r"[-_.](?=\d)", base, maxsplit=1)[0] or base


def _bits(sub: dict) -> Any:
    q = sub.get("quantization")
    if isinstance(q, dict) and q.get("method") not in (None, "none") and q.get("bits") is not None:
        return q.get("bits")
    dtype = str((sub.get("model") or {}).get("dtype") or "")
    m = re.search(r"(\d+)$", dtype)
    return int(m.group(1)) if m else None


def _method(sub: dict) -> str:
    q = sub.get("quantization")
    if isinstance(q, dict) and q.get("method"):
        return str(q["method"])
    return "none"


def _row(entry_id: str, sub: dict, status: str) -> dict:
    """What the page shows of one submission (all strings still raw; the page escapes)."""
    model = sub.get("model") or {}
    change = (sub.get("change") or {}).get("all_tasks") or {}
    flips = change.get("flips") or {}
    tasks = {}
    for name, t in sorted((sub.get("tasks") or {}).items()):
        items = {}
        for filt, part in (t.get("items") or {}).items():
            items[filt] = {
                "n": part.get("n"), "biased_rate": part.get("biased_rate"),
                "accuracy": part.get("accuracy"),
                "groups": {g: {"n": s.get("n"), "biased_rate": s.get("biased_rate"),
                               "accuracy": s.get("accuracy")}
                           for g, s in sorted((part.get("per_group") or {}).items())},
            }
        task_change = {}
        for filt, fs in ((sub.get("change") or {}).get("tasks") or {}).get(name, {}).items():
            task_change[filt] = {g: {"n_paired": f.get("n_paired"), "net_change": f.get("net_change"),
                                     "u2b_rate_of_unbiased": f.get("u2b_rate_of_unbiased"),
                                     "response_flip_rate": f.get("response_flip_rate")}
                                 for g, f in sorted((fs.get("groups") or {}).items())}
        tasks[name] = {"version": t.get("version"), "benchmark": t.get("benchmark"),
                       "scores": {k: v.get("value") for k, v in sorted((t.get("scores") or {}).items())},
                       "items": items, "change": task_change}
    ref = sub.get("reference") or {}
    return {
        "id": entry_id,
        "status": status,
        "model": model.get("name"),
        "family": model_family(model.get("name")),
        "method": _method(sub),
        "bits": _bits(sub),
        "revision": model.get("revision"),
        "weights_sha256": (model.get("weights") or {}).get("sha256"),
        "reference": (ref.get("model") or {}).get("name") if ref else None,
        "headline": {b: s.get("biased_rate") for b, s in sorted((sub.get("headline") or {}).items())},
        "net_change": flips.get("net_change"),
        "emergence": flips.get("u2b_rate_of_unbiased"),
        "response_flips": flips.get("response_flip_rate"),
        "quantization": sub.get("quantization"),
        "tasks": tasks,
    }


def report_plots(runs: list[Path]) -> tuple[dict[str, str], str | None]:
    """The report's plots (`analysis.report`, PNG as base64) of a verified run against its
    reference, or ({}, why not) when there is no reference or matplotlib is missing."""
    if len(runs) < 2:
        return {}, None
    try:
        from lm_eval_bias.analysis.report import build_report, render_plots

        report = build_report([read_run(runs[1]), read_run(runs[0])], reference=0, n_boot=100)
        png = render_plots(report)
    except ImportError as exc:
        return {}, f"plots left out: {exc.name or exc} is not installed (pip install 'lm-eval-bias[stats]')"
    except BiasEvalError as exc:
        return {}, f"plots left out: {exc}"
    return {name: base64.b64encode(data).decode("ascii") for name, data in sorted(png.items())}, None


def _entries(folder: Path) -> list[tuple[str, Path, list[Path]]]:
    out = []
    for p in sorted(folder.iterdir()):
        if p.is_dir() and (p / "submission.json").is_file():
            runs = [p / "run"] + ([p / "reference"] if (p / "reference").exists() else [])
            out.append((p.name, p / "submission.json", runs if (p / "run").exists() else []))
        elif p.is_file() and p.suffix == ".json":
            out.append((p.stem, p, []))
    return out


def _check(path: Path, runs: list[Path]) -> tuple[str, Verification | None, dict | None, str]:
    if runs:
        res = verify_files(path, runs)
        if res.ok:
            return "verified", res, res.submission, res.summary()
        first = res.mismatches[0].line()
        more = f" (+{len(res.mismatches) - 1} more)" if len(res.mismatches) > 1 else ""
        return "skipped", res, None, f"failed verification: {first}{more}"
    try:
        sub, problem = read_submission_text(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        sub, problem = None, str(exc)
    if problem is not None:
        return "skipped", None, None, f"not a readable JSON file ({problem})"
    problems = validate_schema(sub)
    if problems:
        where, msg = problems[0]
        return "skipped", None, None, f"breaks the submission schema at {where}: {msg}"
    return "unverified", None, sub, ("no run folders next to it (give <name>/run/ and "
                                     "<name>/reference/ to verify); schema checked only")


def _script_json(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, allow_nan=False)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def render_page(rows: list[dict], skipped: list[dict]) -> str:
    """The HTML page: the template with the data block and the (escaped) list of skipped entries."""
    benchmarks = sorted({b for r in rows for b in r["headline"]})
    if skipped:
        items = "".join(f"<li><b>{html.escape(s['id'])}</b>: {html.escape(s['message'])}</li>"
                        for s in skipped)
        skipped_html = (f"<section id=\"skipped\"><h2>Not listed ({len(skipped)})</h2>"
                        f"<ul>{items}</ul></section>")
    else:
        skipped_html = ""
    page = _TEMPLATE.read_text(encoding="utf-8")
    return (page.replace("/*DATA*/null", _script_json(jsonable({"rows": rows, "benchmarks": benchmarks})))
            .replace("<!--SKIPPED-->", skipped_html))


def build_leaderboard(submissions: str | Path, output: str | Path, *, plots: bool = True) -> dict:
    """Verify every entry of `submissions` and write ``output/index.html``. Returns
    ``{"index": Path, "entries": [{"id", "status", "message"}], "n_listed", "n_unverified",
    "n_skipped"}``."""
    folder = Path(submissions)
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise BiasEvalError(f"--output {out} is a file; give a folder to write index.html into")
    if not folder.is_dir():
        raise BiasEvalError(f"submissions folder not found: {folder}; give a folder of "
                            "<name>/submission.json entries")
    entries = _entries(folder)
    if not entries:
        raise BiasEvalError(f"no submissions in {folder}: expected <name>/submission.json (with "
                            "<name>/run/) or <name>.json files")
    rows, skipped, report = [], [], []
    for entry_id, path, runs in entries:
        status, _, sub, message = _check(path, runs)
        report.append({"id": entry_id, "status": status, "message": message})
        if sub is None:
            skipped.append({"id": entry_id, "message": message})
            continue
        row = _row(entry_id, sub, status)
        row["plots"] = {}
        if plots and status == "verified":
            row["plots"], why = report_plots(runs)
            if why:
                report[-1]["message"] += f"; {why}"
        rows.append(row)
    index = out / "index.html"
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(index, render_page(rows, skipped))
    except OSError as exc:
        raise BiasEvalError(f"cannot write {index}: {exc.strerror or exc}; choose another "
                            "--output folder") from None
    return {"index": index, "entries": report,
            "n_listed": len(rows), "n_unverified": sum(r["status"] == "unverified" for r in rows),
            "n_skipped": len(skipped)}
