"""`lm-eval-bias sweep`: settings grammar, a real 3-setting sweep (real lm-eval, real hf-quant, the
tiny random Llama, BBQ Age with --limit 4), resuming after SIGKILL, --plan, and equality with what
the plain `lm_eval` command writes."""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli

from lm_eval_bias import cli
from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.sweep import (
    make_spec,
    parse_seeds,
    parse_setting,
    parse_settings,
    plan_lines,
    run_sweep,
)

TASK = "bias_bbq_age"
LIMIT = 4
# the tiny Llama's layers are 64 and 128 wide: RTN's default group of 128 does not tile them
SETTINGS = "none,rtn:8:g32,rtn:4:g32"
FOLDERS = ["none", "rtn_8_g32", "rtn_4_g32"]
N_BOOT = 200
LOADING_LINE = "loading the full-precision weights once"


def _sweep_args(model_dir: Path, out: Path, settings: str = SETTINGS) -> list[str]:
    return ["--model-args", f"pretrained={model_dir}", "--settings", settings, "--tasks", TASK,
            "--limit", str(LIMIT), "--output", str(out), "--n-boot", str(N_BOOT),
            "--device", "cpu"]


def _spec(model_dir: Path, out: Path, **overrides):
    kwargs = {"model_args": f"pretrained={model_dir}", "settings": SETTINGS, "tasks": TASK,
              "output": out, "limit": float(LIMIT), "device": "cpu"}
    kwargs.update(overrides)
    return make_spec(**kwargs)


# ----------------------------------------------------------------------------- settings grammar


@pytest.mark.parametrize("text, quant_args, folder, canonical", [
    ("none", "quant=none", "none", "none"),
    ("rtn:4", "quant=rtn,bits=4", "rtn_4", "rtn:4"),
    (" RTN:4:g64 ", "quant=rtn,bits=4,group_size=64", "rtn_4_g64", "rtn:4:g64"),
    ("rtn:g64:3:sym=true", "quant=rtn,bits=3,group_size=64,sym=true", "rtn_3_g64_sym-true",
     "rtn:3:g64:sym=true"),
    ("rtn:4:g-1", "quant=rtn,bits=4,group_size=-1", "rtn_4_g-1", "rtn:4:g-1"),
    ("rtn:4:skip=lm_head|mlp.down_proj", "quant=rtn,bits=4,skip=lm_head|mlp.down_proj",
     "rtn_4_skip-lm_head+mlp.down_proj", "rtn:4:skip=lm_head|mlp.down_proj"),
    ("nf4", "quant=nf4", "nf4", "nf4"),
    ("torchao_intx:4:g32", "quant=torchao_intx,bits=4,group_size=32", "torchao_intx_4_g32",
     "torchao_intx:4:g32"),
    ("quanto:weights=int4", "quant=quanto,weights=int4", "quanto_weights-int4",
     "quanto:weights=int4"),
])
def test_setting_grammar(text, quant_args, folder, canonical):
    setting = parse_setting(text)
    assert setting.quant_args == quant_args
    assert setting.folder == folder
    assert setting.text == canonical
    assert parse_setting(setting.text) == setting  # the canonical text parses back to itself


