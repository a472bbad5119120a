"""Present a report dict (`analysis.report.build_report`): report.json, report.md, report.html and
the plots as PNG. No numbers are computed here beyond formatting.

- ``report.json``: the dict, sorted keys, no NaN (`analysis.output.json_text`).
- ``report.md``: the same tables in Markdown (strings from data have ``|`` and newlines escaped).
- ``report.html``: one self-contained file: inline CSS, plots embedded as base64 PNG, no scripts,
  no external fonts, stylesheets or images; every string that comes from data (model names,
  group names, paths, task names) goes through `html.escape`.
- ``plots/*.png``: `report.plots`.

All of them are written together or not at all (`write_report`): a full disk leaves an earlier
report in the folder unchanged.
"""

from __future__ import annotations

import base64
import html
import os
import shutil
from pathlib import Path
from typing import Any

from lm_eval_bias._files import write_together
from lm_eval_bias.analysis.formatting import bits as bits_text
from lm_eval_bias.analysis.formatting import num, pct, pvalue
from lm_eval_bias.analysis.output import json_text
from lm_eval_bias.analysis.report.cells import FLIP_SCORES
from lm_eval_bias.analysis.report.plots import condition_names, render_plots
from lm_eval_bias.errors import BiasEvalError

# ----------------------------------------------------------------------------- formatting


def _ci_text(v: dict | None, key: str = "estimate", lo: str = "ci_low", hi: str = "ci_high") -> str:
    if not v or v.get(key) is None:
        return "-"
    if v.get(lo) is None:
        return num(v[key])
    return f"{num(v[key])} [{num(v[lo])}, {num(v[hi])}]"


def _diff_text(v: dict | None) -> str:
    if not v or v.get("difference") is None:
        return "-"
    star = "*" if v.get("significant") else ""
    return (f"{num(v['difference'], signed=True)} [{num(v['difference_ci_low'], signed=True)}, "
            f"{num(v['difference_ci_high'], signed=True)}]{star}")


# ----------------------------------------------------------------------------- tables (shared)


def _runs_tables(report: dict, names: dict[str, str]) -> list[tuple]:
    out: list[tuple] = []
    out.append(("Runs", "Every run read; a condition pools runs that differ only in seed.",
                ["run", "condition", "role", "model", "quantization", "bits", "seed",
                 "items", "results file"],
                [[r["id"], r["condition"], r["role"], str(r.get("model_name") or "?"),
                  next(c["label"] for c in report["conditions"] if c["id"] == r["condition"])
                  .split(" · ", 1)[-1], bits_text(r["bits"]),
                  ", ".join(f"{k}={v}" for k, v in sorted(r["seed"].items())
                            if k in _varying(report, r["condition"])) or "-",
                  str(r["n_items"]), str(r["results_file"])] for r in report["runs"]]))
    return out


def _summary_tables(report: dict, names: dict[str, str]) -> list[tuple]:
    out: list[tuple] = []
    s = report["summary"]["conditions"]
    qual_keys = sorted({k for row in s for k in (row.get("quality") or {})})
    out.append(("Summary vs reference " + names[report["reference"]["condition"]],
                "u2b = share of reference-unbiased items that became biased; net = (u2b - b2u) / "
                "items labelled in both; masked = share of response flips inside (task, group) "
                "cells whose biased share did not change significantly (BH q > alpha)."
                + (" quality = relative change of lm-eval's perplexity-type metric." if qual_keys
                   else ""),
                ["condition", "bits", "seeds", "n", "response flips", "u2b", "b2u", "net",
                 "McNemar p", "masked", "high/low", "worst group", "best group",
                 *[f"quality {k}" for k in qual_keys]],
                [[names[r["condition"]], bits_text(r["bits"]), str(r["n_seeds"]),
                  str(r["n_paired"]),
                  pct(r["response_flip_rate"]), pct(r["u2b_rate_of_unbiased"]),
                  pct(r["b2u_rate_of_biased"]), pct(r["net_change"], signed=True),
                  pvalue(r["mcnemar_pvalue"]), pct(r["masked_share_groups"]),
                  num(r["high_low_ratio"]), str(r["largest_worsening"] or "-"),
                  str(r["largest_improvement"] or "-"),
                  *[pct((r.get("quality") or {}).get(k), signed=True) for k in qual_keys]]
                 for r in s]))
    return out


