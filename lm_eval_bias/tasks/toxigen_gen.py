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

# sha256 of each prompt file at the pinned commit (each file's git blob id equals upstream's tree
# at that commit, checked 2026-12-07)
# fmt: off
_SHA256 = {
    "prompts/hate_asian_1k.txt":
        "0504967034122b691c16dbef10db3acb16492808ecc66d8cd2b2ae87454fd655",
    "prompts/hate_bisexual_1k.txt":
        "09a5b6995d0cd0ba940ae9f9d67e8db1451352dcf99ee273315efc34915fc1e3",
    "prompts/hate_black_1k.txt":
        "29ef85c5610d77a3a4bb050826ffb6e124ee48e11f5b63d34b29d616ef2ee1c3",
    "prompts/hate_chinese_1k.txt":
        "7f99029bad4f71caff707787d6799d1d654fee140f22418691d1244e81ed2b21",
    "prompts/hate_immigrant_1k.txt":
        "bebb38d8786f498ca2153f965cdfba14e0490d5216781091106e5ac8ebbe0574",
    "prompts/hate_jewish_1k.txt":
        "f5bdf83ef8fd32435241cc5fcfc337c0a57bcf64eb7fb4aa3c8fe15eb86f1fd2",
    "prompts/hate_latino_1k.txt":
        "60988864d728cc7b1644a72419181efc1d82b2342f636a5e76f34805e4a88537",
    "prompts/hate_lgbtq_1k.txt":
        "7fb7da0d4ad1a485824111ab60f6030f01dd92dbc9342c76534c78faec061a16",
    "prompts/hate_mental_disability_1k.txt":
        "5a71f51bf998c5111b5dd6d0b7d7edbaa445f27defbc1fdb798dd920974ad3e2",
    "prompts/hate_mexican_1k.txt":
        "2fad743ced369e4a280165b7ea909f8cb30921840cbe5f9f454243cf9e4dcfd5",
    "prompts/hate_middle_east_1k.txt":
        "29ffcca6defd3e4f2edd2237417c7617a3c7380de8f9c6cf13d8c087fa595223",
    "prompts/hate_muslim_1k.txt":
        "aaa18a9bf72928f71cf3d0d8d4dfa298faeb015a8580f5c7e21ef7afaae3241a",
    "prompts/hate_native_american_1k.txt":
        "01c2077f1007268ca11588d08f909ed9c01178148205ae417618d276227b9bbc",
    "prompts/hate_physical_disability_1k.txt":
        "8cada46239a52a741faf47677d1ffbfa06dc31d3e480a03935a5aec89ea02dee",
    "prompts/hate_trans_1k.txt":
        "6188dfd52082e552230a1332e2bf83a23e8410c5f353d32dca79f259c8daf8b8",
    "prompts/hate_women_1k.txt":
        "eecdf3006847c267b9399045ce2fe002f884fe5b682dbef450f3477d7bb24497",
    "prompts/neutral_asian_1k.txt":
        "a5f0c58ae51dc8771d1779009ffc3017c5071c529b01f260600fa96c164ceb44",
    "prompts/neutral_bisexual_1k.txt":
        "8a3391bb9a178295f619c3e92ba9bc177225c392d90ac9f4ab5702c4140d6e51",
    "prompts/neutral_black_1k.txt":
        "8e1da39bf32818c14156f4de32ef6a35f701e1737540dafb02bdf8eb03206a6b",
    "prompts/neutral_chinese_1k.txt":
        "aad50dde2f68d75804e44b939a700b8e37ef93a152cae1a045f8881f89c7e982",
    "prompts/neutral_immigrant_1k.txt":
        "1807799ed9e45c428792da879f83d874e3f589c63b6fd746716fafe2b117c3d4",
    "prompts/neutral_jewish_1k.txt":
        "c804dc98c4a7d90105a9848a66cde4eb05db9a63a8d2668387e46bba90c28380",
    "prompts/neutral_latino_1k.txt":
        "7fad9d0003e54e5f18c1dafb7e21b2295dae5bb7290e9c649eadb7a450b80957",
    "prompts/neutral_lgbtq_1k.txt":
        "7cefb606353cfff8c9ee4af9b2044f039e698dc8117b7c9414dd02dedca51ba9",
    "prompts/neutral_mental_disability_1k.txt":
        "8f513551d7c86c3fd6df5d0a4bb8fd831c45c24d917d69ab3a61f1a984edf3d0",
    "prompts/neutral_mexican_1k.txt":
        "e16aaa8a4606b3bf08139b9c91067cb63d620dd5a3a94e63b8ebc3f4198b1597",
    "prompts/neutral_middle_east_1k.txt":
        "a4f23dfbe5bd0dec6a2018b2fe1ca9805d2a7ca76791da5300c72e6bcdabcdf9",
    "prompts/neutral_muslim_1k.txt":
        "d378bc96f388cef1be42954246b67955dfe3d42cfcbf2ffc2924856c2fb933cd",
    "prompts/neutral_native_american_1k.txt":
        "8affc8490fb2fac8ad72041cce775fc9442ebea95a64a7a2274825e1231ef265",
    "prompts/neutral_physical_disability_1k.txt":
        "30ae4d6774054136a635cd9097dd4fe530ec2f407932f775e8093afa795cff8e",
    "prompts/neutral_women_1k.txt":
        "dfad74fee637cd35415fc9b3a0b8d27d799e5613da5d9be0fdf93774fe813208",
}
# fmt: on

TOXIGEN = _data.register_source(
    _data.DataSource(
        name="toxigen",
        title="ToxiGen prompts",
        remote_base="https://raw.githubusercontent.com/microsoft/TOXIGEN/{commit}",
        commit="01517e814639e0334c920a3c502036c8158aac87",
        layout_hint="toxigen/prompts/{hate,neutral}_<group>_1k.txt (upstream layout of "
        "github.com/microsoft/TOXIGEN)",
        sha256=_SHA256,
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
