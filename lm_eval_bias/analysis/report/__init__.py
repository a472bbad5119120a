"""The report over N runs (`build_report`) and its renderers (`write_report`).

One module per top-level section of report.json: `settings` (schema, settings, definitions),
`conditions` (runs, conditions, reference), `scores` (tasks), `comparisons`, `dose`
(dose_response), `quality`, `summary`; `paired` pairs each condition with the reference, `cells`
holds the scores as functions of cell counts, `build` composes the sections. `render` writes
report.json, report.md and report.html, `plots` the PNG plots.
"""

from lm_eval_bias.analysis.report.build import build_report, build_report_from_folders
from lm_eval_bias.analysis.report.cells import FLIP_SCORES, ITEM_SCORES
from lm_eval_bias.analysis.report.conditions import (
    VOLATILE_QUANT_KEYS,
    is_unquantized,
    run_bits,
    run_seed,
)
from lm_eval_bias.analysis.report.plots import PLOTS, render_plots
from lm_eval_bias.analysis.report.quality import QUALITY_METRICS
from lm_eval_bias.analysis.report.render import render_html, render_markdown, write_report
from lm_eval_bias.analysis.report.settings import (
    DEFINITIONS,
    SCHEMA,
    SCHEMA_VERSION,
    check_n_boot,
)

__all__ = [
    "DEFINITIONS", "FLIP_SCORES", "ITEM_SCORES", "PLOTS", "QUALITY_METRICS", "SCHEMA",
    "SCHEMA_VERSION", "VOLATILE_QUANT_KEYS", "build_report", "build_report_from_folders",
    "check_n_boot", "is_unquantized", "render_html", "render_markdown", "render_plots",
    "run_bits", "run_seed", "write_report",
]
