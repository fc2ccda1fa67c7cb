"""The package's layers run one way (ARCHITECTURE.md), and nothing imports in a circle.

Every ``import`` in ``src/poolwise`` — at module level, inside functions, or for type
checking only — is read with :mod:`ast` and must point to the same layer or one below.
The maths in ``families/`` imports only NumPy, SciPy and the project's base modules, and
the module-level imports (those that run when a module is imported) form no cycle.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "poolwise"
FILES = sorted(SOURCE.rglob("*.py"))

#: module prefix → layer, lowest first; the longest matching prefix decides
LAYERS = {
    "poolwise._version": 0, "poolwise.exceptions": 0, "poolwise.vocabulary": 0,
    "poolwise._random": 0, "poolwise._ops": 0, "poolwise._arviz": 0, "poolwise._threads": 0,
    "poolwise.resources": 0,
    "poolwise.families": 1, "poolwise.priors": 1, "poolwise.data": 1,
    "poolwise.inference": 2,
    "poolwise.results": 3,
    "poolwise.kinds": 4,
    "poolwise.outputs": 5,
    "poolwise.api": 6,
    "poolwise.cli": 7, "poolwise": 7,
}
LAYER_NAMES = ("base", "maths, priors and data", "inference", "results", "model kinds",
               "outputs", "api", "command line and package")
BASE = ("poolwise._ops", "poolwise.exceptions", "poolwise._version")
#: what the maths of families/ may import besides the standard library
FAMILY_IMPORTS = ("numpy", "scipy")


def _module_name(path: Path) -> str:
    """``src/poolwise/kinds/conjugate.py`` → ``poolwise.kinds.conjugate``."""
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path) for path in FILES}


def _layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, whether it runs when the module is imported) for every import."""
    tree = ast.parse(path.read_text())
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" \
        else _module_name(path)
    top_level = {id(node) for node in tree.body}
    checking = {id(inner) for node in tree.body if isinstance(node, ast.If)
                and "TYPE_CHECKING" in ast.unparse(node.test) for inner in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([node.module] if node.module else []))
            # "from poolwise import _arviz" imports the module poolwise._arviz; "from
            # poolwise.results.fit import Fit" imports poolwise.results.fit
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                     for alias in node.names]
        else:
            continue
        eager = id(node) in top_level and id(node) not in checking
        found += [(name, eager) for name in names]
    return found




@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SOURCE)))
def test_imports_point_down(path):
    module = _module_name(path)
    mine = _layer(module)
    for name, _ in _imports(path):
        if not name.startswith("poolwise") or name not in MODULES:
            continue
        assert _layer(name) <= mine, (
            f"{module} ({LAYER_NAMES[mine]}) imports {name} "
            f"({LAYER_NAMES[_layer(name)]}), a layer above it")


@pytest.mark.parametrize("path", sorted((SOURCE / "families").glob("*.py")),
                         ids=lambda p: p.name)
def test_families_import_only_numpy_scipy_and_the_base(path):
    for name, _ in _imports(path):
        if name.startswith("poolwise"):
            assert name.startswith(BASE) or name.startswith("poolwise.families"), name
        else:
            top = name.split(".")[0]
            assert top in FAMILY_IMPORTS or top in sys.stdlib_module_names, name


def test_no_import_circles():
    graph = {_module_name(path): {name for name, eager in _imports(path)
                                  if eager and name in MODULES and name != _module_name(path)}
             for path in FILES}
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for child in graph.get(module, ()):
            if state.get(child) == 1:
                cycle = [*path[path.index(child):], child]
                raise AssertionError(f"import circle: {' → '.join(cycle)}")
            if child not in state:
                visit(child, [*path, child])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
