"""BiasLens choice questions (Li et al. 2024/25, "Fairness Testing of Large Language Models in
Role-Playing") for lm-eval: data loading, prompts, per-item records.

Named from `task_configs/biaslens/*`; no import-time side effects. Scores:
`lm_eval_bias.metrics.biaslens`.

Upstream's `questions/{without_role,role}/<attribute>_questions.csv` (`Role`, `Question Type`,
`Question`); only the rows of type `Choice` are used. Their question ends with three lettered
options, `... (A) Boys (B) Girls (C) I cannot make any choice`; the third is always the refusal.

Each doc:
    row             0-based index of the row among all rows of its file (stable item id)
    role, question  upstream's fields (question unchanged)
    attribute       e.g. "age"; variant: "without_role" | "role"
    stem            the question before "(A)"
    choices         the three option texts (trailing ".?]" of the refusal stripped), upstream's
                    order (A, B, C) or permuted; the prompt letters them in the shown order
    refusal_choice  index of "I cannot make any choice"
    perm, permute_seed  only with `--metadata '{"permute_seed": N}'`
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.metrics import biaslens as bl_metrics
from lm_eval_bias.tasks import _data
from lm_eval_bias.tasks._options import option_permutation, parse_permute_seed
from lm_eval_bias.tasks._records import make_bias_item

BENCHMARK = "biaslens"
ATTRIBUTES = (
    "ability", "age", "body", "character", "culture", "gender", "occupations", "race",
    "religion", "social", "victim",
)  # fmt: skip
VARIANTS = ("without_role", "role")
COLUMNS = ("Role", "Question Type", "Question")
REFUSAL = "I cannot make any choice"
LETTERS = "ABC"

# fmt: off
_SHA256 = {
    "questions/role/ability_questions.csv": "ef7ae0cd6ac5d29b6eee89c573692a9ae5133380867e0f96ee99fab97048cff6",
    "questions/role/age_questions.csv": "d8dea45ed9fa1813736aaca001a38c06d74b09643bb32894a44a486cd57e4699",
    "questions/role/body_questions.csv": "62a79070b361dc53d3947bdc0d4f702cf0660175ffaefcb29d0da13fca6559da",
    "questions/role/character_questions.csv": "84e13de0d82179f7f28c955785f38f10ca5afaccf95be1a9d119cd27f0c4f9fa",
    "questions/role/culture_questions.csv": "0dbae838b1bca04674ff363ffbc22af29864e919c230ab7c405e2427b13cd187",
    "questions/role/gender_questions.csv": "1ebced83982ee9699c59cbc00c9ae7274ba4e44188738662b906285e115af92f",
    "questions/role/occupations_questions.csv": "151498b29fd0e7138744f6affd8c40f8a84e52e645c33c6fe423d0406554d044",
    "questions/role/race_questions.csv": "cfbad3b9c6624b5a9e6018df61b49afee2a38989d792f3a5e3e11bf7c1be3d28",
    "questions/role/religion_questions.csv": "b7c4d9c4b42330eef8b3f43599ccba297f5a4cfa824e97891d495aba9516d48f",
    "questions/role/social_questions.csv": "22b8225eab5dc8d58f8cebecdbd26df32b32f8bf117c4d482bf25220e96c5742",
    "questions/role/victim_questions.csv": "a004f8dbb4bb24ce45b833664a5d1cba6dea7a17e949d22daf4e0e62d8f3bfd3",
    "questions/without_role/ability_questions.csv": "e749197ab6bb1d2610e52daf29ebd3694b50a8eae6826b27391fead8ec3589e2",
    "questions/without_role/age_questions.csv": "999a08f2dcbd5eeaa53198548cfa8dc5421771b422332c987f06a0fd9d225299",
    "questions/without_role/body_questions.csv": "9e744551a4b77c86ff0c9080517c566bbb5f8767f7c785fa3be12ac460bfb7a2",
    "questions/without_role/character_questions.csv": "052ead217cd10189b47c88121d8704c670868206bd20512e11a3d49d5343487d",
    "questions/without_role/culture_questions.csv": "f0b566b6248b58f34615e47f0c19eaaa9241359f9b84bff5b3839aa7037789a4",
    "questions/without_role/gender_questions.csv": "1c50391f7155d0db177968cb8416e515a31d37b13aac300aa5e9bd72fdf46d6c",
    "questions/without_role/occupations_questions.csv": "fe3918588404b32ff6ab2c55354b2f545f6c41aea5e5eb863c7ad780bb378075",
    "questions/without_role/race_questions.csv": "ecfdaa1e10b8f2541e1b2ea161a4e0e51ab75c62b9b10a2d4e29c2b9af50fe21",
    "questions/without_role/religion_questions.csv": "9b989e7d60d1fe89496956068310f6282da1379571b9bf0263b8c24bb5b79e9c",
    "questions/without_role/social_questions.csv": "25a659f35edeec2f10c487692a1a3f59e74464207fe5d4488fc961fcaa5b9d4d",
    "questions/without_role/victim_questions.csv": "1d793885aa396aaa2c0f4c90b631a098780d9a2f9c1eeb48c4563f1fd23799d2",
}
# fmt: on

SOURCE = _data.DataSource(
    name="biaslens",
    title="BiasLens",
    remote_base="https://raw.githubusercontent.com/LLMBias/BiasLens/{commit}",
    commit="acf8cb214ba012ef083f35956d1b757d8d36a749",
    layout_hint="biaslens/questions/{without_role,role}/<attribute>_questions.csv "
    "(upstream layout of github.com/LLMBias/BiasLens)",
    sha256=_SHA256,
)

_OPTIONS = re.compile(r"^(?P<stem>.*?)\s*\(A\)(?P<a>.*?)\(B\)(?P<b>.*?)\(C\)(?P<c>.*)$", re.DOTALL)


def data_file(variant: str, attribute: str) -> str:
    return f"questions/{variant}/{attribute}_questions.csv"


def split_question(question: str, where: str) -> tuple[str, list[str]]:
    """(stem, [option A, option B, option C]) of a choice question."""
    m = _OPTIONS.match(question.strip())
    if not m:
        raise BiasEvalError(f"{where}: no '(A) ... (B) ... (C) ...' options in {question!r}")
    options = [m.group(k).strip().rstrip(".?]").strip() for k in "abc"]
    if not all(options):
        raise BiasEvalError(f"{where}: an empty option in {question!r}; use the upstream file")
    return m.group("stem").strip(), options


def load_biaslens_docs(
    attribute: str, variant: str = "without_role", permute_seed: Any = None
) -> list[dict]:
    if attribute not in ATTRIBUTES:
        raise BiasEvalError(
            f"unknown BiasLens attribute {attribute!r}; choose one of {', '.join(ATTRIBUTES)}"
        )
    if variant not in VARIANTS:
        raise BiasEvalError(
            f"unknown BiasLens variant {variant!r}; choose one of {', '.join(VARIANTS)}"
        )
    seed = parse_permute_seed(permute_seed)
    path = _data.benchmark_file(SOURCE, data_file(variant, attribute))
    docs = []
    for row, rec in enumerate(_data.read_csv(path, COLUMNS)):
        if rec["Question Type"] != "Choice":
            continue
        stem, options = split_question(rec["Question"], f"{path} row {row}")
        refusal = [i for i, o in enumerate(options) if o.lower() == REFUSAL.lower()]
        if len(refusal) != 1:
            raise BiasEvalError(
                f"{path} row {row}: expected exactly one option {REFUSAL!r}, got {options}; "
                f"use the unmodified upstream file"
            )
        perm = (
            [0, 1, 2]
            if seed is None
            else option_permutation(seed, BENCHMARK, f"{variant}:{attribute}:{row}", 3)
        )
        doc = {
            "row": row,
            "role": rec["Role"],
            "question": rec["Question"],
            "attribute": attribute,
            "variant": variant,
            "stem": stem,
            "choices": [options[p] for p in perm],
            "refusal_choice": perm.index(refusal[0]),
        }
        if seed is not None:
            doc["perm"] = perm
            doc["permute_seed"] = seed
        docs.append(doc)
    if not docs:
        raise BiasEvalError(f"{path} has no Choice questions; use the unmodified upstream file")
    return docs


def load_biaslens(
    attribute: str = "",
    variant: str = "without_role",
    permute_seed: Any = None,
    **_lm_eval_metadata: Any,
):
    """lm-eval `custom_dataset`: `load_biaslens(**metadata, **dataset_kwargs)`."""
    docs = load_biaslens_docs(attribute, variant, permute_seed)
    return _data.test_split(docs)


def doc_to_text(doc: dict) -> str:
    """The question with its options lettered in the shown order, then "Answer:"."""
    options = " ".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(doc["choices"]))
    return f"{doc['stem']} {options}\nAnswer:"


def doc_to_choice(doc: dict) -> list[str]:
    """Each option is scored as the continuation " (A) <option text>"."""
    return [f"({LETTERS[i]}) {c}" for i, c in enumerate(doc["choices"])]


METRICS = ("biased_rate",)


def process_results(doc: dict, results: Sequence) -> dict:
    lls = [float(r[0]) if isinstance(r, (tuple, list)) else float(r) for r in results]
    pred = max(range(len(lls)), key=lls.__getitem__)  # first of ties
    refusal = int(doc["refusal_choice"])
    per_doc = bl_metrics.score_item(pred, refusal)
    record = make_bias_item(
        benchmark=BENCHMARK,
        choices=list(doc["choices"]),
        pred=pred,
        loglikelihoods=lls,
        gold=None,
        biased=bool(per_doc),
        groups=[c for i, c in enumerate(doc["choices"]) if i != refusal],
        axis=doc["attribute"],
        refusal_choice=refusal,
        role=doc["role"],
        variant=doc["variant"],
        row=int(doc["row"]),
        perm=list(doc["perm"]) if doc.get("perm") is not None else None,
    )
    return {**{m: per_doc for m in METRICS}, "bias_item": record}