@pytest.mark.parametrize("settings, message", [
    ("none,foo:4", "setting 'foo:4': unknown quantization method quant='foo'; choose one of"),
    ("none,nf4:4", "setting 'nf4:4': quant=nf4 does not take bits=4"),
    ("none,rtn:9", "setting 'rtn:9': quant=rtn: bits must be from 2 to 8"),
    ("none,rtn:x", "'x' is neither bits (e.g. 4), a group size (e.g. g64) nor KEY=VALUE"),
    ("none,rtn:4:bits=4", "gives bits twice"),
    ("none,rtn:4::g64", "'' is neither bits"),
    ("none,:4", "has no method"),
    ("none,rtn:4:quant=rtn", "drop quant="),
    ("none,rtn:4,rtn:4", "setting rtn:4 is given twice"),
    ("none,rtn:4:g64,rtn:g64:4", "setting rtn:4:g64 is given twice"),
    ("none,rtn:4:skip=a/b,rtn:4:skip=a-b", "would share the run folder rtn_4_skip-a-b"),
    ("none,rtn:4:g32:sym=true,rtn:4:g32:sym=yes",
     "settings rtn:4:g32:sym=true and rtn:4:g32:sym=yes are the same once defaults are filled in"),
    ("none,rtn:4,rtn:4:g128", "settings rtn:4 and rtn:4:g128 are the same once defaults"),
    ("none,rtn:4:sym=false,rtn:4", "settings rtn:4:sym=false and rtn:4 are the same once"),
    ("rtn:4,rtn:8", "--settings has no 'none'"),
    ("none", "--settings has only 'none'"),
    ("none,,rtn:4", "has an empty entry"),
    ("", "--settings is empty"),
])
def test_bad_settings_are_one_line_errors(settings, message):
    # parse_settings runs before any model loads (cli.sweep parses first): so do these refusals
    with pytest.raises(BiasEvalError) as info:
        parse_settings(settings)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_seeds():
    assert parse_seeds(None) is None
    assert parse_seeds("0, 1,2") == [0, 1, 2]
    for bad, message in [("0,0", "seed 0 twice"), ("a", "'a' is not an integer"),
                         ("-1", "'-1' is not an integer"), ("4294967296", "not an integer")]:
        with pytest.raises(BiasEvalError, match=message):
            parse_seeds(bad)


def test_cli_errors_exit_2_with_one_line_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "study"
    cases = [
        (["--settings", "none,bogus"], "unknown quantization method quant='bogus'"),
        (["--model-args", "pretrained=x,quant=rtn"], "--model-args gives quant"),
        (["--model-args", "pretrained=x,bits=4"], "--model-args gives bits"),
        (["--model-args", "dtype=float32"], "has no pretrained="),
        (["--seeds", "1,1"], "seed 1 twice"),
        (["--batch-size", "0"], "--batch-size must be"),
        (["--limit", "0"], "--limit must be > 0"),
    ]
    for extra, message in cases:
        argv = ["sweep", "--model-args", "pretrained=x", "--settings", "none,rtn:4", "--tasks",
                TASK, "--output", str(out), "--device", "cpu", *extra]
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("lm-eval-bias: error: ") and message in err, err
        assert len(err.splitlines()) == 1
    assert not out.exists()


def test_an_unknown_task_fails_before_the_model_is_loaded_and_writes_nothing(tiny_llama_dir,
                                                                              tmp_path):
    out = tmp_path / "study"
    lines: list[str] = []
    with pytest.raises(BiasEvalError, match="--tasks: .*no_such_task.*lm_eval ls tasks"):
        run_sweep(_spec(tiny_llama_dir, out, tasks="no_such_task"), n_boot=N_BOOT,
                  log=lines.append)
    assert not any(LOADING_LINE in line for line in lines)
    assert not out.exists()  # a corrected rerun into the same folder is not refused


# ----------------------------------------------------------------------------- --plan


def _plan(capsys, model_dir: Path, out: Path, *extra: str) -> list[list[str]]:
    assert cli.main(["sweep", *_sweep_args(model_dir, out), *extra, "--plan"]) == 0
    text = capsys.readouterr().out
    return [shlex.split(line) for line in text.splitlines() if line and not line.startswith("#")]


def _option(cmd: list[str], name: str) -> str | None:
    return cmd[cmd.index(name) + 1] if name in cmd else None


