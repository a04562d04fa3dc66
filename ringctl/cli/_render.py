"""Small rendering helpers shared by every command module (errors, JSON output)."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer


def error(exc: BaseException) -> None:
    """Print a library error as ``error: message`` plus a ``hint:`` line, on stderr."""
    message = getattr(exc, "message", None) or str(exc)
    hint = getattr(exc, "hint", None)
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    if hint:
        typer.echo(f"hint: {hint}", err=True)


def fail(exc: BaseException, exit_code: int | None = None) -> NoReturn:
    """Render ``exc`` and exit with its exit code (or the one given)."""
    error(exc)
    code = exit_code if exit_code is not None else int(getattr(exc, "exit_code", 1))
    raise typer.Exit(code)


def print_json(document: Any) -> None:
    """One JSON document on stdout, as ``--json`` promises."""
    sys.stdout.write(json.dumps(document, indent=2, default=str))
    sys.stdout.write("\n")
