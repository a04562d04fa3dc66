"""Helpers every command module shares: load a topology file, the engine choice, output."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ringctl.cli import _render

if TYPE_CHECKING:
    from ringctl.api import TopologyFile
    from ringctl.orchestrator.plan import Plan


class EngineChoice(enum.StrEnum):
    """``--engine``: a choice, so help lists it and the shell completes it."""

    local = "local"
    ray = "ray"


def load_topology(file: Path, engine: str | None = None) -> TopologyFile:
    """The loaded file (``ringctl.load``), or every diagnostic on stderr and exit 2."""
    from ringctl.api import load
    from ringctl.exceptions import UserInputError
    from ringctl.topology import TopologyError

    try:
        return load(file, engine=None if engine is None else str(engine))
    except TopologyError as exc:  # before UserInputError, which it is a kind of
        for diagnostic in exc.diagnostics:
            typer.echo(diagnostic.format(), err=True)
        n = len(exc.diagnostics)
        _render.error(f"{file} has {n} problem{'s' if n != 1 else ''}; nothing was started")
        raise typer.Exit(2) from None
    except UserInputError as exc:
        _render.fail(exc, exit_code=2)


def load_plan(file: Path, engine: str | None = None) -> Plan:
    """The plan of a file, or every diagnostic on stderr and exit 2 (nothing started)."""
    return load_topology(file, engine).plan


def say(message: str) -> None:
    typer.echo(f"ringctl: {message}", err=True)


def usage_error(message: str, hint: str | None = None) -> Exception:
    from ringctl.exceptions import UserInputError

    return UserInputError(message, hint=hint)


def console() -> Any:
    from rich.console import Console

    # In a pipe or a CI log, wrapping columns helps nobody: print full lines.
    return Console() if sys.stdout.isatty() else Console(width=200)