def test_plan_prints_one_lm_eval_command_per_run_and_the_report_command(tiny_llama_dir, tmp_path,
                                                                       capsys):
    out = tmp_path / "study"
    commands = _plan(capsys, tiny_llama_dir, out)
    assert not out.exists()  # --plan runs nothing
    assert [c[0] for c in commands] == ["lm_eval"] * 3 + ["lm-eval-bias"]
    expected_args = ["quant=none", "quant=rtn,bits=8,group_size=32", "quant=rtn,bits=4,group_size=32"]
    for cmd, folder, quant in zip(commands, FOLDERS, expected_args):
        assert cmd[1] == "run"
        assert _option(cmd, "--model") == "hf-quant"
        assert _option(cmd, "--model_args") == f"pretrained={tiny_llama_dir},{quant}"
        assert _option(cmd, "--tasks") == TASK
        assert _option(cmd, "--output_path") == str(out / folder)
        assert _option(cmd, "--device") == "cpu"
        assert _option(cmd, "--limit") == "4"
        assert "--log_samples" in cmd and "--seed" not in cmd
    report = commands[-1]
    assert report[1] == "report"
    assert report[2:5] == [str(out / f) for f in FOLDERS]
    assert _option(report, "--output") == str(out / "report")

    seeded = _plan(capsys, tiny_llama_dir, out, "--seeds", "0,7")
    assert [(_option(c, "--seed"), Path(_option(c, "--output_path")).name) for c in seeded[:-1]] == [
        ("0", "none_seed0"), ("7", "none_seed7"), ("0", "rtn_8_g32_seed0"),
        ("7", "rtn_8_g32_seed7"), ("0", "rtn_4_g32_seed0"), ("7", "rtn_4_g32_seed7")]
    single = _plan(capsys, tiny_llama_dir, out, "--seeds", "5")
    assert [(_option(c, "--seed"), Path(_option(c, "--output_path")).name)
            for c in single[:-1]] == [("5", f) for f in FOLDERS]


# ----------------------------------------------------------------------------- one real sweep


@pytest.fixture(scope="module")
def swept(tiny_llama_dir, tmp_path_factory):
    """The uninterrupted 3-setting sweep, in this process."""
    out = tmp_path_factory.mktemp("sweep") / "study"
    lines: list[str] = []
    result = run_sweep(_spec(tiny_llama_dir, out), n_boot=N_BOOT, log=lines.append)
    return {"out": out, "lines": lines, "result": result,
            "report_bytes": (out / "report" / "report.json").read_bytes()}


def _results(folder: Path) -> dict:
    (path,) = folder.glob("*/results_*.json")
    return json.loads(path.read_text())


def test_sweep_writes_one_readable_run_folder_per_setting_and_the_report(swept):
    from lm_eval_bias.analysis.runs import read_run

    out = swept["out"]
    assert swept["result"]["ran"] == FOLDERS and swept["result"]["skipped"] == []
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*FOLDERS, "report", "sweep.json", ".sweep.lock"])
    quant = {}
    for folder in FOLDERS:
        run = read_run(out / folder)
        assert run.tasks == [TASK] and len(run.items) == LIMIT
        assert run.model == "hf-quant"
        quant[folder] = (run.quantization["method"], run.quantization.get("bits"),
                         run.quantization.get("group_size"))
    assert quant == {"none": ("none", None, None), "rtn_8_g32": ("rtn", 8, 32),
                     "rtn_4_g32": ("rtn", 4, 32)}

    report = json.loads(swept["report_bytes"])
    assert [c["label"].split(" · ")[1] for c in report["conditions"]] == [
        "not quantized", "rtn bits=8 group_size=32 sym=False library=torch",
        "rtn bits=4 group_size=32 sym=False library=torch"]
    assert [r["path"] for r in report["runs"]] == FOLDERS
    assert all(r["date"] is None and r["timestamp"] is None for r in report["runs"])
    assert report["runs"][2]["results_file"].startswith("rtn_4_g32/")
    assert report["runs"][2]["results_file"].endswith("/results_*.json")
    assert "load_seconds" not in report["runs"][2]["quantization"]
    assert {"report.md", "report.html", "plots"} <= {p.name for p in (out / "report").iterdir()}

    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["settings"] == ["none", "rtn:8:g32", "rtn:4:g32"]
    assert manifest["tasks"] == [TASK] and manifest["limit"] == LIMIT
    assert manifest["seeds"] is None and manifest["device"] == "cpu"
    assert [r["folder"] for r in manifest["runs"]] == FOLDERS


