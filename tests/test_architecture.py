"""The architecture as tests: import-linter's contracts (pyproject.toml) and the rules it
can't express, checked over the source's syntax trees (docs/architecture.md)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "painterly"


def _modules() -> dict[str, ast.Module]:
    trees = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        trees[name] = (path, ast.parse(path.read_text(), str(path)))
    return trees


MODULES = _modules()


def _is_package(module: str) -> bool:
    return MODULES[module][0].name == "__init__.py"


def _imports(module: str):
    """(imported module, names taken from it, line) for every import in ``module``,
    wherever it is (top level or inside a function)."""
    path, tree = MODULES[module]
    base = module.split(".") if _is_package(module) else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, (), node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = base[: len(base) - node.level + 1]
                target = ".".join(parent + ([node.module] if node.module else []))
            else:
                target = node.module
            names = tuple(a.name for a in node.names)
            for name in names:  # `from . import image` imports the module painterly.image
                if f"{target}.{name}" in MODULES:
                    yield f"{target}.{name}", (), node.lineno
                    names = tuple(n for n in names if n != name)
            if names:
                yield target, names, node.lineno


def test_import_linter_contracts_are_kept():
    result = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "broken" in result.stdout and " 0 broken" in result.stdout


def test_nothing_inside_imports_the_package_face():
    """painterly/__init__ is for users; inside, modules import what they use directly
    (no import circles through the face, and `import painterly` stays light)."""
    offenders = [f"{m}:{line} imports {', '.join(names) or 'painterly'} from the package face"
                 for m in MODULES if m != "painterly"
                 for target, names, line in _imports(m) if target == "painterly"]
    assert not offenders, offenders


def test_no_private_name_is_imported_from_another_module():
    offenders = [f"{m}:{line} imports {name} from {target}"
                 for m in MODULES for target, names, line in _imports(m)
                 if target.startswith("painterly") and target != m
                 for name in names if name.startswith("_") and not name.startswith("__")]
    assert not offenders, offenders


def test_no_import_circle():
    graph = {m: {t for t, _, _ in _imports(m) if t in MODULES and t != m} for m in MODULES}
    # A package's __init__ re-exporting its own modules is not a circle of the design.
    graph = {m: {t for t in ts if not (_is_package(m) and t.startswith(m + "."))}
             for m, ts in graph.items()}
    state, circles = {}, []

    def visit(m, path):
        state[m] = "open"
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                circles.append(" -> ".join(path[path.index(t):] + [t]))
            elif t not in state:
                visit(t, path + [t])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not circles, circles


def _calls(module: str, dotted: str):
    path, tree = MODULES[module]
    head, attr = dotted.rsplit(".", 1)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == attr and isinstance(node.func.value, ast.Name)
                and node.func.value.id == head):
            yield node.lineno


def test_weight_files_are_opened_only_in_weights():
    """safetensors is fenced by import-linter; torch.load by this test."""
    offenders = [f"{m}:{line}" for m in MODULES if m != "painterly.weights"
                 for line in _calls(m, "torch.load")]
    assert not offenders, offenders


def test_the_rules_catch_a_breach(tmp_path):
    """The checks are live: a module that breaks each rule is reported."""
    bad = ast.parse("from .cli.common import Reporter\nfrom . import __version__\n"
                    "from .image import _check_shape\nimport torch\ntorch.load('x')\n")
    MODULES["painterly.breach"] = (PACKAGE / "breach.py", bad)
    try:
        imports = list(_imports("painterly.breach"))
        assert ("painterly.cli.common", ("Reporter",), 1) in imports
        assert ("painterly", ("__version__",), 2) in imports
        with pytest.raises(AssertionError):
            test_nothing_inside_imports_the_package_face()
        with pytest.raises(AssertionError):
            test_no_private_name_is_imported_from_another_module()
        with pytest.raises(AssertionError):
            test_weight_files_are_opened_only_in_weights()
    finally:
        del MODULES["painterly.breach"]


def test_import_painterly_is_light():
    """No torch, no Pillow, no web framework on `import painterly`; names load on use."""
    code = ("import sys, painterly; heavy = {'torch', 'PIL', 'starlette', 'tqdm'} & set(sys.modules);"
            "print(sorted(heavy)); painterly.TransferConfig; print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["[]", "True"]
