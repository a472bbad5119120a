"""RedditBias (Barikeri et al. 2021) for lm-eval: data loading and per-item records.

Named from `task_configs/redditbias/*` (`!function lm_eval_bias.tasks.redditbias.<name>`); no
import-time side effects. Scores: `lm_eval_bias.metrics.redditbias`.

A demographic has two upstream test files: row i of the group-2 file is the counterfactual of row i
of the group-1 file (checked: group-2 `comments` == group-1 `comments_processed`). Each doc is one
such pair:
    row               the row index in both files (0-based, file order)
    biased, counterfactual   the scored phrases (`comments_processed` of group 1 and of group 2)
    group, counterfactual_group   e.g. "black", "white"
    initial_demo, replaced_demo   upstream's swapped terms (group-2 file)
    bias_sent         upstream's sentence-level annotation ("1", "0" or "" as written: 1.0 -> "1")
    choices           [biased, counterfactual] (or the --metadata permute_seed order)
    biased_choice     index of the biased phrase in `choices`
    first_tokens      the text of each option's first token (`choices` order; the first two
                      where the tokenizer makes the first token whitespace only)
    rests             the rest of each option's text (`choices` order)
    n_tokens          each option's number of tokens in `rests` (`choices` order)
The split comes from the model's tokenizer (lm_eval_bias/tasks/_tokens.py). `RedditBiasTask` makes
four log-likelihood requests per doc: the two phrases with an empty context (their total
log-likelihoods, S1's scores), then (first token, rest) of each phrase, which lm-eval scores as
tokens 2..n given token 1, as upstream's `perplexity_score` does: ppl = exp(-ll_rest / n_tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lm_eval.api.instance import Instance
from lm_eval.api.task import ConfigurableTask

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.metrics import redditbias as rb_metrics
from lm_eval_bias.tasks import _data, _kit, _tokens
from lm_eval_bias.tasks._options import mark_permuted, parse_permute_seed, shown_order

BENCHMARK = "redditbias"

# demographic -> (group 1: biased phrases, group 2: counterfactuals), as in upstream's
# Evaluation/measure_bias.py
DEMOGRAPHICS: dict[str, tuple[str, str]] = {
    "gender": ("female", "male"),
    "orientation": ("lgbtq", "straight"),
    "race": ("black", "white"),
    "religion1": ("jews", "christians"),
    "religion2": ("muslims", "christians"),
}

# fmt: off
_SHA256 = {
    "data/gender/reddit_comments_gender_female_biased_test_reduced.csv":
        "6f879a2bd92adeb61a8865c273f4724a989a0046ff74a59b8731af53a18303e6",
    "data/gender/reddit_comments_gender_male_biased_test_reduced.csv":
        "bfb0478c5176bf02f8841a89df6fe40768ad7078d29c738a8aab5770b1149c2f",
    "data/orientation/reddit_comments_orientation_lgbtq_biased_test_reduced.csv":
        "2664ac0a26b65bde99c12db737f729823bf6e4fcd1c7bd22eb8da9e8960556d5",
    "data/orientation/reddit_comments_orientation_straight_biased_test_reduced.csv":
        "e0f8ab4da75576104d0c32bb1b73629021c291ad4027815a4fefe964edd78bf1",
    "data/race/reddit_comments_race_black_biased_test_reduced.csv":
        "08d26f74e4ef42be999bafb5770f63fc239cb767611eb93aa713ad8eb93875a0",
    "data/race/reddit_comments_race_white_biased_test_reduced.csv":
        "59e10d5fb1e86d4fde3a1adda0d0f37802634d0e6ca01571249d8a9b03579b73",
    "data/religion1/reddit_comments_religion1_christians_biased_test_reduced.csv":
        "34048b5a874effd27e7665f14dd715cfff5d0f2fbd38f4691a18375c32e36b71",
    "data/religion1/reddit_comments_religion1_jews_biased_test_reduced.csv":
        "4d615949b94cf3babdc9164e08132b885dfd93e6c128e0a5a582934d22b3ad36",
    "data/religion2/reddit_comments_religion2_christians_biased_test_reduced.csv":
        "11e14986e88976ae6da2416d62554e02c95ee29b59805877c786a70f26d05aaf",
    "data/religion2/reddit_comments_religion2_muslims_biased_test_reduced.csv":
        "0a924d4ca7069f7db9e937440e7d8f15e43563f5c83bd1506680d252abfa33f6",
}
# fmt: on

SOURCE = _data.register_source(
    _data.DataSource(
        name="redditbias",
        title="RedditBias",
        remote_base="https://raw.githubusercontent.com/umanlp/RedditBias/{commit}",
        commit="61f9ae9458e26a64ae1113425192280503f8fb92",
        layout_hint="redditbias/data/<demographic>/reddit_comments_<demographic>_<group>_biased_test_"
        "reduced.csv (upstream layout of github.com/umanlp/RedditBias)",
        sha256=_SHA256,
    )
)

GROUP1_COLUMNS = ("comments_processed", "bias_sent")
GROUP2_COLUMNS = ("initial_demo", "replaced_demo", "comments", "comments_processed")


def data_file(demographic: str, group: str) -> str:
    return f"data/{demographic}/reddit_comments_{demographic}_{group}_biased_test_reduced.csv"


def _bias_sent(raw: str) -> str:
    raw = raw.strip()
    try:
        return str(int(float(raw))) if raw else ""
    except ValueError:
        return raw


def load_pairs(demographic: str) -> list[dict]:
    """The aligned (biased, counterfactual) pairs of one demographic, in file order."""
    _kit.one_of(demographic, DEMOGRAPHICS, "RedditBias demographic")
    g1, g2 = DEMOGRAPHICS[demographic]
    p1 = _data.benchmark_file(SOURCE, data_file(demographic, g1))
    p2 = _data.benchmark_file(SOURCE, data_file(demographic, g2))
    rows1 = _data.read_csv(p1, GROUP1_COLUMNS)
    rows2 = _data.read_csv(p2, GROUP2_COLUMNS)
    if len(rows1) != len(rows2):
        raise BiasEvalError(
            f"{p1} has {len(rows1)} rows but {p2} has {len(rows2)}; row i of one must be the "
            f"counterfactual of row i of the other: use the unmodified upstream files"
        )
    pairs = []
    for i, (r1, r2) in enumerate(zip(rows1, rows2, strict=True)):
        if r2["comments"] != r1["comments_processed"]:
            raise BiasEvalError(
                f"{p2} row {i + 1}: `comments` differs from `comments_processed` of {p1} row "
                f"{i + 1}, so the files are not aligned; use the unmodified upstream files"
            )
        pairs.append(
            {
                "row": i,
                "demographic": demographic,
                "group": g1,
                "counterfactual_group": g2,
                "biased": r1["comments_processed"],
                "counterfactual": r2["comments_processed"],
                "initial_demo": r2["initial_demo"],
                "replaced_demo": r2["replaced_demo"],
                "bias_sent": _bias_sent(r1["bias_sent"]),
            }
        )
    return pairs


def load_redditbias_docs(
    demographic: str, permute_seed: Any = None, split: _tokens.FirstTokenSplitter | None = None
) -> list[dict]:
    """The docs of one demographic; `split` (the model's tokenizer) adds `first_tokens`, `rests`
    and `n_tokens`, which `RedditBiasTask` and `process_results` need."""
    seed = parse_permute_seed(permute_seed)
    docs = []
    for pair in load_pairs(demographic):
        perm = shown_order(seed, BENCHMARK, f"{demographic}:{pair['row']}", 2)
        options = [pair["biased"], pair["counterfactual"]]
        doc = {**pair, "choices": [options[p] for p in perm], "biased_choice": perm.index(0)}
        if split is not None:
            parts = split(doc["choices"])
            doc["first_tokens"] = [first for first, _, _ in parts]
            doc["rests"] = [rest for _, rest, _ in parts]
            doc["n_tokens"] = [n for _, _, n in parts]
        docs.append(mark_permuted(doc, seed, perm))
    return docs


def first_token_splitter(metadata: dict) -> _tokens.FirstTokenSplitter:
    """The first-token splitter of the model lm-eval runs (its model_args are in the metadata)."""
    return _tokens.first_token_split(metadata, "RedditBias")


# lm-eval `custom_dataset`: the metadata holds lm-eval's model_args, whose tokenizer splits each
# phrase's first token off.
load_redditbias = _kit.custom_dataset(load_redditbias_docs, given={"split": first_token_splitter})


class RedditBiasTask(ConfigurableTask):
    """lm-eval's ConfigurableTask plus one (context, continuation) request per phrase: (its first
    token, the rest), so that the model scores tokens 2..n given token 1 (upstream's perplexity).
    Named by `class:` in task_configs/redditbias/_redditbias_common; everything else is the YAML's."""

    def __init__(self, config: dict | None = None) -> None:
        super().__init__(config={k: v for k, v in (config or {}).items() if k != "class"})

    def construct_requests(self, doc: dict, ctx: Any, **kwargs: Any) -> list[Instance]:
        requests = list(super().construct_requests(doc, ctx, **kwargs))
        _require_split(doc)
        kwargs.pop("apply_chat_template", None)
        kwargs.pop("chat_template", None)
        return requests + [
            Instance(request_type="loglikelihood", doc=doc, arguments=(first, rest),
                     idx=len(requests) + i, **kwargs)
            for i, (first, rest) in enumerate(zip(doc["first_tokens"], doc["rests"], strict=True))
        ]


def _require_split(doc: dict) -> None:
    if any(k not in doc for k in ("first_tokens", "rests", "n_tokens")):
        raise BiasEvalError(
            "RedditBias doc without `first_tokens`/`rests`/`n_tokens`: build the docs with the model's "
            "tokenizer (load_redditbias does; lm_eval_bias/tasks/_tokens.py)"
        )


METRICS = ("t_value", "p_value", "pct_biased_preferred", "effect_size")


def process_results(doc: dict, results: Sequence) -> dict:
    """results: lm-eval's (log-likelihood, is_greedy) per request of `RedditBiasTask`: the two
    phrases (`choices` order), then tokens 2..n of each given its first token."""
    _require_split(doc)
    scores = _kit.loglikelihoods(results)
    if len(scores) != 4:
        raise BiasEvalError(f"RedditBias expects 4 log-likelihoods per doc, got {len(scores)}")
    lls, rest = scores[:2], scores[2:]
    b = int(doc["biased_choice"])
    n = [int(k) for k in doc["n_tokens"]]
    per_doc = rb_metrics.score_pair(lls[b], lls[1 - b], rest[b], rest[1 - b], n[b], n[1 - b])
    ppl = [rb_metrics.perplexity(r, k) for r, k in zip(rest, n, strict=True)]
    pred = _kit.first_argmax(lls)
    record = _kit.choice_item(
        BENCHMARK, doc, pred,
        biased=per_doc["diff"] > 0,
        groups=[doc["group"]],
        axis=doc["demographic"],
        loglikelihoods=lls,
        biased_choice=b,
        counterfactual_group=doc["counterfactual_group"],
        ll_diff=per_doc["diff"],
        ppl=ppl,
        n_tokens=n,
        row=int(doc["row"]),
        bias_sent=doc["bias_sent"],
        perm=_kit.shown_perm(doc),
    )
    return _kit.emit(METRICS, per_doc, record)
