"""The unmodified `lm_eval` command finds our model and tasks, and keeps its own."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO_ROOT, make_venv_without_this_package, run_cli


def _python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


REGISTRY_PROBE = textwrap.dedent("""
    from lm_eval.api.registry import get_model, model_registry
    hf = get_model("hf")  # first lookup imports lm_eval.models, which fills the registry
    print("hf" in model_registry, "vllm" in model_registry, "hf-quant" in model_registry)
    print(hf.__name__)
""")


def test_builtin_models_survive_and_hf_quant_is_registered():
    proc = _python(REGISTRY_PROBE + "print(issubclass(get_model('hf-quant'), hf))\n")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n")
    assert lines[0] == "True True True"
    assert lines[1] == "HFLM"
    assert lines[2] == "True"  # hf-quant is an HFLM subclass: everything `hf` accepts works


def test_opt_out_variable_disables_the_hook():
    proc = _python(REGISTRY_PROBE, LM_EVAL_BIAS_NO_HOOK="1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[0] == "True True False"


def test_hook_leaves_unrelated_imports_alone():
    proc = _python("import sys, json; print('lm_eval' in sys.modules, 'torch' in sys.modules)")
    assert proc.stdout.strip() == "False False"  # start-up cost: no heavy import


def _listed(stdout: str) -> dict[str, str]:
    """name -> config path from `lm-eval ls tasks` table rows."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0] and not set(cells[0]) <= set("-:"):
            rows.setdefault(cells[0], cells[1])
    return rows


@pytest.fixture(scope="module")
def user_task_dir(tmp_path_factory) -> Path:
    """A user's own task folder that defines a task with the same name as one of ours."""
    folder = tmp_path_factory.mktemp("user_tasks")
    data = folder / "docs.jsonl"
    data.write_text('{"q": "2+2=", "choices": ["3", "4"], "label": 1}\n')
    (folder / "mine.yaml").write_text(textwrap.dedent(f"""
        task: bias_bbq_age
        dataset_path: json
        dataset_kwargs:
          data_files:
            test: {data}
        test_split: test
        output_type: multiple_choice
        doc_to_text: "{{{{q}}}}"
        doc_to_choice: choices
        doc_to_target: label
        metric_list:
          - metric: acc
        metadata:
          version: 0
    """))
    return folder


