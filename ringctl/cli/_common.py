"""Helpers every command module shares: load a plan, pick a runtime, print plainly."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from ringctl.engines.contract import Engine
    from ringctl.orchestrator.plan import Plan


def load_plan(file: Path, engine: str | None = None) -> Plan:
    """The plan of a file, or every diagnostic on stderr and exit 2 (nothing started)."""
    if engine is not None and engine not in ("local", "ray"):
        from ringctl.cli import _render

        _render.fail(usage_error(f"unknown engine {engine!r}", "--engine is local or ray"))
    from ringctl.orchestrator.loading import plan_from_file
    from ringctl.topology import TopologyError

    try:
        return plan_from_file(file, engine=engine)
    except TopologyError as exc:
        for diagnostic in exc.diagnostics:
            typer.echo(diagnostic.format(), err=True)
        n = len(exc.diagnostics)
        typer.secho(
            f"error: {file} has {n} problem{'s' if n != 1 else ''}; nothing was started",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(2) from None


def say(message: str) -> None:
    typer.echo(f"ringctl: {message}", err=True)


def usage_error(message: str, hint: str | None = None) -> Exception:
    from ringctl.exceptions import UserInputError

    return UserInputError(message, hint=hint)


def make_runtime(plan: Plan, address: str | None) -> Engine:
    from ringctl.engines.contract import make_engine

    return make_engine(plan.engine, address=address)


def console() -> Any:
    from rich.console import Console

    # In a pipe or a CI log, wrapping columns helps nobody: print full lines.
    return Console() if sys.stdout.isatty() else Console(width=200)
