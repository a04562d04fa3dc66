"""``ringctl validate``, ``graph`` and ``schema``: the commands that need no kernel running.

Only typer is imported at the top: these commands run in editors' save hooks and in CI
on every push, so ``ringctl validate`` must start fast and must never pull in numpy,
numba, cupy or ray (``benchmarks/validate_bench.py`` measures it). The topology layer,
pydantic and PyYAML are imported inside the commands.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ringctl.cli import _render

if TYPE_CHECKING:
    from ringctl.topology import Diagnostic
    from ringctl.topology.loader import Loaded
    from ringctl.topology.quick import Summary

__all__ = ["register"]


class GraphFormat(enum.StrEnum):
    tree = "tree"
    mermaid = "mermaid"
    dot = "dot"


def _print_diagnostics(diagnostics: tuple[Diagnostic, ...] | list[Diagnostic]) -> None:
    from ringctl._printable import printable  # only when there is something to say

    for diagnostic in diagnostics:
        typer.echo(printable(diagnostic.format(), lines=True), err=True)


def validate(
    files: Annotated[
        list[Path], typer.Argument(help="Topology files to check.", show_default=False)
    ],
    import_entries: Annotated[
        bool,
        typer.Option(
            "--import",
            help="Also import every kernel entry, check its params and ports, and compile "
            "persistent kernels' handlers.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check topology files: schema and graph (no kernel runs). Exit 2 if any has an error.

    Without --import, each entry's top-level package is looked up but not imported, so
    a missing package is still reported; --import also imports the kernel modules.
    The first run after an install or upgrade compiles the schema into the cache; later
    runs start from it.
    """
    import sys

    from ringctl.topology import TopologyError, compiled
    from ringctl.topology.loader import load_yaml
    from ringctl.topology.quick import quick_validate

    if import_entries:
        # Validation leaves nothing behind: no __pycache__ next to the kernels it imports.
        sys.dont_write_bytecode = True
    reports: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    failed = False
    took_models = False
    for file in files:
        report: dict[str, Any] = {"file": str(file), "ok": False, "error_count": 0}
        # A file with nothing to report is proven so without pydantic (quick.py); the
        # models word every problem, and --import needs them for params anyway.
        loaded = load_yaml(file)
        summary = None if import_entries else quick_validate(loaded, file)
        if summary is None:
            took_models = True
        try:
            if summary is None:
                summary = _validate_fully(loaded, file, import_entries)
        except TopologyError as exc:
            failed = True
            report["error_count"] = len(exc.diagnostics)
            errors.extend(d.as_dict() for d in exc.diagnostics)
            if not as_json:
                _print_diagnostics(exc.diagnostics)
                count = len(exc.diagnostics)
                typer.echo(f"{file}: {count} error{'s' if count != 1 else ''}", err=True)
        else:
            report.update(
                ok=True,
                name=summary.name,
                kernels=summary.kernels,
                queues=summary.queues,
                engine=summary.engine,
            )
            if not as_json:
                imported = ", entries imported" if import_entries else ""
                kernels = _count(summary.kernels, "kernel")
                queues = _count(summary.queues, "queue")
                typer.echo(
                    f"{file}: ok ({summary.name}: {kernels}, {queues}, "
                    f"engine {summary.engine}{imported})"
                )
        reports.append(report)
    if took_models and compiled.load_validator() is None:
        # The models are built now: the next run starts from the cache (missing, or
        # damaged, it is written anew).
        compiled.store()
    if as_json:
        # Each error once, in the flat list (each names its file); files say how many.
        _render.print_json({"ok": not failed, "files": reports, "errors": errors})
    if failed:
        raise typer.Exit(2)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _validate_fully(loaded: Loaded, file: Path, import_entries: bool) -> Summary:
    """Validate with the models; raises ``TopologyError`` with every problem."""
    import contextlib
    import sys

    from ringctl.topology import resolve_entries
    from ringctl.topology.compiled import adopt_core
    from ringctl.topology.importer import find_entries
    from ringctl.topology.quick import Summary
    from ringctl.topology.validate import check_loaded

    adopt_core()  # pydantic is imported now; the fast path may have loaded its core alone

    topology = check_loaded(loaded, file)
    if import_entries:
        # A kernel module that prints at import must not corrupt --json output.
        with contextlib.redirect_stdout(sys.stderr):
            from ringctl.engine.local.persistent.diagnose import check_compiles

            resolve_entries(topology, compile_handlers=check_compiles)
    else:
        find_entries(topology)
    return Summary(topology.name, len(topology.kernels), len(topology.queues), topology.engine)


def graph(
    file: Annotated[Path, typer.Argument(help="The topology file.", show_default=False)],
    fmt: Annotated[
        GraphFormat,
        typer.Option("--format", "-f", help="tree (terminal), mermaid (Markdown) or dot."),
    ] = GraphFormat.tree,
) -> None:
    """Show kernels, queues (capacity, policy) and launch order as a tree, Mermaid or DOT."""
    from ringctl._printable import printable
    from ringctl.topology import TopologyError, load_topology
    from ringctl.topology.views import render

    try:
        topology = load_topology(file)
    except TopologyError as exc:
        _print_diagnostics(exc.diagnostics)
        raise typer.Exit(2) from None
    typer.echo(printable(render(topology, fmt.value), lines=True), nl=False)


def schema() -> None:
    """Print the JSON Schema of topology files (for editors; see docs/topology.md)."""
    from ringctl.topology import topology_json_schema

    _render.print_json(topology_json_schema())


def register(app: typer.Typer) -> None:
    """Add ``validate``, ``graph`` and ``schema`` to the ``ringctl`` app."""
    app.command("validate")(validate)
    app.command("graph")(graph)
    app.command("schema")(schema)
