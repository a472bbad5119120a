"""The report's ``schema``, ``settings`` and ``definitions`` sections, and the checks of its
settings and optional dependencies made before any work."""

from __future__ import annotations

import importlib.util
from numbers import Integral

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.metrics.stats import EXACT_BELOW

SCHEMA = "lm-eval-bias/report"
SCHEMA_VERSION = 1
MIN_N_BOOT = 100
# Resamples are drawn as one array per statistic: 100,000 keeps that within a few hundred MB for
# the largest tables the report sees, where 1e9 ends in a MemoryError after minutes of work.
MAX_N_BOOT = 100_000


def check_n_boot(n_boot: int) -> None:
    """Refuse a bootstrap resample count that is not an integer from `MIN_N_BOOT` to
    `MAX_N_BOOT` (the CLI's ``--n-boot``; `sweep` checks it before its runs rather than after)."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, Integral) or \
            not MIN_N_BOOT <= n_boot <= MAX_N_BOOT:
        raise BiasEvalError(f"--n-boot must be an integer from {MIN_N_BOOT} to {MAX_N_BOOT:,}, "
                            f"got {n_boot}")


def require(module: str) -> None:
    """Refuse to go on when optional dependency `module` is not installed."""
    if importlib.util.find_spec(module) is None:
        raise BiasEvalError(f"the report needs {module}, which is not installed; "
                            "pip install 'lm-eval-bias[stats]'")


def settings_section(*, n_boot: int, seed: int, alpha: float, ci: float) -> dict:
    """``settings``: what the numbers depend on besides the runs."""
    return {"n_boot": int(n_boot), "seed": int(seed), "alpha": alpha, "ci": ci,
            "mcnemar_exact_below": EXACT_BELOW,
            "reference_bits": "dtype width of the reference (float32 32, float16 / "
                              "bfloat16 16, 16 when not recorded)"}


DEFINITIONS = {
    "response_flip": "the chosen option (or open-task label) changed; valid <-> invalid counts",
    "u2b": "item unbiased in the reference, biased in the compared run (bias emergence, S2)",
    "b2u": "item biased in the reference, unbiased in the compared run",
    "net_change": "(u2b - b2u) / items with a bias label in both runs; > 0 = more biased",
    "mcnemar": f"on the items' biased labels, b = u2b, c = b2u; exact binomial when b + c < "
               f"{EXACT_BELOW}, else chi-square with continuity correction",
    "bh": "Benjamini-Hochberg over all McNemar tests of one comparison (per task and per "
          "(task, group)); significant when q <= alpha",
    "masked_flipping": "share of flips inside units (tasks; (task, group)) whose share of biased "
                       "answers did not change significantly (McNemar q > alpha), S3",
    "uncertainty": "normalized entropy of the reference run's option probabilities: low <= 1/3 "
                   "< medium <= 2/3 < high; high_low_ratio = flip rate high / low, S3",
    "group_asymmetry": "net change per (task, group), ranked by |net change| (largest first, "
                       "as in compare); largest worsening = max > 0, largest improvement = "
                       "min < 0, S3",
    "scores_with_ci": "accuracy, biased_rate, unknown_rate, acc_amb, acc_disamb, bias_amb "
                      "(s_AMB), bias_disamb (s_DIS) recomputed from item records, and the flip "
                      "rates; seeded percentile bootstrap over items; a change is significant "
                      "when the paired bootstrap CI of the difference excludes 0; lm-eval's own "
                      "aggregates are listed without CIs",
    "dose_response": "logistic regression of 'became biased' (items unbiased in the reference) "
                     "on bits removed; odds ratio per bit removed with Wald 95% CI, S2",
    "seeds": "runs with the same model, dtype, quantization and tasks that differ only in seeds "
             "are pooled (counts summed over seed pairs); spread = mean, sd, min, max over seeds",
    "quality": "lm-eval perplexity-type metrics (word_perplexity, byte_perplexity, "
               "bits_per_byte, perplexity) per condition; relative change vs the reference",
}