def test_full_precision_weights_are_loaded_once(swept):
    lines = swept["lines"]
    assert sum(LOADING_LINE in line for line in lines) == 1
    # every setting derived from that one load records its time, as a normal run records its own
    loads = [_results(swept["out"] / f)["config"]["quantization"]["load_seconds"]
             for f in FOLDERS[1:]]
    assert loads[0] > 0 and loads[0] == loads[1]
    assert [line.split("]")[0] for line in lines if " done in " in line] == ["[1/3", "[2/3", "[3/3"]


def test_rerun_skips_complete_runs_and_writes_the_same_report(swept, tiny_llama_dir):
    lines: list[str] = []
    result = run_sweep(_spec(tiny_llama_dir, swept["out"]), n_boot=N_BOOT, log=lines.append)
    assert result["ran"] == [] and result["skipped"] == FOLDERS
    assert not any(LOADING_LINE in line for line in lines)
    assert (swept["out"] / "report" / "report.json").read_bytes() == swept["report_bytes"]


def test_rerun_with_other_arguments_is_refused(swept, tiny_llama_dir):
    before = sorted(p.name for p in swept["out"].iterdir())
    for overrides, key in [({"limit": 8.0}, "limit"), ({"settings": "none,rtn:4:g32"}, "settings"),
                           ({"seeds": "0,1"}, "seeds"), ({"batch_size": "2"}, "batch_size"),
                           ({"model_args": f"pretrained={tiny_llama_dir},dtype=float32"},
                            "model_args")]:
        with pytest.raises(BiasEvalError, match=f"holds a sweep with other {key} ") as info:
            run_sweep(_spec(tiny_llama_dir, swept["out"], **overrides), n_boot=N_BOOT,
                      log=lambda _: None)
        assert "\n" not in str(info.value)
    assert sorted(p.name for p in swept["out"].iterdir()) == before


