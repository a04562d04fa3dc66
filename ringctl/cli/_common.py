"""Helpers every command module shares: load a topology file, the engine choice, output,
and checks of the names and durations people type."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ringctl.cli import _render

if TYPE_CHECKING:
    from ringctl.api import TopologyFile


class EngineChoice(enum.StrEnum):
    """``--engine``: a choice, so help lists it and the shell completes it."""

    local = "local"
    ray = "ray"


#: ``--json`` of every command that prints a result.
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def complete_topology(incomplete: str) -> list[str]:
    """Shell completion: the names of the topologies in the state directory."""
    try:
        from ringctl.api import names

        return sorted(n for n in names() if n.startswith(incomplete))
    except Exception:  # completion must never print a traceback into the shell
        return []


def complete_kernel(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion: the kernel ids of the topology named before (or the only one)."""
    try:
        from ringctl.api import connect

        name = ctx.params.get("name") or None
        status = connect(name, timeout=1.0).status()
        taken = set(ctx.params.get("kernels") or ())
        ids = (str(k.get("id")) for k in status.get("kernels") or [] if isinstance(k, dict))
        return sorted(k for k in ids if k.startswith(incomplete) and k not in taken)
    except Exception:  # not running, or not answering: nothing to offer
        return []


#: ``KERNELS...`` of the commands that act on some kernels of a running topology.
KernelsArg = Annotated[
    list[str] | None,
    typer.Argument(help="Only these kernels.", show_default=False, autocompletion=complete_kernel),
]


def run(action: Any) -> Any:
    """``action()``, a ringctl error rendered as ``error:``/``hint:`` with its exit code."""
    from ringctl.exceptions import RingctlError

    try:
        return action()
    except RingctlError as exc:
        _render.fail(exc)


def load_file(file: Path, engine: str | None = None) -> TopologyFile:
    """The loaded file (``ringctl.load``), or every diagnostic on stderr and exit 2."""
    from ringctl.api import TopologyError, load
    from ringctl.exceptions import UserInputError

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


def say(message: str) -> None:
    typer.echo(f"ringctl: {message}", err=True)


def usage_error(message: str, hint: str | None = None) -> Exception:
    from ringctl.exceptions import UserInputError

    return UserInputError(message, hint=hint)


def console() -> Any:
    from rich.console import Console

    # In a pipe or a CI log, wrapping columns helps nobody: print full lines.
    return Console() if sys.stdout.isatty() else Console(width=200)


def check_name(name: str | None) -> str | None:
    """A topology NAME argument, checked with the topology-name rule (or exit 2).

    Names become file names in the state directory: ``../victim`` must never reach it.
    """
    if name is not None:
        from ringctl.api import check_name as check

        run(lambda: check(name))
    return name


def seconds(value: float | None) -> float | None:
    """A typer callback: the option's value is a finite, positive duration (or exit 2)."""
    if value is None:
        return None
    from ringctl.api import MAX_SECONDS, check_seconds
    from ringctl.exceptions import UserInputError

    try:
        return check_seconds(value, "it")
    except UserInputError:
        raise typer.BadParameter(
            f"must be a finite, positive number of seconds (at most {MAX_SECONDS:.0f}); "
            f"got {value!r}"
        ) from None


def per_second(value: float | None) -> float | None:
    """A typer callback: a rate (redraws per second) that is finite and at least 0.1."""
    import math

    if value is None:
        return None
    if not math.isfinite(value) or not 0.1 <= value <= 1000:
        raise typer.BadParameter(f"must be a number from 0.1 to 1000; got {value!r}")
    return value
