"""Rendering shared by every command module: errors and warnings on stderr, JSON output.

Every ``error:`` / ``warning:`` line goes through one stderr console, so they all honour
``NO_COLOR`` (and ``FORCE_COLOR``) the way rich does, and never colour a pipe or a file.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from typing import Any, NoReturn

import typer

__all__ = ["error", "fail", "print_json", "stderr", "warning"]


@cache
def stderr() -> Any:
    """The one console for messages on stderr (created on first use: rich is not free)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def _line(label: str, style: str, message: str) -> None:
    from rich.text import Text

    from ringctl._printable import printable

    # Text, not markup: a message may hold brackets. Only the label is styled. A message
    # may quote a kernel's error or a file: its control characters are shown escaped.
    stderr().print(Text.assemble((f"{label}:", style), f" {printable(message, lines=True)}"))


def error(exc: BaseException | str, hint: str | None = None) -> None:
    """Print ``error: message`` plus a ``hint:`` line, on stderr."""
    if isinstance(exc, str):
        message = exc
    else:
        message = getattr(exc, "message", None) or str(exc)
        hint = hint or getattr(exc, "hint", None)
    _line("error", "bold red", message)
    if hint:
        _line("hint", "dim", hint)


def warning(message: str) -> None:
    """Print ``warning: message`` on stderr."""
    _line("warning", "bold yellow", message)


def fail(exc: BaseException, exit_code: int | None = None) -> NoReturn:
    """Render ``exc`` and exit with its exit code (or the one given)."""
    error(exc)
    code = exit_code if exit_code is not None else int(getattr(exc, "exit_code", 1))
    raise typer.Exit(code)


def print_json(document: Any) -> None:
    """One JSON document on stdout, as ``--json`` promises."""
    sys.stdout.write(json.dumps(document, indent=2, default=str))
    sys.stdout.write("\n")