def test_a_second_sweep_into_a_running_sweeps_folder_is_refused(swept, tiny_llama_dir):
    import fcntl

    # the lock a running sweep holds on OUT (flock: taken through another open file, it conflicts
    # even within one process)
    with open(swept["out"] / ".sweep.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(BiasEvalError, match="another sweep is running into"):
            run_sweep(_spec(tiny_llama_dir, swept["out"]), n_boot=N_BOOT, log=lambda _: None)
    # released: the same command goes through again
    assert run_sweep(_spec(tiny_llama_dir, swept["out"]), n_boot=N_BOOT,
                     log=lambda _: None)["ran"] == []


def test_each_run_is_what_its_plain_lm_eval_command_writes(swept, tiny_llama_dir, tmp_path):
    """Run the --plan command of rtn:4:g32 with the real `lm_eval` CLI: same files, same samples,
    same results and quantization record but for timings, dates and function addresses."""
    from lm_eval._cli.harness import HarnessCLI

    spec = _spec(tiny_llama_dir, tmp_path / "plain")
    commands = [shlex.split(c) for c in plan_lines(spec, n_boot=N_BOOT) if c.startswith("lm_eval ")]
    # every planned command, parsed by lm_eval's own parser, has the model_args its sweep run
    # recorded
    for cmd, folder in zip(commands, FOLDERS):
        parsed = HarnessCLI()._parser.parse_args(cmd[1:]).model_args
        assert parsed == _results(swept["out"] / folder)["config"]["model_args"]
    proc = run_cli(commands[2], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    plain_dir = tmp_path / "plain" / "rtn_4_g32"
    swept_dir = swept["out"] / "rtn_4_g32"
    # same layout: <output_path>/<model name>/results_<ts>.json + samples_<task>_<ts>.jsonl
    layout = [sorted(p.relative_to(d).parts[0] + "/" + p.name.split("_20")[0]
                     for p in d.rglob("*") if p.is_file()) for d in (plain_dir, swept_dir)]
    assert layout[0] == layout[1] and len(layout[0]) == 2

    volatile = {("date",), ("total_evaluation_time_seconds",),
                ("config", "quantization", "load_seconds"),
                ("config", "quantization", "quantize_seconds")}

    def flatten(obj, prefix=()):
        if isinstance(obj, dict):
            out = [(prefix, tuple(obj))]  # key order too
            for k, v in obj.items():
                out += flatten(v, prefix + (k,))
            return out
        if isinstance(obj, str) and obj.startswith("<function "):
            return [(prefix, "<function>")]  # an address in memory
        return [(prefix, obj)]

    plain, ours = (flatten(_results(d)) for d in (plain_dir, swept_dir))
    assert len(plain) == len(ours)
    differ = [(k, a, b) for (k, a), (_, b) in zip(plain, ours, strict=True)
              if a != b and k not in volatile
              and not (isinstance(a, float) and math.isnan(a) and math.isnan(b))]
    assert differ == []
    assert _results(swept_dir)["config"]["quantization"]["method"] == "rtn"
    (plain_samples,), (our_samples,) = (list(d.glob("*/samples_*.jsonl")) for d in (plain_dir,
                                                                                  swept_dir))
    plain_lines, our_lines = (p.read_text().splitlines() for p in (plain_samples, our_samples))
    assert len(plain_lines) == len(our_lines) > 0
    # Same documents, prompts, answers and records; log-likelihoods equal to float32 rounding: the
    # in-process sweep and a fresh process may batch the same requests differently (padding), which
    # moves a log-likelihood by a few 1e-6 on some library versions.
    for plain_line, our_line in zip(plain_lines, our_lines, strict=True):
        assert _close(json.loads(plain_line), json.loads(our_line)), (plain_line, our_line)


def _close(a, b, tol: float = 1e-5) -> bool:
    """Equal JSON values, except that numbers (also numbers written as strings, as lm-eval writes
    its responses) may differ by `tol` relative or absolute."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b))
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except (TypeError, ValueError):
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    return math.isclose(x, y, rel_tol=tol, abs_tol=tol)


# ----------------------------------------------------------------------------- SIGKILL and resume


def _start(args: list[str], log: Path) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "lm-eval-bias"
    cmd = [str(exe) if exe.exists() else "lm-eval-bias", "sweep", *args]
    with open(log, "ab") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=dict(os.environ))


def _kill_when(proc: subprocess.Popen, ready, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            proc.send_signal(signal.SIGKILL)  # this test's own child, by its pid
            proc.wait()
            return
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended (exit {proc.returncode}) before {what}")
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    pytest.fail(f"timed out waiting for {what}")


def test_sigkilled_sweep_resumes_to_the_same_report(swept, tiny_llama_dir, tmp_path):
    out = tmp_path / "study"
    args = _sweep_args(tiny_llama_dir, out)
    log = tmp_path / "sweep.log"

    # 1. right after the first run got its final name (the next may have begun its .partial)
    proc = _start(args, log)
    _kill_when(proc, lambda: (out / "none").is_dir(), "the first run folder appeared")
    assert not (out / "report").exists()

    # 2. mid-setting: the last run is still in its .partial folder, two runs are final
    proc = _start(args, log)
    _kill_when(proc, lambda: (out / "rtn_4_g32.partial").is_dir(), "rtn_4_g32.partial appeared")
    assert (out / "rtn_8_g32").is_dir() and not (out / "rtn_4_g32").exists()
    assert "1 of 3 runs already complete" in log.read_text()
    # as if killed while lm-eval was writing: a half-written results file in the .partial folder
    half = out / "rtn_4_g32.partial" / "model" / "results_2099-01-01T00-00-00.000000.json"
    half.parent.mkdir(parents=True, exist_ok=True)
    half.write_text('{"results": {"bias_bbq_age": {"acc')

    proc = run_cli(["lm-eval-bias", "sweep", *args], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "removed " in proc.stdout and "rtn_4_g32.partial" in proc.stdout
    assert "2 of 3 runs already complete" in proc.stdout
    assert not list(out.glob("*.partial"))

    report = (out / "report" / "report.json").read_bytes()
    assert report == swept["report_bytes"]  # byte for byte, from another folder and process
    runs = json.loads(report)["runs"]
    assert [r["path"] for r in runs] == FOLDERS
    assert not any(".partial" in json.dumps(r) for r in runs)


# ----------------------------------------------------------------------------- lm-eval options, vllm


def _parse_with_lm_eval(command: str):
    from lm_eval._cli.harness import HarnessCLI
    from lm_eval.config.evaluate_config import EvaluatorConfig

    argv = shlex.split(command)
    assert argv[0] == "lm_eval"
    namespace = HarnessCLI()._parser.parse_args(argv[1:])
    return namespace, EvaluatorConfig.from_cli(namespace)


def _plan_lines_of(argv: list[str], capsys) -> list[str]:
    assert cli.main(["sweep", *argv, "--plan"]) == 0
    return capsys.readouterr().out.strip().splitlines()


LM_EVAL_PASS_THROUGH = [
    "--apply_chat_template", "--system_instruction", "Answer fairly.", "--fewshot_as_multiturn",
    "--num_fewshot", "2", "--gen_kwargs", "temperature=0,max_gen_toks=16",
    "--metadata", '{"max_seq_lengths": [512]}',
    "--hf_hub_log_args", "hub_results_org=me,push_results_to_hub=False",
]


def test_lm_eval_options_reach_every_planned_run_as_lm_eval_parses_them(tiny_llama_dir, tmp_path,
                                                                       capsys):
    include = tmp_path / "my_tasks"
    include.mkdir()
    lines = _plan_lines_of(["--model_args", f"pretrained={tiny_llama_dir}", "--settings", SETTINGS,
                   "--tasks", TASK, "--output", str(tmp_path / "out"), "--batch_size", "4",
                   "--device", "cpu", *LM_EVAL_PASS_THROUGH, "--include_path", str(include)],
                  capsys)
    runs = [line for line in lines if line.startswith("lm_eval ")]
    assert len(runs) == 3
    repos = set()
    for line, folder in zip(runs, FOLDERS):
        _, cfg = _parse_with_lm_eval(line)
        assert cfg.model == "hf-quant" and cfg.batch_size == "4"
        assert cfg.apply_chat_template is True and cfg.fewshot_as_multiturn is True
        assert cfg.system_instruction == "Answer fairly." and cfg.num_fewshot == 2
        assert cfg.gen_kwargs == {"temperature": 0, "max_gen_toks": 16}
        assert cfg.metadata["max_seq_lengths"] == [512]
        assert cfg.include_path == str(include)
        hub = cfg.hf_hub_log_args
        assert hub["hub_results_org"] == "me" and hub["push_results_to_hub"] is False
        assert hub["details_repo_name"] == f"lm-eval-results-{folder}"
        assert hub["results_repo_name"] == f"lm-eval-results-{folder}"
        repos.add(hub["details_repo_name"])
    assert len(repos) == 3  # one repository per setting: no run overwrites another


def test_a_named_chat_template_and_hub_repo_name_are_kept(tiny_llama_dir, tmp_path, capsys):
    lines = _plan_lines_of(["--model-args", f"pretrained={tiny_llama_dir}",
                            "--settings", "none,rtn:4:g32",
                   "--tasks", TASK, "--output", str(tmp_path / "out"), "--device", "cpu",
                   "--apply_chat_template", "chatml", "--fewshot_as_multiturn", "false",
                   "--hf_hub_log_args", '{"hub_repo_name": "bias-runs"}'], capsys)
    runs = [line for line in lines if line.startswith("lm_eval ")]
    names = []
    for line in runs:
        _, cfg = _parse_with_lm_eval(line)
        assert cfg.apply_chat_template == "chatml" and cfg.fewshot_as_multiturn is False
        names.append(cfg.hf_hub_log_args["hub_repo_name"])
    assert names == ["bias-runs-none", "bias-runs-rtn_4_g32"]


def test_vllm_plan_quantizes_each_setting_then_runs_lm_eval_vllm(tmp_path, capsys):
    out = tmp_path / "study"
    lines = _plan_lines_of(["--model-args",
                            "pretrained=HuggingFaceTB/SmolLM2-135M-Instruct,dtype=bfloat16",
                   "--settings", "none,rtn:4:g64,rtn:8,smoothquant:8,gptq:4:g64:calib=c4",
                   "--tasks", "bias_bbq_lite", "--output", str(out), "--backend", "vllm",
                   "--tensor_parallel_size", "2", "--data-parallel-size", "1",
                   "--gpu_memory_utilization", "0.8", "--batch_size", "auto", "--seeds", "0,1",
                   "--apply_chat_template", "--limit", "10"], capsys)
    quantize = [shlex.split(line) for line in lines if line.startswith("lm-eval-bias quantize")]
    assert [q[q.index("--scheme") + 1] for q in quantize] == ["W4A16", "W8A16", "W8A8", "W4A16"]
    assert quantize[0] == ["lm-eval-bias", "quantize", "HuggingFaceTB/SmolLM2-135M-Instruct",
                           "--method", "rtn", "--scheme", "W4A16", "--group-size", "64",
                           "--output", str(out / "checkpoints" / "rtn_4_g64")]
    assert quantize[3][quantize[3].index("--calib") + 1] == "c4"
    # each quantize command parses with quantize's own parser
    parser = cli.build_parser()
    for q in quantize:
        assert parser.parse_args(q[1:]).method in ("rtn", "smoothquant", "gptq")
    runs = [line for line in lines if line.startswith("lm_eval ")]
    assert len(runs) == 10  # 5 settings x 2 seeds
    for line in runs:
        _, cfg = _parse_with_lm_eval(line)
        assert cfg.model == "vllm" and cfg.apply_chat_template is True and cfg.limit == 10
        assert cfg.model_args["tensor_parallel_size"] == 2
        assert cfg.model_args["data_parallel_size"] == 1
        assert cfg.model_args["gpu_memory_utilization"] == 0.8
        assert cfg.model_args["dtype"] == "bfloat16" and "quant" not in cfg.model_args
    _, first = _parse_with_lm_eval(runs[0])
    assert first.model_args["pretrained"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    _, w4 = _parse_with_lm_eval(runs[2])
    assert w4.model_args["pretrained"] == str(out / "checkpoints" / "rtn_4_g64")
    assert w4.output_path == str(out / "rtn_4_g64_seed0")
    assert lines[-1].startswith("lm-eval-bias report ")
    assert shlex.split(lines[-1])[2:12] == [str(out / j) for j in (
        "none_seed0", "none_seed1", "rtn_4_g64_seed0", "rtn_4_g64_seed1", "rtn_8_seed0",
        "rtn_8_seed1", "smoothquant_8_seed0", "smoothquant_8_seed1", "gptq_4_g64_calib-c4_seed0",
        "gptq_4_g64_calib-c4_seed1")]


@pytest.mark.parametrize("settings,message", [
    ("none,nf4", "--backend vllm evaluates real checkpoints"),
    ("none,smoothquant:4", "writes W8A8, not W4A16"),
    ("none,rtn:3", "give bits 4 or 8"),
    ("none,rtn:4:foo=1", "foo is not an option of lm-eval-bias quantize"),
])
def test_vllm_settings_must_be_quantize_settings(tmp_path, settings, message):
    with pytest.raises(BiasEvalError, match=message):
        make_spec(model_args="pretrained=m", settings=settings, tasks=TASK, output=tmp_path,
                  backend="vllm", device="cpu")


def test_vllm_backend_runs_only_as_a_plan(tmp_path, capsys):
    code = cli.main(["sweep", "--model-args", "pretrained=m", "--settings", "none,rtn:4",
                     "--tasks", TASK, "--output", str(tmp_path / "o"), "--backend", "vllm",
                     "--device", "cpu"])
    assert code == 2 and "add --plan" in capsys.readouterr().err
    # vLLM schedules its own batches: batch size auto unless given
    assert make_spec(model_args="pretrained=m", settings="none,rtn:4", tasks=TASK,
                     output=tmp_path, backend="vllm", device="cpu").batch_size == "auto"
    with pytest.raises(BiasEvalError, match="option of --backend vllm"):
        make_spec(model_args="pretrained=m", settings="none,rtn:4", tasks=TASK, output=tmp_path,
                  vllm_args={"tensor_parallel_size": 2}, device="cpu")


CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def test_a_chat_model_sweeps_with_its_chat_template(tiny_llama_dir, tmp_path):
    """A checkpoint with a chat template, swept with --apply_chat_template and a system
    instruction: every run's prompts are rendered by the template, and lm-eval records it."""
    import shutil

    chat = tmp_path / "chat-llama"
    shutil.copytree(tiny_llama_dir, chat)
    config_path = chat / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["chat_template"] = CHAT_TEMPLATE
    config_path.write_text(json.dumps(config))
    spec = _spec(chat, tmp_path / "out", settings="none,rtn:4:g32", limit=2.0,
                 lm_eval_options={"apply_chat_template": True,
                                  "system_instruction": "Answer fairly."})
    run_sweep(spec, n_boot=N_BOOT, log=lambda _: None)
    for folder in ("none", "rtn_4_g32"):
        results = _results(tmp_path / "out" / folder)
        assert results["config"].get("apply_chat_template", True)
        assert results["chat_template"] == CHAT_TEMPLATE
        assert results["system_instruction"] == "Answer fairly."
        (samples,) = (tmp_path / "out" / folder).glob(f"*/samples_{TASK}_*.jsonl")
        first = json.loads(samples.read_text().splitlines()[0])
        prompt = first["arguments"]["gen_args_0"]["arg_0"]
        assert prompt.startswith("<|system|>Answer fairly.</s><|user|>")
        assert prompt.endswith("<|assistant|>")


# ----------------------------------------------------------------------------- package layout, output


def test_only_the_runner_imports_lm_eval():
    """The sweep package keeps lm-eval behind one module (`runner`), checked on the source."""
    import ast

    import lm_eval_bias.sweep as package

    importers = set()
    for path in Path(package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "lm_eval" or n.startswith("lm_eval.") for n in names):
                importers.add(path.name)
    assert importers == {"runner.py"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_is_refused_before_the_model_loads(tiny_llama_dir, tmp_path):
    out = tmp_path / "study"
    out.mkdir()
    out.chmod(0o500)
    lines: list[str] = []
    try:
        with pytest.raises(BiasEvalError, match="is not writable; give a folder you can write"):
            run_sweep(_spec(tiny_llama_dir, out), n_boot=N_BOOT, log=lines.append)
    finally:
        out.chmod(0o700)
    assert lines == []  # refused before tasks or weights were loaded


def test_an_output_under_a_file_is_refused_before_the_model_loads(tiny_llama_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    lines: list[str] = []
    with pytest.raises(BiasEvalError, match="is a file, so the folder cannot be created"):
        run_sweep(_spec(tiny_llama_dir, blocker / "study"), n_boot=N_BOOT, log=lines.append)
    assert lines == []
