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
