"""The contributor guides (docs/new_*.md) name files that exist, and the README's quantization
table is the registry's, no more, no less."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from lm_eval_bias.models.quant import QUANTIZERS

REPO_ROOT = Path(__file__).resolve().parents[1]
GUIDES = ("docs/new_benchmark.md", "docs/new_quantizer.md", "docs/new_statistic.md")
#: each guide's placeholders, resolved against a real example
EXAMPLES = {"<b>": "crows_pairs", "<subset>": "age", "<method>": "rtn"}
_PATH = re.compile(r"`([^`\s]+)`")
_FILE_SUFFIXES = (".py", ".md", ".yaml", ".toml", ".json", ".csv")


def _named_paths(text: str) -> list[str]:
    """Backticked spans that are repository paths: with a "/" or a file suffix, no spaces."""
    spans = _PATH.findall(text)
    return [s for s in spans if ("/" in s and not s.startswith(("!", "http"))) or
            (s.endswith(_FILE_SUFFIXES) and s.count(".") == 1 and not s.startswith("."))]


def _resolve(path: str) -> str:
    for placeholder, example in EXAMPLES.items():
        path = path.replace(placeholder, example)
    return path


@pytest.mark.parametrize("guide", GUIDES)
def test_every_path_a_guide_names_exists(guide):
    paths = _named_paths((REPO_ROOT / guide).read_text(encoding="utf-8"))
    assert len(paths) >= 5, f"{guide} names only {paths}"
    unresolved = [p for p in map(_resolve, paths) if "<" in p]
    assert not unresolved, f"{guide}: placeholders without an example: {unresolved}"
    missing = [p for p in map(_resolve, paths) if not (REPO_ROOT / p).exists()]
    assert not missing, f"{guide} names paths that do not exist: {missing}"


def test_the_readme_links_every_guide():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Contributing", 1)
    assert len(section) == 2, "README.md has no Contributing section"
    body = section[1].split("\n## ", 1)[0]
    for guide in GUIDES:
        assert f"]({guide})" in body, guide


def _readme_quant_methods() -> list[str]:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quantization", 1)[1].split("\n## ", 1)[0]
    lines = section.splitlines()
    header = next((i for i, ln in enumerate(lines) if ln.startswith("|---")), None)
    assert header is not None, "README.md's Quantization section has no table"
    rows = [ln for ln in lines[header + 1:] if ln.startswith("|")]
    return [name for row in rows for name in re.findall(r"`([^`]+)`", row.split("|")[1])]


def test_the_readme_quantization_table_is_the_registry():
    documented = _readme_quant_methods()
    assert len(documented) == len(set(documented)), documented
    assert sorted(documented) == sorted(QUANTIZERS.names())


def test_hf_quant_points_to_the_readme_table_instead_of_copying_it():
    source = (REPO_ROOT / "lm_eval_bias" / "models" / "hf_quant.py").read_text(encoding="utf-8")
    doc = ast.get_docstring(ast.parse(source)) or ""
    assert "README.md" in doc
    assert not [ln for ln in doc.splitlines() if ln.lstrip().startswith("|")]
