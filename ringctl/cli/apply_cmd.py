"""``apply`` and ``diff``: change a running topology from its edited file.

Both send the file's path to the topology's supervisor, which reads it, compares it with
what runs and answers with the plan, one line per change (``terraform plan``'s marks:
``+`` added, ``-`` removed, ``~`` changed in place, ``-/+`` restarted). ``diff`` and
``apply --dry-run`` exit 0 when nothing would change and 1 otherwise; ``apply`` exits 0
once the changes are made, 1 if it failed (rolled back, or the message says what state
it left), 2 for a bad file or a change that cannot be made live, 3 if nothing runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ringctl.cli import _render
from ringctl.cli._common import JsonOpt, run

_File = Annotated[
    Path, typer.Argument(help="The edited topology file.", show_default=False, dir_okay=False)
]


def _print_plan(result: dict[str, Any], title: str) -> None:
    changes = result.get("changes") or []
    for change in changes:
        typer.echo(str(change.get("line")))
    n = len(changes)
    typer.echo(f"{title}: {n} change{'s' if n != 1 else ''}" if n else f"{title}: no changes")


def apply(
    file: _File,
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="The running topology (default: the file's name)."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Only print what would change (exit 1 if anything)."),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            help="Seconds a restarted kernel gets to stop, and a removed one to drain, "
            "before a force stop.",
            min=0,
        ),
    ] = 10.0,
    as_json: JsonOpt = False,
) -> None:
    """Change a running topology into what its edited file says, without stopping the rest.

    Params or entry changed: the kernel restarts with the new ones (ctx.state kept
    unless it has keep_state: false). Replicas: scaled. Restart policy: applied. Queues
    added, moved or retuned: rewired live, no message lost or sent twice. Kernels added:
    launched and wired, then activated. Kernels removed: drained, then terminated. What
    cannot change live (the engine, a backend, a persistent kernel's rings or record
    types) is refused before anything changes.
    """
    from ringctl import api

    result = run(lambda: api.apply(file, name=name, dry_run=dry_run, timeout=timeout))
    if as_json:
        _render.print_json(result)
    elif dry_run:
        _print_plan(result, f"dry run, nothing changed ({file})")
    else:
        _print_plan(result, f"applied {file}")
        for kernel, n in (result.get("left") or {}).items():
            _render.warning(f"{kernel} was removed with {n} messages unprocessed (counted as left)")
    if dry_run and result.get("changed"):
        raise typer.Exit(1)


def diff(
    name: Annotated[str, typer.Argument(help="The running topology.", show_default=False)],
    file: _File,
    as_json: JsonOpt = False,
) -> None:
    """What apply would change in a running topology, one line per change (exit 1 if any)."""
    from ringctl import api

    result = run(lambda: api.diff(name, file))
    if as_json:
        _render.print_json(result)
    else:
        _print_plan(result, f"{name} vs {file}")
    if result.get("changed"):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(apply)
    app.command()(diff)
