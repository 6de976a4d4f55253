"""The package's layers import only downward (docs/architecture.md, "Layers").

Every ``import`` statement of every module of refcomp (including refcomp.kernels,
which lives in kernels/), at module level or inside a function, is read from
the source with ``ast`` and resolved to the refcomp module it names; the test
fails on any import of a higher layer. Function-local imports of refcomp
modules are refused too (they used to hide a cycle through every package),
except the one lazy load of the native backends.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: bottom to top; a module may import its own layer and the layers below it
LAYERS = [
    {"refcomp._version", "refcomp.errors", "refcomp.checks", "refcomp._frozen", "refcomp.progress"},
    {"refcomp.backend", "refcomp.executors"},
    {"refcomp.numerics"},
    {"refcomp.ops"},
    {"refcomp.kernels"},
    {"refcomp.quant"},
    {"refcomp.formats"},
    {"refcomp.datasets"},
    {"refcomp.nn"},
    {"refcomp.models"},
    {"refcomp.io", "refcomp.onnx"},
    {"refcomp.compress"},
    {"refcomp.report"},
    {"refcomp.pipelines"},
    {"refcomp.cli", "refcomp.__main__", "refcomp"},
]

#: (importer, imported) pairs allowed inside a function: loading the native
#: backends on the first call of an op that may use them, so that importing an
#: op never compiles or loads C / Numba code.
LAZY = {("refcomp.backend", "refcomp.kernels")}


def _modules() -> dict[str, Path]:
    mods = {}
    for folder, package in ((ROOT / "refcomp", "refcomp"), (ROOT / "kernels", "refcomp.kernels")):
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join([package, *parts])] = path
    return mods


MODULES = _modules()


def _imports(name: str, path: Path):
    """(imported refcomp module, line, inside a function?) for each import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, child.lineno, in_function
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[:len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module
                for alias in child.names:
                    full = f"{target}.{alias.name}"
                    yield (full if full in MODULES else target), child.lineno, in_function
            yield from visit(child, inner)

    for target, line, local in visit(tree, False):
        if target == "refcomp" or target.startswith("refcomp."):
            yield target, line, local


def layer(module: str) -> int:
    """Index in LAYERS of the layer holding ``module`` (longest matching prefix)."""
    best, index = "", None
    for i, names in enumerate(LAYERS):
        for prefix in names:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, index = prefix, i
    if index is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS (and to docs/architecture.md)")
    return index


def _edges():
    for name, path in sorted(MODULES.items()):
        for target, line, local in _imports(name, path):
            yield name, path, target, line, local


def test_every_module_has_a_layer():
    for name in MODULES:
        layer(name)


def _lazy(name: str, target: str) -> bool:
    return any(name == a and (target == b or target.startswith(b + ".")) for a, b in LAZY)


def test_imports_only_go_down():
    upward = [f"{path.relative_to(ROOT)}:{line}: {name} (layer {layer(name)}) imports {target} (layer {layer(target)})"
              for name, path, target, line, local in _edges()
              if layer(target) > layer(name) and not (local and _lazy(name, target))]
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_no_function_local_refcomp_imports():
    local = [f"{path.relative_to(ROOT)}:{line}: {name} imports {target} inside a function"
             for name, path, target, line, is_local in _edges() if is_local and not _lazy(name, target)]
    assert not local, "function-local imports of refcomp modules:\n" + "\n".join(local)


def test_the_lazy_native_load_is_the_only_exception():
    """The one function-local import left: refcomp.backend loading refcomp.kernels on first use."""
    lazy = [(name, target) for name, _, target, _, local in _edges() if local]
    assert lazy == [("refcomp.backend", "refcomp.kernels")]


@pytest.mark.parametrize("source, bad", [
    ("from ..compress.cluster import kmeans\n", "refcomp.compress.cluster"),
    ("def f():\n    from ..nn import train\n", "refcomp.nn.train"),
])
def test_the_walk_sees_upward_and_hidden_imports(source, bad, tmp_path):
    """The checker itself: a planted upward import (top-level or inside a function) is found and flagged."""
    path = tmp_path / "planted.py"
    path.write_text(source)
    MODULES["refcomp.formats.planted"] = path
    try:
        found = list(_imports("refcomp.formats.planted", path))
    finally:
        del MODULES["refcomp.formats.planted"]
    assert [t for t, _, _ in found] == [bad]
    target, _, local = found[0]
    assert layer(target) > layer("refcomp.formats")
    assert local == ("def " in source)
