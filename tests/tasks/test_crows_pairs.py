"""CrowS-Pairs tasks: golden facts of the real data, loading, scoring, per-item records, shipped
names; plus the checks shared by the four likelihood benchmarks of this batch (CrowS-Pairs,
StereoSet, RedditBias, HolisticBias): `lm_eval validate` on every name, no collision with a
built-in lm-eval task, and ONE real `lm_eval run` over a subset of each benchmark."""

from __future__ import annotations

import glob
import hashlib
import json
import math
import re
from pathlib import Path

import pytest
from conftest import REPO_ROOT, run_cli

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.metrics import crows_pairs as m
from lm_eval_bias.metrics import holistic_bias as hb_m
from lm_eval_bias.metrics import redditbias as rb_m
from lm_eval_bias.metrics import stereoset as ss_m
from lm_eval_bias.tasks import _data, crows_pairs
from lm_eval_bias.tasks._records import normalize_loglikelihoods

CONFIGS = REPO_ROOT / "task_configs"
SNAKES = list(crows_pairs.BIAS_TYPES.values())
TASKS = [f"bias_crows_pairs_{s}" for s in SNAKES]
COUNTS = {  # golden facts: crows_pairs/README.md of the shared data folder
    "race-color": 516,
    "gender": 262,
    "socioeconomic": 172,
    "nationality": 159,
    "religion": 105,
    "age": 87,
    "sexual-orientation": 84,
    "physical-appearance": 63,
    "disability": 60,
}
SHA256 = "dfb36986ce0502abbaf7055b9176da3d08d48e07df1251991b5dfbcbceab9d0c"


def shipped_names(folder: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / folder).glob("*.yaml"))


def check_three_line_yamls(folder: str, base: str, expected: dict[str, str]) -> None:
    """expected: task name -> its dataset_kwargs flow mapping."""
    for task, kwargs in expected.items():
        text = (CONFIGS / folder / f"{task}.yaml").read_text()
        assert text == f"include: {base}\ntask: {task}\ndataset_kwargs: {kwargs}\n", task


def check_readme_names(folder: str, prefix: str, known: set[str], placeholders: dict) -> None:
    """Every `bias_...` name the README shows (placeholders expanded) is a shipped task/group."""
    text = (CONFIGS / folder / "README.md").read_text()
    names = set(re.findall(rf"`({prefix}[a-z0-9_{{}}]*)`", text))
    expanded = set()
    for name in names:
        todo = [name]
        for ph, values in placeholders.items():
            todo = (
                [t.replace(ph, v) for t in todo for v in values]
                if any(ph in t for t in todo)
                else todo
            )
        expanded |= set(todo)
    assert expanded <= known, expanded - known
    assert names, folder


# ---------------------------------------------------------------- golden facts of the real data


@pytest.fixture(scope="module")
def rows(data_dir):
    return _data.read_csv(data_dir / "crows_pairs" / crows_pairs.DATA_FILE)


def test_file_hash_and_physical_lines(data_dir):
    raw = (data_dir / "crows_pairs" / crows_pairs.DATA_FILE).read_bytes()
    assert (
        hashlib.sha256(raw).hexdigest()
        == SHA256
        == crows_pairs.SOURCE.sha256[crows_pairs.DATA_FILE]
    )
    assert raw.count(b"\n") == 1510  # header + 1,508 rows + one embedded newline


def test_row_counts_directions_and_known_rows(rows):
    assert len(rows) == 1508
    assert [int(r[""]) for r in rows] == list(range(1508))
    assert sum(r["stereo_antistereo"] == "stereo" for r in rows) == 1290
    assert sum(r["stereo_antistereo"] == "antistereo" for r in rows) == 218
    assert {t: sum(r["bias_type"] == t for r in rows) for t in COUNTS} == COUNTS
    r0 = rows[0]
    assert (r0["bias_type"], r0["stereo_antistereo"]) == ("race-color", "stereo")
    assert "most black kids" in r0["sent_more"] and "most white kids" in r0["sent_less"]
    assert rows[1293]["sent_less"] == "Bob was denied because he was white\n."


def test_docs_per_bias_type(use_data_dir):
    for upstream, snake in crows_pairs.BIAS_TYPES.items():
        docs = crows_pairs.load_crows_pairs_docs(snake)
        assert len(docs) == COUNTS[upstream]
        assert crows_pairs.load_crows_pairs_docs(upstream) == docs
        for d in docs[:5]:
            assert d["choices"] == [d["sent_more"], d["sent_less"]] and d["more_choice"] == 0
    with pytest.raises(BiasEvalError, match="unknown CrowS-Pairs bias type 'colour'"):
        crows_pairs.load_crows_pairs_docs("colour")


def test_permute_seed_keeps_more_choice_consistent(use_data_dir):
    docs = crows_pairs.load_crows_pairs_docs("age", permute_seed="3")
    assert {d["more_choice"] for d in docs} == {0, 1}
    for d in docs:
        assert d["choices"][d["more_choice"]] == d["sent_more"] and d["permute_seed"] == 3
    assert docs == crows_pairs.load_crows_pairs_docs("age", permute_seed=3)


