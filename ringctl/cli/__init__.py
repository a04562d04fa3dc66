"""The ``ringctl`` command: parse arguments, call the library, render, choose the exit code.

Each group of commands lives in its own module with a ``register(app)`` function; those
modules import only typer at the top so that ``ringctl --help`` stays fast (heavy modules
such as numpy, numba, cupy and ray are imported inside the commands that need them).
"""

from __future__ import annotations

import sys

import typer

from ringctl.cli import _render

app = typer.Typer(
    name="ringctl",
    help="Run persistent ring kernels as a message-passing pipeline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _register_commands() -> None:
    # Imported here, not at the top, so each module can be developed on its own.
    from ringctl.cli import topology_cmds

    topology_cmds.register(app)
    from ringctl.cli import control_cmds, smoke_cmd, up_cmd

    up_cmd.register(app)
    control_cmds.register(app)
    smoke_cmd.register(app)
    from ringctl.cli import ops_cmds

    ops_cmds.register(app)


_register_commands()


def main() -> None:
    """Console-script entry point: runs the app and maps library errors to exit codes."""
    from ringctl.exceptions import RingctlError

    try:
        app(standalone_mode=True)
    except RingctlError as exc:  # a command let one escape: still no traceback for the user
        _render.error(exc)
        sys.exit(exc.exit_code)


if __name__ == "__main__":  # pragma: no cover
    main()
