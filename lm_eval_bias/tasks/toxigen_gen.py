"""ToxiGen prompts (Hartvigsen et al. 2022) for lm-eval: the model continues a list of six
implicit-hate (``hate_<group>``) or neutral (``neutral_<group>``) statements about a target group;
each continuation is scored for toxicity; toxicity rate per group, hate vs neutral prompts.

Upstream's prompt lines join the six "- sentence" items with the two-character escape ``\\n`` and
end in ``\\n-``; the model sees real newlines and continues the list with one statement (generation
stops at the next newline).

Each doc: ``benchmark`` ("toxigen_gen"), ``subset`` and ``group`` (target group),
``prompt_type`` ("hate" / "neutral"), ``prompt_index`` (line number in its file, from 0),
``prompt`` (the upstream line, unchanged). Docs alternate hate / neutral (hate 0, neutral 0,
hate 1, ...), so ``--limit`` keeps both kinds; ``trans`` has hate prompts only (upstream has no
neutral_trans file).
"""

from __future__ import annotations

from collections.abc import Sequence

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.metrics.toxicity import is_toxic
from lm_eval_bias.tasks import _data, _kit, _open

BENCHMARK = "toxigen_gen"
GROUPS = (
    "asian", "bisexual", "black", "chinese", "immigrant", "jewish", "latino", "lgbtq",
    "mental_disability", "mexican", "middle_east", "muslim", "native_american",
    "physical_disability", "trans", "women",
)
HATE_ONLY = ("trans",)
PROMPT_TYPES = ("hate", "neutral")

TOXIGEN = _data.register_source(
    _data.DataSource(
        name="toxigen",
        title="ToxiGen prompts",
        remote_base="https://raw.githubusercontent.com/microsoft/TOXIGEN/{commit}",
        commit="01517e814639e0334c920a3c502036c8158aac87",
        layout_hint="toxigen/prompts/{hate,neutral}_<group>_1k.txt (upstream layout of "
        "github.com/microsoft/TOXIGEN)",
    )
)


def prompt_file(prompt_type: str, group: str) -> str:
    return f"prompts/{prompt_type}_{group}_1k.txt"


def _read_lines(prompt_type: str, group: str) -> list[str]:
    path = _data.benchmark_file(TOXIGEN, prompt_file(prompt_type, group))
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not lines:
        raise BiasEvalError(f"{path} has no prompts; use the upstream file")
    return lines


def load_toxigen_docs(group: str) -> list[dict]:
    _kit.one_of(group, GROUPS, "ToxiGen group")
    per_type = {t: _read_lines(t, group) for t in PROMPT_TYPES
                if not (t == "neutral" and group in HATE_ONLY)}
    docs = []
    for i in range(max(len(v) for v in per_type.values())):
        for t, lines in per_type.items():
            if i < len(lines):
                docs.append({"benchmark": BENCHMARK, "subset": group, "group": group,
                             "prompt_type": t, "prompt_index": i, "prompt": lines[i]})
    return docs


# lm-eval `custom_dataset`; the toxicity scorer is checked when the task is built, before generation.
load_toxigen_gen = _open.scored_dataset(load_toxigen_docs, name="load_toxigen_gen")


def doc_to_text(doc: dict) -> str:
    return doc["prompt"].replace("\\n", "\n")


def process_results(doc: dict, results: Sequence) -> dict:
    """Per-doc value ``{"group", "prompt_type", "toxicity", "toxicity_scorer"}`` and the
    `bias_item` (label toxic / non-toxic; biased = toxic; axis = prompt type)."""
    s = _open.scored(results)
    tox = s["toxicity"][0]
    per_doc = {"group": doc["group"], "prompt_type": doc["prompt_type"], "toxicity": tox,
               "toxicity_scorer": s["toxicity_scorer_label"]}
    record = _open.toxicity_record(
        BENCHMARK, toxic=is_toxic(tox), groups=[doc["group"]], axis=doc["prompt_type"],
        biased_if_toxic=True, s=s, scores={"toxicity": tox}, text=s["texts"][0],
        prompt_index=int(doc["prompt_index"]), n_scorer_failures=int(tox is None),
    )
    return _kit.emit(METRICS, per_doc, record)


METRICS = ("toxicity_rate", "toxicity_rate_hate", "toxicity_rate_neutral", "toxicity_mean",
           "n_scorer_failures", "toxicity_scorer")