def test_lm_eval_ls_lists_our_tasks_builtins_and_user_override(user_task_dir):
    proc = run_cli(["lm_eval", "ls", "tasks", "--include_path", str(user_task_dir)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = _listed(proc.stdout)
    for name in ("bias_suite", "bias_bbq", "bias_bbq_gen", "bias_bbq_religion", "bias_bbq_gen_ses"):
        assert name in rows, f"{name} missing from lm-eval ls tasks"
    assert str(REPO_ROOT / "task_configs") in rows["bias_bbq"] or "task_configs" in rows["bias_bbq"]
    assert "hellaswag" in rows and "bbq" in rows  # built-in tasks still there
    assert str(user_task_dir) in rows["bias_bbq_age"]  # the user's --include_path wins


def test_wheel_installs_hook_and_task_configs(tmp_path):
    """Build the wheel and install it into a fresh environment: the plain `lm_eval` there finds
    hf-quant and the tasks from the installed package, not from this checkout."""
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "-w", str(dist), str(REPO_ROOT)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(dist.glob("lm_eval_bias-*.whl"))
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "lm_eval_bias_startup.pth" in names
    assert "lm_eval_bias/task_configs/bbq/_bbq_common" in names or any(
        n.startswith("lm_eval_bias/task_configs/bbq/") for n in names)
    assert any(n.startswith("lm_eval_bias/data/demo/bbq/") for n in names)

    env_dir = tmp_path / "venv"
    # this environment's packages without this package: only the wheel can provide it there
    py = make_venv_without_this_package(env_dir)
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
                              str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    probe = textwrap.dedent("""
        import lm_eval_bias, lm_eval_bias._plugin as p
        from lm_eval.api.registry import get_model
        from lm_eval.tasks import TaskManager
        print(lm_eval_bias.__file__)
        print(p.task_configs_dir())
        print(get_model("hf-quant").__name__)
        tm = TaskManager()
        print("bias_bbq_age" in tm.all_subtasks, "bias_suite" in tm.all_groups, "hellaswag" in tm.all_tasks)
    """)
    proc = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    module_file, tasks_dir, model_cls, flags = proc.stdout.strip().split("\n")[-4:]
    assert module_file.startswith(str(env_dir)), module_file
    assert tasks_dir.startswith(str(env_dir)) and tasks_dir.endswith("lm_eval_bias/task_configs")
    assert model_cls == "HFQuantLM"
    assert flags == "True True True"


def test_our_errors_in_the_lm_eval_command_are_one_line_exit_2(tmp_path):
    missing = tmp_path / "no-such-checkpoint"
    proc = run_cli(["lm_eval", "run", "--model", "hf-quant", "--model_args",
                    f"pretrained={missing},quant=rtn,bits=4", "--device", "cpu",
                    "--tasks", "bias_bbq_lite_age", "--output_path", str(tmp_path / "out")],
                   timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"lm-eval-bias: error: checkpoint folder not found: pretrained={missing}; give an existing "
        "local folder (with config.json) or a Hugging Face repo id such as "
        "HuggingFaceTB/SmolLM2-135M")
    assert not (tmp_path / "out").exists()


def test_other_errors_in_the_lm_eval_command_keep_their_traceback(tiny_llama_dir):
    # lm-eval's own failure (a task it cannot find) is not ours to rewrite
    proc = run_cli(["lm_eval", "run", "--model", "hf-quant", "--model_args",
                    f"pretrained={tiny_llama_dir}", "--device", "cpu",
                    "--tasks", "bias_no_such_task"], timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" in proc.stderr and "lm-eval-bias: error:" not in proc.stderr


# ---- the lm_eval command saves its files or fails (issue: exit 0 with nothing saved)

# The output path checked before the model loads: rows of tests/test_bad_input.py.


def test_a_results_or_samples_file_lm_eval_could_not_write_stops_the_run(tmp_path):
    """The real EvaluationTracker, made unable to write (its model folder is a file): lm-eval
    alone logs a warning; guarded, the save raises our one-line error."""
    from lm_eval.loggers.evaluation_tracker import EvaluationTracker

    from lm_eval_bias._lm_eval_outputs import guard_tracker
    from lm_eval_bias.errors import BiasEvalError

    class Tracker(EvaluationTracker):  # guard a subclass: the real class stays as lm-eval made it
        pass

    (tmp_path / "model").write_text("a file where lm-eval wants its folder")
    unguarded = EvaluationTracker(output_path=str(tmp_path))
    unguarded.general_config_tracker.model_name_sanitized = "model"
    unguarded.save_results_aggregated(results={"results": {}}, samples=None)  # only warns
    guard_tracker(Tracker)
    tracker = Tracker(output_path=str(tmp_path))
    tracker.general_config_tracker.model_name_sanitized = "model"
    with pytest.raises(BiasEvalError, match=r"could not write its results to .*model/results_.*"
                                            r"\.json \(.*/model is a file\)"):
        tracker.save_results_aggregated(results={"results": {}}, samples=None)
    with pytest.raises(BiasEvalError, match=r"could not write its samples of bias_x to "
                                            r".*samples_bias_x_.*\.jsonl"):
        tracker.save_results_samples("bias_x", [])


def test_guarded_saves_pass_when_lm_eval_wrote_the_files(tmp_path):
    from lm_eval.loggers.evaluation_tracker import EvaluationTracker

    from lm_eval_bias._lm_eval_outputs import guard_tracker

    class Tracker(EvaluationTracker):
        pass

    guard_tracker(Tracker)
    tracker = Tracker(output_path=str(tmp_path))
    tracker.general_config_tracker.model_name_sanitized = "model"
    tracker.save_results_aggregated(results={"results": {}}, samples=None)
    tracker.save_results_samples("bias_x", [])
    assert len(list((tmp_path / "model").glob("results_*.json"))) == 1
    assert len(list((tmp_path / "model").glob("samples_bias_x_*.jsonl"))) == 1