def _score_tables(report: dict, names: dict[str, str]) -> list[tuple]:
    out: list[tuple] = []
    ids = [c["id"] for c in report["conditions"]]
    ref_id = report["reference"]["condition"]
    for t in report["tasks"]:
        rows = []
        for sc in t["scores"]:
            vals = sc["values"]
            rows.append([sc["metric"], sc["source"]] + [
                (_ci_text(vals.get(cid)) if cid == ref_id or sc["metric"] not in FLIP_SCORES
                 else "") for cid in ids] + [_diff_text(vals.get(cid)) for cid in ids[1:]])
        for le in t["lm_eval"]:
            rows.append([le["metric"], "lm-eval"] + [num(le["values"].get(cid)) for cid in ids]
                        + ["" for _ in ids[1:]])
        out.append((f"Scores: {t['task']} (filter {t['filter']}, {t['n_items']} items)",
                    "estimate [95% CI] from item records (seeded bootstrap); change vs reference "
                    "with the paired bootstrap CI, * = CI excludes 0. Flip rates are changes "
                    "themselves (shown in the change columns).",
                    ["score", "source", *ids, *[f"change {c}" for c in ids[1:]]], rows))
    return out


def _comparison_tables(cmp: dict, names: dict[str, str]) -> list[tuple]:
    out: list[tuple] = []
    cid = cmp["condition"]
    out.append((f"Item-level change per task: {names[cid]}",
                "McNemar on biased labels (b = u2b, c = b2u); q = Benjamini-Hochberg over all "
                "task and (task, group) tests of this comparison.",
                ["task", "filter", "n", "response flips", "u2b", "b2u", "net", "test", "p",
                 "q", "significant", "high/low"],
                [[t["task"], t["filter"], str(t["n_paired"]),
                  f"{t['response_flips']} ({pct(t['response_flip_rate'])})",
                  f"{t['u2b']} ({pct(t['u2b_rate_of_unbiased'])})",
                  f"{t['b2u']} ({pct(t['b2u_rate_of_biased'])})",
                  pct(t["net_change"], signed=True), t["test"], pvalue(t["pvalue"]),
                  pvalue(t["qvalue"]), num(t["significant"]),
                  num(t["uncertainty"]["high_low_ratio"])] for t in cmp["tasks"]]))
    ga = cmp["group_asymmetry"]
    worst = ga["largest_worsening"]
    best = ga["largest_improvement"]
    note = (f"Largest worsening: {worst['group']} ({worst['task']}) "
            f"{pct(worst['net_change'], signed=True)}. " if worst else
            "No group worsened. ")
    note += (f"Largest improvement: {best['group']} ({best['task']}) "
             f"{pct(best['net_change'], signed=True)}." if best else "No group improved.")
    out.append((f"Group asymmetry: {names[cid]}", note,
                ["group", "task", "n", "u2b", "b2u", "net", "p", "q", "significant"],
                [[g["group"], g["task"], str(g["n_paired"]), str(g["u2b"]), str(g["b2u"]),
                  pct(g["net_change"], signed=True), pvalue(g["pvalue"]), pvalue(g["qvalue"]),
                  num(g["significant"])] for g in cmp["groups"]]))
    unc = cmp["uncertainty"]
    out.append((f"Uncertainty: {names[cid]}",
                f"Bins of the reference answer's normalized entropy. High/low ratio: response "
                f"flips {num(unc['high_low_ratio'])}, bias flips "
                f"{num(unc['high_low_ratio_bias_flips'])}; {unc['n_without_probs']} items "
                "without probabilities are in no bin.",
                ["bin", "n", "response flips", "bias flips"],
                [[b["bin"], str(b["n_paired"]),
                  f"{b['response_flips']} ({pct(b['response_flip_rate'])})",
                  f"{b['bias_flips']} ({pct(b['bias_flip_rate'])})"] for b in unc["bins"]]))
    mf = cmp["masked_flipping"]
    out.append((f"Masked flipping: {names[cid]}",
                "Flips inside units whose share of biased answers did not change "
                "significantly (BH q > alpha).",
                ["unit", "flips", "units", "not significant", "masked flips",
                 "masked share", "masked flip rate"],
                [[f"{unit} / {kind.replace('_', ' ')}", str(m["flips"]), str(m["n_units"]),
                  str(m["n_units_not_significant"]), str(m["masked_flips"]),
                  pct(m["masked_share"]), pct(m["masked_flip_rate"])]
                 for unit in ("tasks", "groups") for kind, m in sorted(mf[unit].items())]))
    sd = cmp["seeds"]
    if sd["n"] > 1:
        out.append((f"Seeds: {names[cid]}",
                    f"{sd['n']} runs differing in {', '.join(sd['varying']) or 'seed'}; "
                    "pooled above. Spread over seeds:",
                    ["figure", "mean", "sd", "min", "max"],
                    [[k, pct(v["mean"]), pct(v["sd"]), pct(v["min"]), pct(v["max"])]
                     for k, v in sorted(sd["spread"].items())]))
    return out


