"""Rendering shared by every command module: errors and warnings on stderr, JSON output.

Every ``error:`` / ``warning:`` line goes through one stderr console, so they all honour
``NO_COLOR`` (and ``FORCE_COLOR``) the way rich does, and never colour a pipe or a file.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any, NoReturn

import typer

__all__ = ["error", "fail", "print_json", "rich_table", "stderr", "table", "warning"]


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


def table(
    console: Any,
    header: tuple[str, ...],
    rows: Sequence[tuple[str, ...]],
    *,
    right: tuple[str, ...] = (),
    title: str | None = None,
) -> None:
    """Columns two spaces apart, the header bold, the columns in ``right`` right-aligned.

    Cells are text, never markup, shown one-line (control characters escaped). Laid out
    here rather than by rich's ``Table``, which takes milliseconds a row: ``ps`` of a
    topology of thousands of kernels prints at once.
    """
    from rich.cells import cell_len
    from rich.text import Text

    from ringctl._printable import printable

    shown = [tuple(printable(cell) for cell in row) for row in rows]
    widths = [
        max([cell_len(col)] + [cell_len(row[i]) for row in shown]) for i, col in enumerate(header)
    ]
    flush = [col in right for col in header]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            " " * (w - cell_len(c)) + c if r else c + " " * (w - cell_len(c))
            for c, w, r in zip(cells, widths, flush, strict=True)
        ).rstrip()

    if title is not None:
        console.print(Text(title, style="italic"), no_wrap=True, crop=True)
    console.print(Text(line(header), style="bold"), no_wrap=True, crop=True)
    if shown:
        console.out("\n".join(line(row) for row in shown), highlight=False)


def rich_table(
    header: tuple[str, ...],
    rows: Iterable[tuple[str, ...]],
    *,
    right: tuple[str, ...] = (),
    title: str | None = None,
) -> Any:
    """rich's ``Table`` without borders, for a few rows: cells are markup."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, title=title, title_justify="left")
    for col in header:
        table.add_column(col, justify="right" if col in right else "left")
    for row in rows:
        table.add_row(*row)
    return table
