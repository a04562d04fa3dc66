"""``ringctl init DIR``: write a starter topology, its kernels and their tests; ``version``."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from ringctl.cli import _render


class Template(enum.StrEnum):
    pipeline = "pipeline"
    gpu = "gpu"


def init(
    folder: Annotated[
        Path, typer.Argument(help="Where to write the project (created if missing).")
    ],
    template: Annotated[
        Template,
        typer.Option(
            "--template",
            "-t",
            help="pipeline: source, transform, sink in plain Python; "
            "gpu: array batches on a GPU when there is one.",
        ),
    ] = Template.pipeline,
    name: Annotated[
        str | None,
        typer.Option(help="Topology name (default: the folder's name, made valid)."),
    ] = None,
) -> None:
    """Write a starter project: a topology, its kernels and their tests.

    Writes NAME.yaml (commented), NAME_kernels.py and test_NAME_kernels.py into FOLDER,
    and a pytest.ini (async tests need no marker) with its conftest.py unless FOLDER has
    pytest settings of its own; `ringctl smoke FOLDER/*.yaml` and `pytest FOLDER` pass
    straight away. Never overwrites a file: exit 2 if one exists.
    """
    from ringctl.api import shell_arg, write_project
    from ringctl.exceptions import UserInputError

    try:
        project = write_project(folder, template=template.value, name=name)
    except UserInputError as exc:
        _render.fail(exc)
    typer.echo(f"wrote {', '.join(str(p) for p in project.files)}")
    topology, where = shell_arg(project.topology), shell_arg(project.folder)
    steps = [
        (f"ringctl validate --import {topology}", "check it; nothing runs"),
        (f"ringctl up {topology}", "run it, with the live dashboard"),
        (f"pytest {where}", "its tests: each kernel, then the whole file"),
    ]
    width = max(len(command) for command, _ in steps)
    typer.echo("next:")
    for command, what in steps:
        typer.echo(f"  {command:<{width}}   # {what}")


def version() -> None:
    """Print ringctl's version (also `ringctl --version` and `-V`)."""
    from ringctl._version import __version__

    typer.echo(f"ringctl {__version__}")


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(version)
