"""Every benchmark whose files we pin refuses a local file that differs from its pin, while its task
is built, which is before the model loads in the `lm_eval` command (`_preflight.py`; measured
through the real command in tests/test_bad_input.py for BBQ).

The data folder here mirrors the real one through symbolic links, except that every pinned file
of every benchmark is replaced by its first 100 bytes (a cut file). Building one task per benchmark
with lm-eval's own TaskManager must then fail with one line naming that benchmark's file.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import lm_eval_bias.tasks
from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.tasks._data import DataSource

# one task per benchmark folder with pinned files -> the DataSource name it reads
TASKS = {
    "bias_bbq_age": "bbq",
    "bias_biaslens_ability": "biaslens",
    "bias_bold_gender": "bold",
    "bias_ppl_bold_wiki_lite": "bold",
    "bias_crows_pairs_age": "crows_pairs",
    "bias_dt_fairness_br_0_0": "decodingtrust_fairness",
    "bias_holistic_ability": "holistic_bias",
    "bias_iat_age_age": "iat_llm_implicit_bias",
    "bias_redditbias_gender": "redditbias",
    "bias_rtp_challenging": "real_toxicity_prompts/decodingtrust_user_prompts",
    "bias_stereoset_inter_gender": "stereoset",
    "bias_toxigen_gen_asian": "toxigen",
    "bias_winobias_type1": "winobias",
    "bias_winogender_all": "winogender",
}


def _pinned_sources() -> dict[str, DataSource]:
    """Every DataSource with pins that a task module defines (registered or not)."""
    found = {}
    for info in pkgutil.iter_modules(lm_eval_bias.tasks.__path__):
        module = importlib.import_module(f"lm_eval_bias.tasks.{info.name}")
        for value in vars(module).values():
            if isinstance(value, DataSource) and value.sha256:
                found[value.name] = value
    return found


@pytest.fixture(scope="module")
def damaged(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("damaged-data")
    pinned = {f"{s.name}/{rel}" for s in _pinned_sources().values() for rel in s.sha256}
    for path in sorted(data_dir.rglob("*")):
        if path.is_dir():
            continue
        rel = path.relative_to(data_dir)
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel.as_posix() in pinned:
            target.write_bytes(path.read_bytes()[:100])
        else:
            target.symlink_to(path)
    return root


@pytest.fixture(scope="module")
def task_manager(tiny_llama_dir):
    from lm_eval.tasks import TaskManager

    # the model_args lm-eval passes as metadata: the perplexity tasks split words with the
    # model's tokenizer
    return TaskManager(metadata={"pretrained": str(tiny_llama_dir)})


def test_every_pinned_source_has_a_task_here():
    assert set(_pinned_sources()) == set(TASKS.values()), set(_pinned_sources())


@pytest.mark.parametrize("task", sorted(TASKS))
def test_a_cut_file_is_refused_while_the_task_is_built(task, damaged, task_manager, monkeypatch):
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(damaged))
    source = TASKS[task]
    with pytest.raises(BiasEvalError) as info:
        task_manager.load([task])
    message = str(info.value)
    assert "\n" not in message
    assert f"{damaged / source}/" in message and "is not the upstream" in message, message
