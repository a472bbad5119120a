"""Dependency floors in pyproject.toml: each one at least what the package's code needs (a table
of the APIs that set them, checked against the installed libraries), and, in the slow test, a
real resolver at the lowest allowed versions plus tests/metrics run there
(benchmarks/check_floors.py; about 40 s with an empty uv cache, needs the package index)."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

try:  # Python 3.10 has no tomllib; pytest brings tomli there
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent

#: package -> (lowest version the code needs, the API that needs it, where it is used).
#: Lowering a floor below these breaks the code at the floor; tests/metrics also ran at
#: numpy 1.24.0, pandas 2.0.0, scipy 1.11.1, statsmodels 0.14.0 (check_floors.py --install).
API_FLOORS = {
    "scipy": ("1.11", "scipy.stats.false_discovery_control", "metrics/holistic_bias.py"),
    "transformers": ("4.57", ("from_pretrained(dtype=...) (4.56) and "
                              "cache_utils.DynamicLayer.is_initialized (4.57)"),
                     "models/smollm2.py, models/prefix_scoring.py"),
    "statsmodels": ("0.14", "discrete-model cov_type='cluster', multipletests, mcnemar",
                    "metrics/stats.py"),
    "numpy": ("1.24", "numpy.random.default_rng, numpy.quantile", "metrics/"),
    "pandas": ("2.0", "nullable 'boolean' arrays, DataFrame.value_counts", "metrics/"),
}
#: Declared dependencies the package never imports, and why they are still declared.
RUNTIME_ONLY = {
    "accelerate": "lm-eval's HFLM and transformers' device_map need it at run time",
    "lm-eval": "imported as lm_eval",
}


def _declared() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["stats"]
    out = {}
    for req in reqs:
        m = re.match(r"([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][0-9.]*)", req)
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version)[:3])


@pytest.mark.parametrize("package", sorted(API_FLOORS))
def test_declared_floor_covers_the_apis_used(package):
    needed, api, where = API_FLOORS[package]
    declared = _declared()
    assert package in declared, f"{package} is used ({where}) but has no floor in pyproject.toml"
    assert _release(declared[package]) >= _release(needed), (
        f"{package}>={declared[package]} is declared, but {where} uses {api} ({needed})")
    installed = metadata.version(package)
    assert _release(installed) >= _release(declared[package])


def test_the_apis_that_set_the_floors_exist_here():
    from scipy import stats
    from transformers.cache_utils import DynamicLayer

    assert callable(stats.false_discovery_control)
    assert DynamicLayer().is_initialized is False


def test_every_core_dependency_is_imported_or_explained():
    source = "\n".join(p.read_text() for p in (ROOT / "lm_eval_bias").rglob("*.py"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"]:
        name = re.match(r"[A-Za-z0-9_.\-]+", req).group(0).lower()
        module = name.replace("-", "_")
        imported = re.search(rf"^\s*(from|import) {module}\b", source, re.MULTILINE)
        assert imported or name in RUNTIME_ONLY, f"{name} is declared but never imported"


@pytest.mark.slow
def test_lowest_allowed_versions_resolve_and_pass_the_metrics_tests():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import check_floors
    finally:
        sys.path.pop(0)
    if check_floors.find_uv() is None:
        pytest.skip("uv is not installed (pip install 'lm-eval-bias[test]')")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "check_floors.py"),
                           "--install"], check=False, capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "tests/metrics pass at" in proc.stdout
