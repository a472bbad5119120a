"""Check the dependency floors in pyproject.toml against a real resolver, and optionally run the
statistics tests at the lowest allowed versions.

    python benchmarks/check_floors.py            # resolve only (about 3 s with a warm uv cache)
    python benchmarks/check_floors.py --install  # + scratch venv at the floors, run tests/metrics

Needs `uv` (pip has no lowest-version resolution; `pip install uv`) and the package index; no
other network. Step 1: ``uv pip compile --resolution lowest-direct`` over the core dependencies
and the extras that do not need a GPU library (stats, test, leaderboard), for the oldest and the
current Python; every direct dependency must resolve to its floor's major.minor (a higher one
means the floor cannot be installed with the rest, so it is a false promise). Step 2 (--install):
a throw-away virtual environment with the statistics stack (numpy, pandas, scipy, statsmodels,
pytest, hypothesis) at exactly the resolved versions, binary wheels only, and
``pytest tests/metrics`` in it. Exit status 0 when everything holds; one line per problem.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:  # Python 3.10 has no tomllib; pytest brings tomli there
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = ("stats", "test", "leaderboard")
STATS_STACK = ("numpy", "pandas", "scipy", "statsmodels", "pytest", "hypothesis")


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].strip().lower().replace("_", "-")


def floors() -> dict[str, str]:
    """Direct dependencies (core and EXTRAS) with a ``>=`` floor: name -> floor version."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in EXTRAS:
        reqs += [r for r in project["optional-dependencies"][extra] if not r.startswith("lm-eval-bias")]
    out = {}
    for req in reqs:
        m = re.search(r">=\s*([0-9][0-9a-zA-Z.]*)", req)
        if m:
            out[_name(req)] = m.group(1)
    return out


def find_uv() -> str | None:
    """The uv binary: on PATH, next to this Python, or the one the `uv` wheel ships."""
    exe = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    if exe:
        return exe
    try:
        from uv import find_uv_bin
    except ImportError:
        return None
    return find_uv_bin()


def uv() -> str:
    exe = find_uv()
    if exe is None:
        raise SystemExit("check_floors: uv is not installed (pip install uv)")
    return exe


def resolve(python_version: str) -> dict[str, str]:
    cmd = [uv(), "pip", "compile", str(ROOT / "pyproject.toml"), "--resolution", "lowest-direct",
           "--python-version", python_version, "--no-header", "--quiet", "--no-annotate"]
    for extra in EXTRAS:
        cmd += ["--extra", extra]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"check_floors: no resolution at the floors for Python {python_version}: "
                         + " ".join(proc.stderr.split())[-1500:])
    pins = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", line.strip())
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def _same_release(floor: str, got: str) -> bool:
    """`got` matches `floor` in the floor's leading components (at most major.minor)."""
    want = re.findall(r"\d+", floor)[:2]
    return re.findall(r"\d+", got)[:len(want)] == want


def check_resolution(python_version: str) -> tuple[dict[str, str], list[str]]:
    pins = resolve(python_version)
    problems = []
    for name, floor in sorted(floors().items()):
        got = pins.get(name)
        if got is None:
            problems.append(f"Python {python_version}: {name} is not in the resolution")
        elif not _same_release(floor, got):
            problems.append(f"Python {python_version}: {name}>={floor} resolves to {got} at the "
                            "lowest: the floor cannot be installed with the other dependencies")
    return pins, problems


def run_metrics_tests(pins: dict[str, str]) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="lm-eval-bias-floors-") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([uv(), "venv", "--quiet", "--python", sys.executable, str(venv)],
                       check=True, timeout=300)
        py = venv / "bin" / "python"
        wanted = [f"{name}=={pins[name]}" for name in STATS_STACK]
        inst = subprocess.run([uv(), "pip", "install", "--quiet", "--python", str(py),
                               "--only-binary", ":all:", *wanted],
                              check=False, capture_output=True, text=True, timeout=900)
        if inst.returncode != 0:
            return [f"installing {' '.join(wanted)} failed: {' '.join(inst.stderr.split())[-800:]}"]
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
               "HF_DATASETS_OFFLINE": "1", "HOME": tmp}
        test = subprocess.run([str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               str(ROOT / "tests" / "metrics")], check=False,
                              capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
        if test.returncode != 0:
            return [f"tests/metrics at {' '.join(wanted)}: " + test.stdout[-1500:]]
        print(f"check_floors: tests/metrics pass at {' '.join(wanted)}: "
              + test.stdout.strip().splitlines()[-1])
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--install", action="store_true",
                        help="also run tests/metrics in a scratch venv at the lowest versions")
    args = parser.parse_args(argv)
    start = time.monotonic()
    oldest = re.search(r"(\d+\.\d+)", tomllib.loads((ROOT / "pyproject.toml").read_text())
                       ["project"]["requires-python"]).group(1)
    current = f"{sys.version_info.major}.{sys.version_info.minor}"
    problems, pins = [], {}
    for version in dict.fromkeys((oldest, current)):
        pins, found = check_resolution(version)
        problems += found
    if args.install and not problems:
        problems += run_metrics_tests(pins)
    for line in problems:
        print(f"check_floors: {line}")
    print(f"check_floors: {'FAILED' if problems else 'ok'} in {time.monotonic() - start:.0f} s")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