@pytest.fixture
def use_data_dir(data_dir, monkeypatch):
    monkeypatch.setenv(_data.DATA_DIR_ENV, str(data_dir))


# ---------------------------------------------------------------- per-item records


def _doc(more_choice=0, direction="stereo"):
    choices = ["the more one", "the less one"]
    if more_choice == 1:
        choices = choices[::-1]
    return {
        "pair_id": 7,
        "stereo_antistereo": direction,
        "bias_type": "age",
        "choices": choices,
        "more_choice": more_choice,
    }


def test_process_results_record():
    out = crows_pairs.process_results(_doc(), [(-10.0, False), (-12.0, False)])
    rec = out["bias_item"]
    assert out["pct_stereotype"] == {"d": "stereo", "more": 1, "tie": 0}
    assert set(out) == {*crows_pairs.METRICS, "bias_item"}
    assert rec["pred"] == 0 and rec["biased"] is True and rec["gold"] is None
    assert rec["probs"] == pytest.approx([0.8807971, 0.1192029])
    assert (rec["groups"], rec["axis"], rec["direction"]) == (["age"], "age", "stereo")
    assert (rec["more_choice"], rec["tie"], rec["pair_id"], rec["perm"]) == (0, False, 7, None)
    # permuted: sent_more shown second; the model prefers the first (sent_less) -> not biased
    out = crows_pairs.process_results(_doc(1, "antistereo"), [(-10.0, False), (-12.0, False)])
    assert out["bias_item"]["pred"] == 0 and out["bias_item"]["biased"] is False
    assert out["pct_stereotype"] == {"d": "antistereo", "more": 0, "tie": 0}
    tie = crows_pairs.process_results(_doc(), [(-3.0, False), (-3.0, False)])["bias_item"]
    assert tie["tie"] is True and tie["biased"] is False and tie["pred"] == 0
    # equal after upstream's rounding to 3 decimals: neutral, though the raw scores differ
    near = crows_pairs.process_results(_doc(), [(-3.0001, False), (-3.0003, False)])
    assert near["bias_item"]["tie"] is True and near["pct_neutral"]["tie"] == 1
    json.dumps(rec, allow_nan=False)


# ---------------------------------------------------------------- shipped configs and names


def test_yamls_and_readme():
    check_three_line_yamls(
        "crows_pairs",
        "_crows_pairs_common",
        {f"bias_crows_pairs_{s}": f"{{bias_type: {u}}}" for u, s in crows_pairs.BIAS_TYPES.items()},
    )
    assert shipped_names("crows_pairs") == sorted(TASKS + ["bias_crows_pairs"])
    check_readme_names(
        "crows_pairs",
        "bias_crows_pairs",
        set(TASKS + ["bias_crows_pairs"]),
        {"{bias_type}": SNAKES},
    )


# ---------------------------------------------------------------- shared: the four benchmarks

ALL_FOLDERS = ("crows_pairs", "stereoset", "redditbias", "holistic_bias")


def all_names() -> list[str]:
    return [n for f in ALL_FOLDERS for n in shipped_names(f)]


def test_no_name_collides_with_a_builtin_lm_eval_task():
    import lm_eval

    builtin = set()
    for path in Path(lm_eval.__file__).parent.joinpath("tasks").rglob("*.yaml"):
        text = path.read_text(errors="replace")
        builtin |= set(
            re.findall(r"^(?:task|group|tag):\s*['\"]?([A-Za-z0-9_\-.]+)", text, re.MULTILINE)
        )
    assert len(builtin) > 1000 and "crows_pairs_english_age" in builtin
    names = all_names()
    assert len(names) == 39
    assert not builtin & set(names)
    assert all(
        n.startswith(("bias_crows_pairs", "bias_stereoset", "bias_redditbias", "bias_holistic"))
        for n in names
    )


def test_all_names_are_indexed_by_lm_eval():
    proc = run_cli(["lm_eval", "validate", "--tasks", ",".join(all_names())], timeout=300)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    assert "All tasks found and valid" in proc.stdout


E2E_TASKS = {
    "bias_crows_pairs_disability": "crows_pairs",
    "bias_stereoset_intra_religion": "stereoset",
    "bias_stereoset_inter_religion": "stereoset",
    "bias_redditbias_race": "redditbias",
    "bias_holistic_nonce": "holistic_bias",
}
E2E_METRICS = {
    "crows_pairs": ["pct_stereotype", "pct_stereotype_stereo", "pct_stereotype_antistereo",
                    "pct_neutral"],
    "stereoset": ["lms", "ss", "icat", "lms_char", "ss_char", "icat_char"],
    "redditbias": ["t_value", "p_value", "pct_biased_preferred", "effect_size"],
    "holistic_bias": ["likelihood_bias", "likelihood_bias_bh"],
}
AGGREGATIONS = {
    "pct_stereotype": m.pct_stereotype,
    "pct_stereotype_stereo": m.pct_stereotype_stereo,
    "pct_stereotype_antistereo": m.pct_stereotype_antistereo,
    "pct_neutral": m.pct_neutral,
    "lms": ss_m.lms,
    "ss": ss_m.ss,
    "icat": ss_m.icat,
    "lms_char": ss_m.lms,
    "ss_char": ss_m.ss,
    "icat_char": ss_m.icat,
    "pct_biased_preferred": rb_m.pct_biased_preferred,
    "effect_size": rb_m.effect_size,
    "t_value": rb_m.t_value,
    "p_value": rb_m.p_value,
    "likelihood_bias": hb_m.likelihood_bias,
    "likelihood_bias_bh": hb_m.likelihood_bias_bh,
}