def _dose_tables(report: dict, names: dict[str, str]) -> list[tuple]:
    out: list[tuple] = []
    dr = report["dose_response"]
    rows = []
    for name, d in [("all tasks", dr["all_tasks"])] + [(t["task"], t) for t in dr["tasks"]]:
        rows.append([name, str(d["n_rows"]), str(d["n_items"]), str(d["n_events"]),
                     str(d["n_levels"]), num(d["slope"]),
                     _ci_text(d, "odds_ratio", "odds_ratio_ci_low", "odds_ratio_ci_high"),
                     pvalue(d["pvalue"]), str(d["method"] or ""), str(d["note"] or "")])
    out.append(("Dose-response", f"{dr['model']}; reference = {bits_text(dr['reference_bits'])} "
                f"bits; levels {', '.join(bits_text(b) for b in dr['levels']) or '-'}.",
                ["tasks", "rows", "items", "became biased", "bit widths", "slope / bit removed",
                 "odds ratio [95% CI]", "p", "method", "note"], rows))
    return out


def _quality_tables(report: dict, names: dict[str, str]) -> list[tuple]:
    out: list[tuple] = []
    q = report["quality"]
    ids = [c["id"] for c in report["conditions"]]
    if q["available"]:
        out.append(("Quality next to bias", "lm-eval perplexity-type metrics per condition "
                    "(relative change vs the reference in brackets).",
                    ["task", "metric", *ids],
                    [[r["task"], r["metric"], *[
                        (num(r["values"].get(c)) + (
                            f" ({pct(r['relative_change'].get(c), signed=True)})"
                            if c in r["relative_change"] else "")) if c in r["values"] else "-"
                        for c in ids]] for r in q["rows"]]))
    return out


def _tables(report: dict) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """(section title, note, header, rows) for every table, in reading order."""
    names = condition_names(report)
    out = _runs_tables(report, names) + _summary_tables(report, names) + \
        _score_tables(report, names)
    for cmp in report["comparisons"]:
        out += _comparison_tables(cmp, names)
    return out + _dose_tables(report, names) + _quality_tables(report, names)


def _varying(report: dict, cond_id: str) -> list[str]:
    return next(c["varying_seeds"] for c in report["conditions"] if c["id"] == cond_id)


# ----------------------------------------------------------------------------- markdown


