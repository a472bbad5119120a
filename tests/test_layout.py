"""Layout rules of the package, checked on its source with `ast` (nothing is imported).

- No module uses another module's private name: ``from X import _name`` and ``X._name`` (X an
  imported module) are refused unless ``_name`` is itself a module (a package-private module such
  as ``lm_eval_bias/_files.py`` or ``tasks/_records.py`` is meant to be shared) or a dunder.
- No function longer than `MAX_LINES` lines. Functions outside ``lm_eval_bias/analysis/`` that were
  longer when the rule came in are listed in `KNOWN_LONG` (their owners shrink them); the list may
  only get shorter: a listed function that now fits fails the test too, so it is removed.
- No benchmark task module (``lm_eval_bias/tasks/<benchmark>.py``) writes out again what the hook
  kit (``tasks/_kit.py``, ``tasks/_options.py``; docs/new_benchmark.md) does: reading lm-eval's
  ``results``, an argmax, the dataset wrapper, the metrics-plus-record dict, the seeded option
  order, the "unknown ...; choose one of ..." check (`_kit_violations`).
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


# ----------------------------------------------------------------------------- the hook kit

TASKS = PACKAGE / "tasks"


#: calls a task module leaves to the kit, and what it calls instead
KIT_CALLS = {
    "argmax": "_kit.first_argmax",
    "test_split": "_kit.custom_dataset",
    "from_list": "_kit.custom_dataset",
    "option_permutation": "_options.shown_order",
    "make_bias_item": "_kit.choice_item, or _open's toxicity_record / sentiment_record",
}


def _benchmark_modules() -> list[Path]:
    return sorted(p for p in TASKS.glob("*.py") if not p.name.startswith("_"))


def _call_name(node: ast.AST) -> str:
    func = node.func if isinstance(node, ast.Call) else node
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _results_read_by_hand(tree: ast.AST, parents: dict) -> list[int]:
    """Lines where a hook's `results` is indexed, unpacked or iterated instead of being passed
    to the kit (`_kit.loglikelihoods`, `_kit.generated_text`, `_open.scored`)."""
    out = []
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef) or "results" not in [a.arg for a in fn.args.args]:
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Name) and node.id == "results":
                parent = parents.get(node)
                if not (isinstance(parent, ast.Call) and node in parent.args):
                    out.append(node.lineno)
    return out


def _is_choose_one_of(node: ast.JoinedStr) -> bool:
    """The f-string of `_kit.one_of`'s message: "unknown <what> {value!r}; choose one of
    {', '.join(allowed)}"."""
    v = node.values
    return (len(v) == 4 and isinstance(v[0], ast.Constant) and str(v[0].value).startswith("unknown ")
            and isinstance(v[1], ast.FormattedValue) and isinstance(v[2], ast.Constant)
            and v[2].value == "; choose one of " and isinstance(v[3], ast.FormattedValue)
            and _call_name(v[3].value) == "join")


def _kit_violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = [(line, "reads `results` by hand (use _kit.loglikelihoods / generated_text)")
             for line in _results_read_by_hand(tree, parents)]
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Call):
            name = _call_name(node)
            first = node.args[0] if node.args else None
            if name in ("max", "min") and isinstance(first, ast.Call) and (
                    _call_name(first) in ("range", "enumerate")):
                found.append((line, "an argmax by hand (use _kit.first_argmax)"))
            if name == "index" and isinstance(first, ast.Call) and _call_name(first) == "max":
                found.append((line, "an argmax by hand (use _kit.first_argmax)"))
            if name in KIT_CALLS:
                found.append((line, f"{name}(...) by hand (use {KIT_CALLS[name]})"))
        elif isinstance(node, ast.Attribute) and node.attr == "DatasetDict":
            found.append((line, "the dataset wrapper by hand (use _kit.custom_dataset)"))
        elif isinstance(node, ast.Dict) and any(
                isinstance(k, ast.Constant) and k.value == "bias_item" for k in node.keys):
            found.append((line, "the metrics + record dict by hand (use _kit.emit)"))
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store) and (
                isinstance(node.slice, ast.Constant)
                and node.slice.value in ("bias_item", "perm", "permute_seed")):
            hint = "_kit.emit" if node.slice.value == "bias_item" else "_options.mark_permuted"
            found.append((line, f"sets [{node.slice.value!r}] by hand (use {hint})"))
        elif isinstance(node, ast.JoinedStr) and _is_choose_one_of(node):
            found.append((line, "the unknown-value message by hand (use _kit.one_of)"))
    return [f"{path.relative_to(ROOT)}:{line}: {what}" for line, what in sorted(found)]


def test_task_modules_use_the_hook_kit():
    modules = _benchmark_modules()
    assert len(modules) >= 16, [p.name for p in modules]
    found = [v for p in modules for v in _kit_violations(p)]
    assert not found, "hook code written again instead of using the kit:\n" + "\n".join(found)
