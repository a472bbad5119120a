"""upstream/: the self-contained lm-eval task folders proposed to lm-evaluation-harness.

Two kinds of checks keep them in sync with our tasks:

* fast, in this process: every folder's utils.py imports nothing of lm_eval_bias; its task list
  matches ours; on real rows of ../shared/data with the same synthetic log-likelihoods, its
  per-item values and aggregations equal our task's.
* end to end: `python -m lm_eval --include_path <copy of upstream/<bench>>` runs in a Python
  environment where lm_eval_bias cannot be imported (a venv whose site-packages links every
  package of this one except lm_eval_bias and its startup hook; the test asserts the import fails
  there), on the local data files: the copy differs from upstream/<bench> only in the data
  location (the pinned GitHub raw URL prefix replaced by the local folder). Its per-document
  metric values are compared with our task's run on the same documents, with the same tiny model.
"""

from __future__ import annotations

import ast
import csv
import importlib.util
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml
from conftest import NETGUARD_DIR, REPO_ROOT, SHARED_DATA, run_cli

UPSTREAM = REPO_ROOT / "upstream"
DATA = Path(os.environ.get("LM_EVAL_BIAS_DATA_DIR", SHARED_DATA))
# pinned raw URL prefix in the committed YAMLs -> local copy of the same files
DATA_PREFIX = {
    "bbq": (
        "https://raw.githubusercontent.com/nyu-mll/BBQ/bea11bd97d79217245b5871acd247b9d6eb24598",
        DATA / "bbq",
    ),
    "bold": (
        (
            "https://raw.githubusercontent.com/amazon-science/bold/"
            "3ad652c773f5d1e30d5f6f61657ed934d768ecad/prompts"
        ),
        DATA / "bold" / "prompts",
    ),
    "winobias": (
        (
            "https://raw.githubusercontent.com/uclanlp/corefBias/"
            "0bce984dd081bbc10b0622f326727a024c607895/WinoBias/wino/data"
        ),
        DATA / "winobias" / "data",
    ),
}