def _md_cell(s: Any) -> str:
    return str(s).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def render_markdown(report: dict, plots: dict[str, str] | None = None) -> str:
    out = ["# Quantization bias report", ""]
    ref = report["reference"]
    out.append(f"Reference: {_md_cell(ref['condition'])} ({_md_cell(ref['label'])}), chosen by "
               f"{ref['chosen_by']}. Bootstrap: {report['settings']['n_boot']} resamples, seed "
               f"{report['settings']['seed']}; alpha {report['settings']['alpha']}.")
    for n in report["notes"]:
        out += ["", f"- {_md_cell(n)}"]
    for title, note, head, rows in _tables(report):
        out += ["", f"## {_md_cell(title)}", "", _md_cell(note), ""]
        out.append("| " + " | ".join(_md_cell(h) for h in head) + " |")
        out.append("|" + "|".join("---" for _ in head) + "|")
        out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    if plots:
        out += ["", "## Plots", ""]
        out += [f"![{name}]({_md_cell(path)})" for name, path in sorted(plots.items())]
    out += ["", "## Definitions", ""]
    out += [f"- **{k}**: {_md_cell(v)}" for k, v in sorted(report["definitions"].items())]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- html

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;
color:#222;max-width:1400px}
table{border-collapse:collapse;margin:0.5em 0 1.5em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;vertical-align:top}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}
p.note{color:#555;font-size:13px;max-width:70em}img{max-width:100%;border:1px solid #ddd}
h2{margin-top:1.6em;border-bottom:1px solid #ddd}code{font-size:12px}
"""


def render_html(report: dict, png: dict[str, bytes] | None = None) -> str:
    e = html.escape
    ref = report["reference"]
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>Quantization bias report</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>Quantization bias report</h1>",
             f"<p>Reference: {e(ref['condition'])} ({e(ref['label'])}), chosen by "
             f"{e(ref['chosen_by'])}. Bootstrap: {e(str(report['settings']['n_boot']))} "
             f"resamples, seed {e(str(report['settings']['seed']))}; alpha "
             f"{e(str(report['settings']['alpha']))}.</p>"]
    if report["notes"]:
        parts.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in report["notes"]) + "</ul>")
    for title, note, head, rows in _tables(report):
        parts.append(f"<h2>{e(title)}</h2><p class=\"note\">{e(note)}</p><table><thead><tr>"
                     + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead><tbody>")
        parts += ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows]
        parts.append("</tbody></table>")
    if png:
        parts.append("<h2>Plots</h2>")
        for name in sorted(png):
            data = base64.b64encode(png[name]).decode("ascii")
            parts.append(f"<figure><img alt=\"{e(name)}\" src=\"data:image/png;base64,{data}\">"
                         f"<figcaption>{e(name)}</figcaption></figure>")
    parts.append("<h2>Definitions</h2><dl>")
    parts += [f"<dt><b>{e(k)}</b></dt><dd>{e(v)}</dd>"
              for k, v in sorted(report["definitions"].items())]
    parts.append("</dl></body></html>")
    return "\n".join(parts) + "\n"


# ----------------------------------------------------------------------------- writing


def write_report(report: dict, out_dir: str | Path, *, plots: bool = True) -> dict[str, Path]:
    """Write report.json, report.md, report.html and plots/*.png into `out_dir` (created), all or
    none (`_files.write_together`): a failed write leaves an earlier report there as it was.
    Returns {name: path} of the files written."""
    out_dir = Path(out_dir)
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BiasEvalError(f"cannot create output folder {out_dir}: {exc.strerror}; choose "
                            "another --output") from None
    if not os.access(out_dir, os.W_OK):
        raise BiasEvalError(f"output folder {out_dir} is not writable; choose another --output")
    png = render_plots(report) if plots else {}
    rel = {name: f"plots/{name}.png" for name in png}
    contents: dict[str, str | bytes] = {rel[name]: data for name, data in png.items()}
    contents["report.json"] = json_text(report)
    contents["report.md"] = render_markdown(report, rel)
    contents["report.html"] = render_html(report, png)
    try:
        written = write_together(out_dir, contents, "the report")
    except BiasEvalError:
        if created:
            shutil.rmtree(out_dir, ignore_errors=True)  # the folder this call made, still empty
        raise
    files = {f"plot:{name}": written[rel[name]] for name in png}
    files.update(json=written["report.json"], md=written["report.md"],
                 html=written["report.html"])
    return files
