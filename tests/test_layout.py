"""Layout rules of the package, checked on its source with `ast` (nothing is imported).

- No module uses another module's private name: ``from X import _name`` and ``X._name`` (X an
  imported module) are refused unless ``_name`` is itself a module (a package-private module such
  as ``lm_eval_bias/_files.py`` or ``tasks/_records.py`` is meant to be shared) or a dunder.
- No function longer than `MAX_LINES` lines. Functions outside ``lm_eval_bias/analysis/`` that were
  longer when the rule came in are listed in `KNOWN_LONG` (their owners shrink them); the list may
  only get shorter: a listed function that now fits fails the test too, so it is removed.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lm_eval_bias"
ROOT = PACKAGE.parent
MAX_LINES = 80

#: "path:qualified name" of functions over MAX_LINES outside lm_eval_bias/analysis/.
KNOWN_LONG: set[str] = set()


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _dotted(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _resolve(path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    here = _dotted(path).split(".")
    if path.name != "__init__.py":
        here = here[:-1]
    base = here[: len(here) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    rel = path.relative_to(ROOT)
    out, module_names = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("lm_eval_bias"):
                    module_names[a.asname or a.name.split(".")[0]] = a.name
        elif isinstance(node, ast.ImportFrom):
            src = _resolve(path, node)
            if not src.startswith("lm_eval_bias"):
                continue
            for a in node.names:
                if _is_module(f"{src}.{a.name}"):
                    module_names[a.asname or a.name] = f"{src}.{a.name}"
                elif _private(a.name) and src != _dotted(path):
                    out.append(f"{rel}:{node.lineno}: from {src} import {a.name}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in module_names and _private(node.attr)
                and not _is_module(f"{module_names[node.value.id]}.{node.attr}")):
            out.append(f"{rel}:{node.lineno}: {node.value.id}.{node.attr}")
    return out


def test_no_private_names_across_modules():
    found = [v for p in _modules() for v in _violations(p)]
    assert not found, "private names used across modules:\n" + "\n".join(found)


def _long_functions(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    n = child.end_lineno - child.lineno + 1
                    if n > MAX_LINES:
                        out.append((name, n))
                visit(child, name + ".")
            else:
                visit(child, prefix)
    visit(tree, "")
    return out


def test_no_long_functions():
    found = {f"{p.relative_to(ROOT)}:{name}": n for p in _modules()
             for name, n in _long_functions(p)}
    new = {k: n for k, n in found.items() if k not in KNOWN_LONG or "/analysis/" in k}
    assert not new, f"functions over {MAX_LINES} lines: {new}"
    fixed = KNOWN_LONG - set(found)
    assert not fixed, f"now within {MAX_LINES} lines, remove from KNOWN_LONG: {sorted(fixed)}"
