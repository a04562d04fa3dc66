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
    from collections.abc import Sequence

    from ringctl.api import Diagnostic

__all__ = ["register"]


class GraphFormat(enum.StrEnum):
    tree = "tree"
    mermaid = "mermaid"
    dot = "dot"


def _print_diagnostics(diagnostics: Sequence[Diagnostic]) -> None:
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
    import contextlib
    import dataclasses
    import sys

    from ringctl.api import check

    if import_entries:
        # Validation leaves nothing behind: no __pycache__ next to the kernels it imports.
        sys.dont_write_bytecode = True
    reports: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for file in files:
        report: dict[str, Any] = {"file": str(file), "ok": False, "error_count": 0}
        # A kernel module that prints at import must not corrupt --json output.
        with contextlib.redirect_stdout(sys.stderr):
            found = check(file, import_entries=import_entries)
        summary = found.summary
        if summary is None:
            report["error_count"] = len(found)
            errors.extend(d.as_dict() for d in found)
            if not as_json:
                _print_diagnostics(found)
                typer.echo(f"{file}: {len(found)} error{'s' if len(found) != 1 else ''}", err=True)
        else:
            report.update(ok=True, **dataclasses.asdict(summary))  # name, kernels, queues, engine
            if not as_json:
                imported = ", entries imported" if import_entries else ""
                kernels = _count(summary.kernels, "kernel")
                queues = _count(summary.queues, "queue")
                typer.echo(
                    f"{file}: ok ({summary.name}: {kernels}, {queues}, "
                    f"engine {summary.engine}{imported})"
                )
        reports.append(report)
    failed = any(not r["ok"] for r in reports)
    if as_json:
        # Each error once, in the flat list (each names its file); files say how many.
        _render.print_json({"ok": not failed, "files": reports, "errors": errors})
    if failed:
        raise typer.Exit(2)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def graph(
    file: Annotated[Path, typer.Argument(help="The topology file.", show_default=False)],
    fmt: Annotated[
        GraphFormat,
        typer.Option("--format", "-f", help="tree (terminal), mermaid (Markdown) or dot."),
    ] = GraphFormat.tree,
) -> None:
    """Show kernels, queues (capacity, policy) and launch order as a tree, Mermaid or DOT."""
    from ringctl._printable import printable
    from ringctl.api import TopologyError, graph_text

    try:
        text = graph_text(file, fmt.value)
    except TopologyError as exc:
        _print_diagnostics(exc.diagnostics)
        raise typer.Exit(2) from None
    typer.echo(printable(text, lines=True), nl=False)


def schema() -> None:
    """Print the JSON Schema of topology files (for editors; see docs/topology.md)."""
    from ringctl.api import topology_schema

    _render.print_json(topology_schema())


def register(app: typer.Typer) -> None:
    """Add ``validate``, ``graph`` and ``schema`` to the ``ringctl`` app."""
    app.command("validate")(validate)
    app.command("graph")(graph)
    app.command("schema")(schema)