def _check_record(bench: str, s: dict) -> None:
    rec, doc = s["bias_item"], s["doc"]
    lls = [float(r[0]) for r in s["filtered_resps"]]
    if bench == "redditbias":  # the two phrases, then tokens 2..n of each (README)
        lls, rest = lls[:2], lls[2:]
    assert rec["v"] == 1 and rec["benchmark"] == bench and rec["invalid"] is False
    assert rec["choices"] == doc["choices"] and len(rec["probs"]) == len(lls) >= 2
    assert math.fsum(rec["probs"]) == pytest.approx(1.0)
    assert rec["pred"] == max(range(len(lls)), key=rec["probs"].__getitem__)
    assert isinstance(rec["groups"], list) and rec["groups"] and isinstance(rec["axis"], str)
    if bench == "crows_pairs":
        assert rec["probs"] == pytest.approx(normalize_loglikelihoods(lls))
        mc = doc["more_choice"]
        assert rec["biased"] == (round(lls[mc], 3) > round(lls[1 - mc], 3))
        assert rec["axis"] == "disability"
    elif bench == "stereoset":
        per_token = [ll / n for ll, n in zip(lls, doc["n_tokens"], strict=True)]
        assert rec["probs"] == pytest.approx(normalize_loglikelihoods(per_token))
        assert rec["n_tokens"] == doc["n_tokens"] and min(doc["n_tokens"]) >= 1
        st, an = doc["stereo_choice"], doc["anti_choice"]
        assert rec["biased"] == (rec["probs"][st] > rec["probs"][an])  # consistent with probs
        assert rec["ll_total"] == pytest.approx(lls) and rec["groups"] == [doc["target"]]
    elif bench == "redditbias":
        assert rec["probs"] == pytest.approx(normalize_loglikelihoods(lls))
        b = doc["biased_choice"]
        assert rec["biased"] == (rec["probs"][b] > rec["probs"][1 - b])
        assert rec["ll_diff"] == pytest.approx(lls[b] - lls[1 - b])
        ppl = [math.exp(-r / n) for r, n in zip(rest, doc["n_tokens"], strict=True)]
        extra = [s["arguments"][f"gen_args_{i}"] for i in (2, 3)]
        assert [(a["arg_0"], a["arg_1"]) for a in extra] == list(
            zip(doc["first_tokens"], doc["rests"], strict=True))
        assert rec["ppl"] == pytest.approx(ppl) and s["t_value"]["ppl"] == pytest.approx(
            [ppl[b], ppl[1 - b]])
    else:
        assert rec["probs"] == pytest.approx(normalize_loglikelihoods(lls))
        ppl = [math.exp(-ll / n) for ll, n in zip(lls, doc["n_tokens"], strict=True)]
        assert rec["ppl"] == pytest.approx(ppl) and s["likelihood_bias"]["s"] == pytest.approx(ppl)
        assert rec["biased"] is None and rec["groups"] == doc["descriptors"]
        assert rec["pred_descriptor"] == doc["descriptors"][rec["pred"]]


def test_end_to_end_one_run_all_four_benchmarks(tiny_llama_dir, tmp_path, data_dir):
    out = tmp_path / "run"
    proc = run_cli(
        [
            "lm_eval",
            "run",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={tiny_llama_dir}",
            "--device",
            "cpu",
            "--tasks",
            ",".join(E2E_TASKS),
            "--limit",
            "8",
            "--log_samples",
            "--output_path",
            str(out),
        ],
        env={_data.DATA_DIR_ENV: str(data_dir)},
        timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    (results_file,) = glob.glob(str(out / "*" / "results_*.json"))
    results = json.loads(Path(results_file).read_text())["results"]
    for task, bench in E2E_TASKS.items():
        (samples_file,) = glob.glob(str(out / "*" / f"samples_{task}_*.jsonl"))
        samples = [json.loads(line) for line in Path(samples_file).read_text().splitlines()]
        assert len(samples) == 8 and results[task]["bias_item,none"] == 8, task
        for s in samples:
            _check_record(bench, s)
        for metric in E2E_METRICS[bench]:
            value = results[task][f"{metric},none"]
            expected = AGGREGATIONS[metric]([s[metric] for s in samples])
            if math.isnan(expected):
                assert math.isnan(value), (task, metric)
            else:
                assert value == pytest.approx(expected), (task, metric)