def load_utils(bench: str):
    path = UPSTREAM / bench / "utils.py"
    spec = importlib.util.spec_from_file_location(f"upstream_{bench}_utils", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def task_names(bench: str) -> set[str]:
    names = set()
    for path in (UPSTREAM / bench).glob("*.yaml"):
        text = path.read_text()
        cfg = yaml.safe_load("\n".join(ln for ln in text.splitlines() if "!function" not in ln))
        if "task" in cfg and isinstance(cfg["task"], str):
            names.add(cfg["task"])
    return names


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def close(a: float, b: float) -> bool:
    """Aggregates: equal up to summation order (1e-12 relative), or both NaN."""
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


def assert_same_item(ours: dict, theirs: dict, where: str, keys=None) -> None:
    """Every key of our per-item value (or of `keys`) has the same value upstream."""
    keys = set(ours) if keys is None else set(keys)
    assert keys <= set(theirs), f"{where}: keys {keys - set(theirs)} missing upstream"
    for key in keys:
        assert same(ours[key], theirs[key]), f"{where}: {key} ours {ours[key]} vs {theirs[key]}"


@pytest.mark.parametrize("bench", ["bbq", "stereoset", "winobias", "bold"])
def test_utils_imports_nothing_of_this_package(bench):
    tree = ast.parse((UPSTREAM / bench / "utils.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    allowed = {"__future__", "datasets", "collections", "functools", "itertools", "json", "re",
               "transformers", "vaderSentiment"}
    assert imported <= allowed, imported
    for path in (UPSTREAM / bench).iterdir():
        if path.is_file():
            assert "lm_eval_bias" not in path.read_text(), f"{path} names lm_eval_bias"


@pytest.fixture(scope="module")
def upstream_index():
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(UPSTREAM))


@pytest.mark.parametrize("bench", ["bbq", "stereoset", "winobias", "bold"])
def test_readme_names_only_tasks_that_exist(bench, upstream_index):
    """Every task or group named in the README's "Groups and Tasks" section is indexed by lm-eval
    from upstream/<bench>, and every task of the folder is named there or in a brace pattern."""
    text = (UPSTREAM / bench / "README.md").read_text()
    section = text.split("### Groups and Tasks")[1].split("### Checklist")[0]
    named = {n for n in re.findall(r"`([a-z0-9_]+)`", section) if n.split("_")[0] == bench}
    for name in named:
        entry = upstream_index.task_index.get(name)
        assert entry is not None and str(UPSTREAM / bench) in str(entry.yaml_path), name
    assert bench in upstream_index.all_groups
    for pattern in re.findall(r"`([a-z0-9_]*\{[a-z0-9_,]+\}[a-z0-9_]*)`", section):
        head, alts, tail = re.match(r"(.*)\{(.*)\}(.*)", pattern).groups()
        named |= {f"{head}{alt}{tail}" for alt in alts.split(",")}
    assert task_names(bench) <= named


# ---------------------------------------------------------------- BBQ, in this process


def test_bbq_tasks_match_ours():
    from lm_eval_bias.tasks import bbq as ours

    expected = {f"bbq_{suffix}" for suffix in ours.CATEGORIES.values()}
    name_categories = ("Gender_identity", "Race_ethnicity", "Race_x_SES", "Race_x_gender")
    expected |= {f"bbq_{ours.CATEGORIES[c]}_names" for c in name_categories}
    assert task_names("bbq") == expected


@pytest.fixture(scope="module")
def bbq_metadata():
    utils = load_utils("bbq")
    with (DATA / "bbq" / "supplemental" / "additional_metadata.csv").open(newline="") as fh:
        return utils.read_metadata(csv.DictReader(fh))


def test_bbq_metadata_read_as_upstream_lists_it(bbq_metadata):
    assert len(bbq_metadata) == 58_492
    assert sum(n for _, _, n in bbq_metadata.values()) == 58_556
    assert sum(loc is None for loc, _, _ in bbq_metadata.values()) == 16
    assert sum(n == 2 for _, _, n in bbq_metadata.values()) == 64


@pytest.mark.parametrize("category", ["Age", "Gender_identity", "Race_x_SES"])
def test_bbq_items_and_scores_equal_ours(category, bbq_metadata):
    """Same options, prompt, gold, targets; same per-item values and scores for the same
    log-likelihoods (no ties: tie handling is tested on its own below)."""
    from lm_eval_bias.metrics import bbq as our_metrics
    from lm_eval_bias.tasks import bbq as ours

    utils = load_utils("bbq")
    rows = [json.loads(line) for line in (DATA / "bbq" / "data" / f"{category}.jsonl").open()]
    our_docs = ours.load_bbq_docs(category)
    by_id = {int(r["example_id"]): r for r in rows}
    rng = random.Random(category)
    ours_vals, theirs_vals = [], []
    for doc in our_docs[::7]:
        row = by_id[int(doc["example_id"])]
        up = {**row, **utils.add_fields(row, bbq_metadata)}
        assert up["choices"] == doc["choices"] and up["gold"] == doc["gold"]
        assert (up["unknown_choice"], up["biased_choice"]) == (
            doc["unknown_choice"], doc["biased_choice"])
        assert f"{up['context']}\n\nQ: {up['question']}\nA:" == ours.doc_to_text(doc)
        results = [(rng.uniform(-30, -1), False) for _ in range(3)]
        mine = ours.process_results(doc, results)
        theirs = utils.process_results(up, results)
        assert set(theirs) == set(utils.METRICS) <= set(mine)
        assert_same_item(mine["acc_amb"], theirs["acc_amb"], f"{category}/{doc['example_id']}")
        ours_vals.append(mine["acc_amb"])
        theirs_vals.append(theirs["acc_amb"])
    for name in utils.METRICS:
        assert close(getattr(our_metrics, name)(ours_vals), getattr(utils, name)(theirs_vals)), name


REF_BBQ = REPO_ROOT / "tests" / "reference" / "bbq"
# the R script's score models -> their name in df_bbq.csv (tests/reference/bbq/README.md)
BBQ_SCORE_MODELS = {
    "deberta_base": "deberta-v3-base-race",
    "deberta_large": "deberta-v3-large-race",
    "roberta_base": "roberta-base-race",
    "roberta_large": "roberta-large-race",
}


def test_bbq_scores_equal_upstreams_r_script():
    """tests/reference/bbq: real rows, synthetic option scores of 4 score models (ties included),
    and the tables upstream's BBQ_calculate_bias_score.R computed from them."""
    utils = load_utils("bbq")
    with (REF_BBQ / "additional_metadata.csv").open(newline="") as fh:
        metadata = utils.read_metadata(csv.DictReader(fh))
    with (REF_BBQ / "df_bbq.csv").open(newline="") as fh:
        scores = {(r["model"], r["cat"], int(r["index"])): [float(r[f"ans{i}"]) for i in range(3)]
                  for r in csv.DictReader(fh)}
    groups: dict = {}
    for line in (REF_BBQ / "preds.jsonl").read_text().splitlines():
        row = json.loads(line)
        doc = {**row, **utils.add_fields(row, metadata)}
        category = doc["category"] + (" (names)" if doc["label_type"] == "name" else "")
        for model, name in BBQ_SCORE_MODELS.items():
            lls = scores[(name, doc["category"], int(doc["example_id"]))]
            value = utils.process_results(doc, [(x, False) for x in lls])["acc_amb"]
            groups.setdefault((category, model), []).append(value)
    assert sum(v["invalid"] for vs in groups.values() for v in vs) > 0  # ties are in the inputs
    expected = json.loads((REF_BBQ / "expected.json").read_text())
    n_checked = 0
    for row in expected["accuracy"]:
        key = (row["category"], row["model"])
        if row["model"] in BBQ_SCORE_MODELS:
            fn = utils.acc_amb if row["context_condition"] == "ambig" else utils.acc_disamb
            assert fn(groups[key]) == pytest.approx(row["accuracy"], abs=1e-12), key
            n_checked += 1
    for row in expected["bias"]:
        key = (row["category"], row["model"])
        if row["model"] in BBQ_SCORE_MODELS:
            fn = utils.bias_amb if row["context_condition"] == "ambig" else utils.bias_disamb
            assert 100 * fn(groups[key]) == pytest.approx(row["acc_bias"], abs=1e-10), key
            n_checked += 1
    assert n_checked > 100


def test_bbq_tie_is_no_answer_and_weights_count():
    utils = load_utils("bbq")
    doc = {"context_condition": "ambig", "gold": 2, "unknown_choice": 2, "biased_choice": 0,
           "metadata_rows": 2}
    tie = utils.process_results(doc, [(-1.0, False), (-1.0, False), (-5.0, False)])["acc_amb"]
    assert (tie["invalid"], tie["biased"], tie["correct"]) == (1, None, 0)
    biased = utils.score_item(doc, 0)
    unbiased = {**utils.score_item({**doc, "metadata_rows": 1}, 1)}
    items = [tie, biased, unbiased]
    # scored: biased (w 2) and unbiased (w 1); n_biased 2 of 3 non-unknown answers
    assert utils.acc_amb(items) == 0.0
    assert utils.bias_amb(items) == pytest.approx(1.0 * (2 * 2 / 3 - 1))
    assert utils.invalid_rate(items) == pytest.approx(1 / 3)


# ---------------------------------------------------------------- StereoSet, in this process


def stereoset_hub_rows(fmt: str) -> list[dict]:
    """dev.json's items in the row layout of the hub copy McGill-NLP/stereoset (its loading script
    turns each item into one row, with `sentences` column-wise)."""
    data = json.loads((DATA / "stereoset" / "data" / "dev.json").read_text())["data"][fmt]
    rows = []
    for item in data:
        sents = item["sentences"]
        rows.append({
            "id": item["id"], "target": item["target"], "bias_type": item["bias_type"],
            "context": item["context"],
            "sentences": {
                "sentence": [s["sentence"] for s in sents],
                "id": [s["id"] for s in sents],
                "labels": [{"label": [x["label"] for x in s["labels"]],
                            "human_id": [x["human_id"] for x in s["labels"]]} for s in sents],
                "gold_label": [s["gold_label"] for s in sents],
            },
        })
    return rows


def test_stereoset_tasks_match_ours():
    from lm_eval_bias.tasks import stereoset as ours

    expected = {f"stereoset_{f}_{d}" for f in ours.FORMATS for d in ours.DOMAINS}
    assert task_names("stereoset") == expected


# Which of our per-item values equals which upstream one: both score options per token (with the
# intersentence full stop), and keep per-character scoring as the *_char variant.
STEREOSET_PAIRS = [("lms", "lms"), ("lms_char", "lms_char")]


@pytest.fixture(scope="module")
def tiny_tokenizer(tiny_llama_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llama_dir)


@pytest.mark.parametrize("fmt", ["intra", "inter"])
def test_stereoset_items_and_scores_equal_ours(fmt, tiny_tokenizer):
    from lm_eval_bias.metrics import stereoset as our_metrics
    from lm_eval_bias.tasks import stereoset as ours

    utils = load_utils("stereoset")
    name = ours.FORMATS[fmt]
    rows = {r["id"]: r for r in stereoset_hub_rows(name)}
    rng = random.Random(fmt)
    for domain in ours.DOMAINS:
        our_docs = ours.add_token_counts(ours.load_stereoset_docs(fmt, domain), tiny_tokenizer, {})
        vals: dict = {pair: ([], []) for pair in STEREOSET_PAIRS}
        for doc in our_docs:
            row = rows[doc["id"]]
            up = {**row, **utils.add_tokens(row, name, tiny_tokenizer)}
            assert up["bias_type"] == domain
            keys = ["choices", "labels", "stereo_choice", "anti_choice", "unrelated_choice"]
            for key in keys + ["prompt", "n_tokens"]:
                assert up[key] == doc[key], (doc["id"], key)
            results = [(float(rng.randint(-60, -5)), False) for _ in range(3)]  # ties happen
            mine, theirs = ours.process_results(doc, results), utils.process_results(up, results)
            for our_key, up_key in STEREOSET_PAIRS:
                assert_same_item(mine[our_key], theirs[up_key], f"{fmt}/{domain}/{doc['id']}")
                vals[(our_key, up_key)][0].append(mine[our_key])
                vals[(our_key, up_key)][1].append(theirs[up_key])
        for (ours_vals, theirs_vals) in vals.values():
            for agg in ("lms", "ss", "icat"):
                assert close(getattr(our_metrics, agg)(ours_vals), getattr(utils, agg)(theirs_vals))


def test_stereoset_token_counts_are_lm_evals(tiny_llama_dir):
    """The counts the per-token scores divide by are the continuation tokens lm-eval's HFLM scores
    (its loglikelihood: prefix token for an empty context, else _encode_pair)."""
    from lm_eval.models.huggingface import HFLM

    utils = load_utils("stereoset")
    lm = HFLM(pretrained=str(tiny_llama_dir), device="cpu")
    for name in ("intrasentence", "intersentence"):
        for row in stereoset_hub_rows(name)[:40]:
            doc = {**row, **utils.add_tokens(row, name, lm.tokenizer)}
            delim = "" if name == "intrasentence" else " "
            for cont, n in zip(doc["choices"], doc["n_tokens"]):
                if doc["prompt"] == "":
                    enc = lm.tok_encode(delim + cont, add_special_tokens=False)
                    expected = len(enc) - 1 if enc[0] == lm.prefix_token_id else len(enc)
                else:
                    expected = len(lm._encode_pair(doc["prompt"], delim + cont)[1])
                assert n == expected, (row["id"], cont)
    assert utils.scored_prompt("I met a chess player", "intersentence") == "I met a chess player."
    assert utils.scored_prompt("Is he?", "intersentence") == "Is he?"


def test_stereoset_label_indices_of_the_hub_copy_are_read():
    """The hub copy may store gold labels as class indices (anti-stereotype, stereotype,
    unrelated) instead of names; both give the same options."""
    utils = load_utils("stereoset")
    row = stereoset_hub_rows("intrasentence")[0]
    as_ints = {**row, "sentences": {**row["sentences"], "gold_label": [
        utils.LABELS.index(x) for x in row["sentences"]["gold_label"]]}}
    assert utils.add_fields(as_ints) == utils.add_fields(row)


# ---------------------------------------------------------------- WinoBias, in this process


def test_winobias_tasks_and_occupations_match_ours():
    from lm_eval_bias.tasks import winobias as ours

    utils = load_utils("winobias")
    assert task_names("winobias") == {f"winobias_type{t}" for t in ours.TYPES}
    assert utils.OCCUPATIONS == ours.read_occupations(DATA / "winobias")
    assert utils.PRONOUN_GENDER == ours.PRONOUN_GENDER


@pytest.mark.parametrize("wb_type", [1, 2])
def test_winobias_items_and_scores_equal_ours(wb_type):
    import datasets

    from lm_eval_bias.metrics import winobias as our_metrics
    from lm_eval_bias.tasks import winobias as ours

    utils = load_utils("winobias")
    files = [str(DATA / "winobias" / ours.data_file(wb_type, c)) for c in ours.CONDS]
    rows = datasets.load_dataset("text", data_files={"test": files}, split="test")
    up_docs = list(utils.process_docs(rows))
    our_docs = ours.load_winobias_docs(wb_type)
    assert len(up_docs) == len(our_docs) == 792
    rng = random.Random(wb_type)
    ours_vals, theirs_vals = [], []
    for up, doc in zip(up_docs, our_docs):
        for key in ("line", "cond", "sentence", "pronoun", "gender", "choices", "gold",
                    "stereotype_choice"):
            assert up[key] == doc[key], (doc["cond"], doc["line"], key)
        assert f"{up['sentence']}\nQ: Who does '{up['pronoun']}' refer to?\nA:" == (
            ours.doc_to_text(doc))
        results = [(float(rng.randint(-9, -1)), False) for _ in range(2)]  # ties happen
        mine, theirs = ours.process_results(doc, results), utils.process_results(up, results)
        assert_same_item(mine["acc"], theirs["acc"], f"{doc['cond']} line {doc['line']}")
        ours_vals.append(mine["acc"])
        theirs_vals.append(theirs["acc"])
    assert {"acc", "acc_pro", "acc_anti", "avg", "diff", "gap"} <= set(utils.METRICS)
    for name in utils.METRICS:
        assert close(getattr(our_metrics, name)(ours_vals), getattr(utils, name)(theirs_vals))
    pro, anti = utils.acc_pro(theirs_vals), utils.acc_anti(theirs_vals)
    assert utils.avg(theirs_vals) == pytest.approx((pro + anti) / 2)
    assert utils.diff(theirs_vals) == pytest.approx(abs(pro - anti))
    assert utils.acc(theirs_vals) == pytest.approx(utils.avg(theirs_vals))  # 396 pro, 396 anti


# ---------------------------------------------------------------- BOLD, in this process
# upstream/bold scores sentiment only (VADER, as the BOLD paper); our task adds toxicity scores
BOLD_KEYS = ("group", "sentiment", "n_empty")


def test_bold_tasks_match_ours():
    from lm_eval_bias.tasks import bold as ours

    assert task_names("bold") == {f"bold_{d}" for d in ours.DOMAINS}


@pytest.mark.parametrize("domain", ["gender", "religious_ideology"])
def test_bold_items_and_scores_equal_ours(domain):
    from lm_eval_bias.metrics import sentiment as our_sentiment
    from lm_eval_bias.metrics import toxicity as our_toxicity
    from lm_eval_bias.tasks import _open
    from lm_eval_bias.tasks import bold as ours

    utils = load_utils("bold")
    nested = json.loads((DATA / "bold" / "prompts" / f"{domain}_prompt.json").read_text())
    up_docs = utils.flatten(nested, domain)
    our_docs = ours.load_bold_docs(domain)
    assert len(up_docs) == len(our_docs)
    for up, doc in zip(up_docs, our_docs):
        for key in ("group", "name", "prompt", "prompt_index"):
            assert up[key] == doc[key]
        assert utils.doc_to_text(up) == ours.doc_to_text(doc)
    # continuations: positive, negative, neutral, empty and threshold cases, cycled over the docs
    texts = ["is a wonderful, kind and brilliant person.", "was a terrible, cruel murderer.",
             "was born in 1950.", "", "is good.", "is bad and sad.", "loved, hated."]
    docs = our_docs[::3]
    conts = [texts[i % len(texts)] for i in range(len(docs))]
    scored = _open.score_toxicity_and_sentiment([[c] for c in conts], docs)
    ours_vals, theirs_vals = [], []
    for doc, text, s in zip(docs, conts, scored):
        mine = ours.process_results(doc, [s])["sentiment_score"]
        theirs = utils.process_results(doc, [text])["sentiment_score"]
        assert_same_item(mine, theirs, f"{domain} {doc['name']}", BOLD_KEYS)
        ours_vals.append(mine)
        theirs_vals.append(theirs)
    assert sum(v["n_empty"] for v in theirs_vals) > 0
    pairs = [(our_sentiment.agg_sentiment_score, utils.sentiment_score),
             (our_sentiment.agg_sentiment_gap, utils.sentiment_gap),
             (our_sentiment.agg_positive_rate, utils.positive_rate),
             (our_sentiment.agg_negative_rate, utils.negative_rate),
             (our_toxicity.agg_n_empty, utils.n_empty)]
    for our_fn, up_fn in pairs:
        assert close(float(our_fn(ours_vals)), float(up_fn(theirs_vals))), up_fn.__name__


def test_bold_scores_equal_s1s_code():
    """tests/reference/bold: real prompts with synthetic continuations and compounds (empty and
    whitespace-only texts, threshold values) and the per-domain figures S1's
    results_processor.py computed from them."""
    utils = load_utils("bold")
    ref = REPO_ROOT / "tests" / "reference" / "bold"
    expected = json.loads((ref / "expected.json").read_text())
    by_domain: dict = {}
    for row in json.loads((ref / "inputs.json").read_text()):
        value = utils.item_value(row["group"], row["text"], row["sentiment"])
        by_domain.setdefault(row["domain"], []).append(value)
    assert len(by_domain) == 3
    for domain, items in by_domain.items():
        assert utils.sentiment_score(items) == pytest.approx(
            expected["sentiment"]["group"][domain], abs=1e-12), domain
        assert utils.sentiment_gap(items) == pytest.approx(
            expected["abs_sent_diff"]["group"][domain], abs=1e-12), domain
        means = utils.class_means(items)  # sikhism, all empty, has no value in either
        assert set(means) == set(expected["sentiment"]["subgroup"][domain])
        for group, value in expected["sentiment"]["subgroup"][domain].items():
            assert means[group] == pytest.approx(value, abs=1e-12), (domain, group)


# ---------------------------------------------------------------- end to end, clean environment


@pytest.fixture(scope="module")
def clean_python(tmp_path_factory) -> Path:
    """A venv that sees this environment's packages except lm_eval_bias and its hook."""
    env_dir = tmp_path_factory.mktemp("clean") / "venv"
    venv.EnvBuilder(system_site_packages=False, with_pip=False, symlinks=True).create(env_dir)
    src = Path(sys.executable).parent.parent / "lib"
    src = next(src.glob("python3*/site-packages"))
    dst = next((env_dir / "lib").glob("python3*/site-packages"))
    for entry in src.iterdir():
        if entry.name.startswith(("lm_eval_bias", "_editable_impl_lm_eval_bias")):
            continue
        (dst / entry.name).symlink_to(entry)
    python = env_dir / "bin" / "python"
    proc = subprocess.run([str(python), "-c", "import lm_eval_bias"], env=clean_env(env_dir),
                          cwd=env_dir, capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "No module named 'lm_eval_bias'" in proc.stderr, proc.stderr
    proc = subprocess.run([str(python), "-c", "import lm_eval, transformers, datasets"],
                          env=clean_env(env_dir), cwd=env_dir, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return python


def clean_env(env_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LM_EVAL_BIAS")}
    env["PYTHONPATH"] = str(NETGUARD_DIR)  # the network guard only; not this checkout
    env["HF_DATASETS_CACHE"] = str(env_dir.parent / "hf-datasets")
    return env


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path} has no {old!r}"
    path.write_text(text.replace(old, new))


def local_copy(bench: str, dest: Path) -> Path:
    """upstream/<bench> with only the data location changed: BBQ's pinned URL prefix -> the local
    folder; StereoSet's hub copy -> local JSON lines in the hub copy's row layout."""
    out = dest / bench
    shutil.copytree(UPSTREAM / bench, out, ignore=shutil.ignore_patterns("__pycache__"))
    if bench in DATA_PREFIX:
        url, local = DATA_PREFIX[bench]
        pinned = [path for path in out.glob("*.yaml") if url in path.read_text()]
        assert pinned, f"no YAML of upstream/{bench} names {url}"
        for path in pinned:
            replace_in(path, url, str(local))
    elif bench == "stereoset":
        for fmt in ("intrasentence", "intersentence"):
            rows = dest.parent / f"stereoset_{fmt}.jsonl"
            rows.write_text("".join(json.dumps(r) + "\n" for r in stereoset_hub_rows(fmt)))
            for path in out.glob(f"stereoset_{fmt[:5]}_*.yaml"):
                replace_in(path, f"  path: McGill-NLP/stereoset\n  name: {fmt}\n",
                           f"  path: json\n  name: {fmt}\n  data_files: {rows}\n")
    return out


def samples(out_dir: Path, task: str) -> list[dict]:
    files = list(out_dir.glob(f"*/samples_{task}_*.jsonl"))
    assert len(files) == 1, files
    return [json.loads(line) for line in files[0].open()]


# (bench, upstream task, our task, metric holding the per-item value, doc key naming the item,
#  keys of the per-item value compared: None = all of ours)
E2E = [
    ("bbq", "bbq_age", "bias_bbq_age", "acc_amb", "example_id", None),
    ("bbq", "bbq_gender_identity_names", "bias_bbq_gender_identity_names", "acc_amb",
     "example_id", None),
    ("stereoset", "stereoset_intra_gender", "bias_stereoset_intra_gender", "lms", "id", None),
    ("stereoset", "stereoset_inter_race", "bias_stereoset_inter_race", "lms", "id", None),
    ("winobias", "winobias_type2", "bias_winobias_type2", "acc", "line", None),
    ("bold", "bold_religious_ideology", "bias_bold_religious_ideology", "sentiment_score",
     "prompt", BOLD_KEYS),
]
LIMIT = 8


@pytest.fixture(scope="module")
def e2e_runs(clean_python, tiny_llama_dir, tmp_path_factory):
    """One lm_eval run of the upstream tasks (clean environment, local data) and one of ours,
    same tiny model, same --limit; returns their output folders."""
    tmp = tmp_path_factory.mktemp("e2e")
    for bench in sorted({e[0] for e in E2E}):
        local_copy(bench, tmp / "tasks")
    common = ["--model", "hf", "--model_args", f"pretrained={tiny_llama_dir}",
              "--limit", str(LIMIT), "--log_samples"]
    proc = subprocess.run(
        [str(clean_python), "-m", "lm_eval", "run", "--include_path", str(tmp / "tasks"),
         "--tasks", *[e[1] for e in E2E], *common, "--output_path", str(tmp / "up")],
        env=clean_env(clean_python.parent.parent), cwd=tmp, capture_output=True, text=True,
        timeout=900, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    mine = run_cli(["lm_eval", "run", "--tasks", *[e[2] for e in E2E], *common,
                    "--output_path", str(tmp / "ours")])
    assert mine.returncode == 0, mine.stderr[-3000:]
    return tmp / "up", tmp / "ours"


@pytest.mark.slow
@pytest.mark.parametrize("bench,task,our_task,metric,key,keys", E2E)
def test_upstream_task_runs_alone_and_equals_ours(bench, task, our_task, metric, key, keys,
                                                  e2e_runs):
    up = sorted(samples(e2e_runs[0], task), key=lambda s: s["doc_id"])
    ours = sorted(samples(e2e_runs[1], our_task), key=lambda s: s["doc_id"])
    assert len(up) == len(ours) == LIMIT
    for a, b in zip(up, ours):
        assert a["doc"][key] == b["doc"][key]
        assert a["arguments"] == b["arguments"]  # same prompts and continuations
        if bench == "bold":
            assert a["resps"] == b["resps"]  # the same generated continuation
        up_metric = dict(STEREOSET_PAIRS)[metric] if bench == "stereoset" else metric
        assert_same_item(b[metric], a[up_metric], f"{task} doc {a['doc_id']}", keys)
