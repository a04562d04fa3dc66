"""``ringctl smoke FILE...``: CI smoke runs of checked-in topologies."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ringctl.cli import _render
from ringctl.cli._common import EngineChoice, usage_error


def smoke(
    files: Annotated[list[Path], typer.Argument(help="Topology files.", show_default=False)],
    junit: Annotated[
        Path | None, typer.Option(help="Write a JUnit XML report here (for CI to display).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Results as one JSON document.")] = False,
    engine: Annotated[
        EngineChoice | None, typer.Option(help="Overrides the files' engine.")
    ] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address.")] = None,
) -> None:
    """Run each topology until it completes (or for smoke.duration) and check smoke.expect.

    Exit 1 if any expectation fails, a run exceeds smoke.timeout or the --junit report
    cannot be written; 2 if a file is invalid or --junit cannot be a file.
    """
    from ringctl.api import SmokeResult, capture, junit_xml
    from ringctl.cli._common import load_file

    # Every file valid, and the report's place usable, before anything runs.
    topologies = [load_file(f, engine) for f in files]
    if junit is not None:
        _prepare_report(junit)
    results: list[SmokeResult] = []
    # What kernels print is shown with its control characters escaped, on stderr under
    # --json: stdout holds the one JSON document.
    echo = sys.stderr if as_json else sys.stdout
    with contextlib.redirect_stdout(echo), capture(lambda record: None, echo=echo):
        for topology in topologies:
            if not as_json:
                typer.echo(f"smoke: {topology.name} ({_short(topology.file or '')}) ...", err=True)
            results.append(topology.smoke(address=address))
    written = junit is None or _write_report(junit, junit_xml(results))
    if as_json:
        _render.print_json({"ok": all(r.ok for r in results),
                            "results": [r.as_dict() for r in results]})  # fmt: skip
    else:
        _print_table(results)
    if not written:  # CI would read no report, or half of one, as if nothing had run
        raise typer.Exit(1)
    raise typer.Exit(0 if all(r.ok for r in results) else 1)


def _prepare_report(path: Path) -> None:
    """Create the report's folder; exit 2 if the report cannot go there at all."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problem: str | None = f"cannot create its folder {path.parent}: {exc.strerror or exc}"
    else:
        problem = "it is a folder" if path.is_dir() else None
        if problem is None and not os.access(path if path.exists() else path.parent, os.W_OK):
            problem = "permission denied"
    if problem is not None:
        _render.fail(
            usage_error(f"--junit {path}: {problem}", "give --junit a file path you can write"),
            2,
        )


def _write_report(path: Path, xml: str) -> bool:
    """Write the JUnit report; on failure (a full disk) say so in one line: False."""
    try:
        path.write_text(xml, encoding="utf-8")
    except OSError as exc:
        _render.error(
            f"cannot write the JUnit report {path}: {exc.strerror or exc}",
            "free some space there (or give --junit another path) and run smoke again",
        )
        return False
    return True


def _print_table(results: list[Any]) -> None:
    from rich.markup import escape

    from ringctl._printable import printable
    from ringctl.cli._common import console as make_console

    rows = [
        (
            "[green]PASS[/]" if r.ok else "[red]FAIL[/]",
            escape(printable(r.name)),
            f"{r.seconds:.2f}",
            escape(printable(r.outcome)),
            f"{sum(1 for c in r.checks if c.ok)}/{len(r.checks)}",
            escape(printable(_short(r.file))),
        )
        for r in results
    ]
    console = make_console()
    cols = ("RESULT", "TOPOLOGY", "SECONDS", "OUTCOME", "CHECKS", "FILE")
    console.print(_render.rich_table(cols, rows))
    for r in results:
        for failure in r.failures:
            console.print(f"[red]{escape(printable(f'{r.name}: {failure}'))}[/]")


def _short(file: str) -> str:
    """A file under the current folder as a relative path; anything else as it is."""
    relative = os.path.relpath(file) if os.path.isabs(file) else file
    return file if relative.startswith("..") else relative


def register(app: typer.Typer) -> None:
    app.command()(smoke)
