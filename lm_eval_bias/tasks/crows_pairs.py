"""CrowS-Pairs (Nangia et al. 2020) for lm-eval: data loading and per-item records.

Named from `task_configs/crows_pairs/*` (`!function lm_eval_bias.tasks.crows_pairs.<name>`); no
import-time side effects. Scores: `lm_eval_bias.metrics.crows_pairs`.

Each doc is one CSV row (upstream columns, the unnamed id column as `pair_id`) plus:
    choices      the two sentences in the order scored: [sent_more, sent_less] by default
    more_choice  index of sent_more in `choices`
    perm, permute_seed   only with `--metadata '{"permute_seed": N}'`
Each sentence is scored on its own (empty context, no target delimiter): its total log-likelihood
after the model's start token, as lm-eval's own `crows_pairs_english` does. Pairs are compared as
upstream's `metric.py` compares them: scores rounded to 3 decimals, equal ones neutral
(`lm_eval_bias.metrics.crows_pairs`; docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.metrics import crows_pairs as cp_metrics
from lm_eval_bias.tasks import _data, _kit
from lm_eval_bias.tasks._options import mark_permuted, parse_permute_seed, shown_order

BENCHMARK = "crows_pairs"
DATA_FILE = "crows_pairs_anonymized.csv"
CSV_COLUMNS = ("", "sent_more", "sent_less", "stereo_antistereo", "bias_type")

# upstream `bias_type` -> task suffix (bias_crows_pairs_<suffix>)
BIAS_TYPES: dict[str, str] = {
    "race-color": "race_color",
    "gender": "gender",
    "socioeconomic": "socioeconomic",
    "nationality": "nationality",
    "religion": "religion",
    "age": "age",
    "sexual-orientation": "sexual_orientation",
    "physical-appearance": "physical_appearance",
    "disability": "disability",
}

# Local copy: <LM_EVAL_BIAS_DATA_DIR>/crows_pairs/crows_pairs_anonymized.csv; remote: upstream's
# data/crows_pairs_anonymized.csv at the commit of the shared data README.
SOURCE = _data.register_source(
    _data.DataSource(
        name="crows_pairs",
        title="CrowS-Pairs",
        remote_base="https://raw.githubusercontent.com/nyu-mll/crows-pairs/{commit}/data",
        commit="8aaac11c485473159ec9328a65253a5be9a479dc",
        layout_hint="crows_pairs/crows_pairs_anonymized.csv (upstream data/ folder of "
        "github.com/nyu-mll/crows-pairs)",
        sha256={DATA_FILE: "dfb36986ce0502abbaf7055b9176da3d08d48e07df1251991b5dfbcbceab9d0c"},
    )
)


def _bias_type(name: str) -> str:
    by_suffix = {v: k for k, v in BIAS_TYPES.items()}
    return _kit.one_of(name, BIAS_TYPES, "CrowS-Pairs bias type", aliases=by_suffix)


def read_rows() -> list[dict[str, str]]:
    """All 1,508 upstream rows (a CSV reader: one field holds a newline)."""
    path = _data.benchmark_file(SOURCE, DATA_FILE)
    rows = _data.read_csv(path, CSV_COLUMNS)
    for recno, row in enumerate(rows, 1):
        if (
            row["stereo_antistereo"] not in cp_metrics.DIRECTIONS
            or row["bias_type"] not in BIAS_TYPES
        ):
            raise BiasEvalError(
                f"{path}: record {recno} has direction {row['stereo_antistereo']!r} and bias_type "
                f"{row['bias_type']!r}, expected stereo/antistereo and one of "
                f"{', '.join(BIAS_TYPES)}; use the unmodified upstream file"
            )
    return rows


def build_docs(rows: Sequence[dict], *, permute_seed: int | None = None) -> list[dict]:
    docs = []
    for row in rows:
        pair_id = int(row[""])
        options = [row["sent_more"], row["sent_less"]]
        perm = shown_order(permute_seed, BENCHMARK, str(pair_id), 2)
        doc = {
            "pair_id": pair_id,
            "sent_more": row["sent_more"],
            "sent_less": row["sent_less"],
            "stereo_antistereo": row["stereo_antistereo"],
            "bias_type": row["bias_type"],
            "choices": [options[p] for p in perm],
            "more_choice": perm.index(0),
        }
        docs.append(mark_permuted(doc, permute_seed, perm))
    return docs


def load_crows_pairs_docs(bias_type: str, permute_seed: Any = None) -> list[dict]:
    """The docs of one bias type (upstream name or task suffix), in file order."""
    name = _bias_type(bias_type)
    seed = parse_permute_seed(permute_seed)
    return build_docs([r for r in read_rows() if r["bias_type"] == name], permute_seed=seed)


load_crows_pairs = _kit.custom_dataset(load_crows_pairs_docs)


METRICS = ("pct_stereotype", "pct_stereotype_stereo", "pct_stereotype_antistereo", "pct_neutral")


def process_results(doc: dict, results: Sequence) -> dict:
    """results: lm-eval's (log-likelihood, is_greedy) per sentence, in `choices` order."""
    lls = _kit.loglikelihoods(results)
    more = int(doc["more_choice"])
    less = 1 - more
    per_doc = cp_metrics.score_pair(doc["stereo_antistereo"], lls[more], lls[less])
    pred = _kit.first_argmax(lls)
    record = _kit.choice_item(
        BENCHMARK, doc, pred,
        biased=bool(per_doc["more"]),
        groups=[doc["bias_type"]],
        axis=doc["bias_type"],
        loglikelihoods=lls,
        more_choice=more,
        direction=doc["stereo_antistereo"],
        tie=bool(per_doc["tie"]),
        pair_id=int(doc["pair_id"]),
        perm=_kit.shown_perm(doc),
    )
    return _kit.emit(METRICS, per_doc, record)
