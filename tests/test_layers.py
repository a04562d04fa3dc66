"""The package's layers, read from the source: no import circles, no import that runs back
up a layer.

Every ``import`` in ``ringctl/`` counts, the ones inside functions and under
``TYPE_CHECKING`` too: a circle that only the type checker walks is still a circle for a
reader, and a lazy import that reaches up a layer is still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ringctl"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {
    _module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts
}


def _imports(module: str) -> Iterator[str]:
    """The ringctl modules ``module`` imports (``from pkg import name`` counts as
    ``pkg.name`` where that is a module, else as ``pkg``)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                     for alias in node.names]  # fmt: skip
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name.startswith("ringctl") and name != module:
                yield name


GRAPH = {module: set(_imports(module)) for module in MODULES}


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return found


def _reaching(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{m} -> {t}"
        for m, targets in GRAPH.items()
        if m == layer or m.startswith(layer + ".")
        for t in targets
        if t == "ringctl" or any(t == f or t.startswith(f + ".") for f in forbidden)
    )


def test_the_module_graph_is_read() -> None:
    assert "ringctl.engine.contract" in GRAPH["ringctl.engine.local.engine"]
    assert "ringctl.topology.schema" in GRAPH["ringctl.topology.importer"]


def test_there_are_no_import_circles() -> None:
    assert _cycles() == []


ABOVE_ENGINE = ("ringctl.orchestrator", "ringctl.control", "ringctl.cli", "ringctl.dashboard",
                "ringctl.api", "ringctl.topology")  # fmt: skip


def test_the_topology_layer_imports_no_engine_and_nothing_above_it() -> None:
    assert _reaching("ringctl.topology", ("ringctl.engine", *ABOVE_ENGINE[:-1])) == []


def test_the_engines_import_nothing_above_them() -> None:
    assert _reaching("ringctl.engine", ABOVE_ENGINE) == []


#: What the command line may import of the library: the door, the errors, the
#: dashboard's renderers and the text escaper.
CLI_DOORS = ("ringctl.api", "ringctl.exceptions", "ringctl.dashboard", "ringctl._printable",
             "ringctl._version", "ringctl.cli")  # fmt: skip


def test_the_cli_reaches_the_library_only_through_its_door() -> None:
    through_side_doors = sorted(
        f"{m} -> {t}"
        for m, targets in GRAPH.items()
        if m.startswith("ringctl.cli")
        for t in targets
        if not any(t == d or t.startswith(d + ".") for d in CLI_DOORS)
    )
    assert through_side_doors == []
