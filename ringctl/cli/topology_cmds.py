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

__all__ = ["register"]


class GraphFormat(enum.StrEnum):
    tree = "tree"
    mermaid = "mermaid"
    dot = "dot"


def _print_diagnostics(diagnostics: tuple[Diagnostic, ...] | list[Diagnostic]) -> None:
    for diagnostic in diagnostics:
        typer.echo(diagnostic.format(), err=True)


def validate(
    files: Annotated[
        list[Path], typer.Argument(help="Topology files to check.", show_default=False)
    ],
    import_entries: Annotated[
        bool,
        typer.Option(
            "--import",
            help="Also import every kernel entry and check its params and ports.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check topology files: schema and graph (no kernel runs). Exit 2 if any has an error.

    Without --import, each entry's top-level package is looked up but not imported, so
    a missing package is still reported; --import also imports the kernel modules.
    """
    import contextlib
    import sys

    from ringctl.topology import TopologyError, load_topology, resolve_entries
    from ringctl.topology.importer import find_entries

    if import_entries:
        # Validation leaves nothing behind: no __pycache__ next to the kernels it imports.
        sys.dont_write_bytecode = True
    reports: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    failed = False
    for file in files:
        report: dict[str, Any] = {"file": str(file), "ok": False, "error_count": 0}
        try:
            topology = load_topology(file)
            if import_entries:
                # A kernel module that prints at import must not corrupt --json output.
                with contextlib.redirect_stdout(sys.stderr):
                    resolve_entries(topology)
            else:
                find_entries(topology)
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
                name=topology.name,
                kernels=len(topology.kernels),
                queues=len(topology.queues),
                engine=topology.engine,
            )
            if not as_json:
                imported = ", entries imported" if import_entries else ""
                typer.echo(
                    f"{file}: ok ({topology.name}: {len(topology.kernels)} kernels, "
                    f"{len(topology.queues)} queues, engine {topology.engine}{imported})"
                )
        reports.append(report)
    if as_json:
        # Each error once, in the flat list (each names its file); files say how many.
        _render.print_json({"ok": not failed, "files": reports, "errors": errors})
    if failed:
        raise typer.Exit(2)


def graph(
    file: Annotated[Path, typer.Argument(help="The topology file.", show_default=False)],
    fmt: Annotated[
        GraphFormat,
        typer.Option("--format", "-f", help="tree (terminal), mermaid (Markdown) or dot."),
    ] = GraphFormat.tree,
) -> None:
    """Show kernels, queues (capacity, policy) and launch order as a tree, Mermaid or DOT."""
    from ringctl.topology import TopologyError, load_topology
    from ringctl.topology.views import render

    try:
        topology = load_topology(file)
    except TopologyError as exc:
        _print_diagnostics(exc.diagnostics)
        raise typer.Exit(2) from None
    typer.echo(render(topology, fmt.value), nl=False)


def schema() -> None:
    """Print the JSON Schema of topology files (for editors; see docs/topology.md)."""
    from ringctl.topology import topology_json_schema

    _render.print_json(topology_json_schema())


def register(app: typer.Typer) -> None:
    """Add ``validate``, ``graph`` and ``schema`` to the ``ringctl`` app."""
    app.command("validate")(validate)
    app.command("graph")(graph)
    app.command("schema")(schema)
