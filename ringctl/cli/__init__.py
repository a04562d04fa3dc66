"""The ``ringctl`` command: parse arguments, call the library, render, choose the exit code.

Each group of commands lives in its own module with a ``register(app)`` function. The
root group loads a module only when one of its commands runs (or shows its own help):
``ringctl --help`` lists the commands from the table below without importing any of
them, and ``ringctl ps`` never imports the topology layer. Inside the modules, heavy
libraries (numpy, numba, cupy, ray) are imported by the commands that use them.
``benchmarks/startup_bench.py`` measures the start-up against ``import typer, rich``.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from ringctl.cli import _render
from ringctl.cli._params import plain_params

__all__ = ["COMMANDS", "app", "main"]

#: Every command: the module of ``ringctl.cli`` that registers it, and the one-line summary
#: ``--help`` lists (a test checks it is the first line of the command's own help).
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("init_cmd", "Write a starter project: a topology, its kernels and their tests."),
    "validate": (
        "topology_cmds",
        "Check topology files: schema and graph (no kernel runs). Exit 2 if any has an error.",
    ),
    "graph": (
        "topology_cmds",
        "Show kernels, queues (capacity, policy) and launch order as a tree, Mermaid or DOT.",
    ),
    "schema": (
        "topology_cmds",
        "Print the JSON Schema of topology files (for editors; see docs/topology.md).",
    ),
    "up": ("up_cmd", "Launch a topology in two phases, in dependency order, and run it."),
    "ps": (
        "control_cmds",
        "List running topologies, or one topology's kernels (status word, metrics) and queues.",
    ),
    "top": (
        "control_cmds",
        "The live dashboard of a running topology (q or Ctrl-C detaches; it keeps running).",
    ),
    "pause": (
        "control_cmds",
        "Deactivate all kernels (or the ones named); messages keep queueing.",
    ),
    "resume": (
        "control_cmds",
        "Reactivate paused kernels; what queued meanwhile is processed in order.",
    ),
    "down": (
        "control_cmds",
        "Drain and terminate: sources first, then the rest in reverse launch order.",
    ),
    "logs": (
        "ops_cmds",
        "What the kernels printed, logged and raised, each line tagged with time and kernel.",
    ),
    "tap": ("ops_cmds", "Sample the messages leaving a kernel's port, as they go by."),
    "restart": (
        "ops_cmds",
        "Stop and relaunch kernels; each keeps its inbox and ctx.state (counts as a restart).",
    ),
    "scale": ("ops_cmds", "Change how many replicas of a running kernel share its inbox."),
    "apply": (
        "apply_cmd",
        "Change a running topology into what its edited file says, without stopping the rest.",
    ),
    "diff": (
        "apply_cmd",
        "What apply would change in a running topology, one line per change (exit 1 if any).",
    ),
    "smoke": (
        "smoke_cmd",
        "Run each topology until it completes (or for smoke.duration) and check smoke.expect.",
    ),
    "version": ("init_cmd", "Print ringctl's version (also `ringctl --version` and `-V`)."),
}


_CONTEXT = {"help_option_names": ["-h", "--help"]}


class RingctlCommand(TyperCommand):
    """A typer command whose ``--help`` is drawn by ``ringctl.cli._help``."""

    def get_params(self, ctx: Any) -> list[Any]:
        return plain_params(super().get_params(ctx))

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from ringctl.cli._help import render_command_help

        render_command_help(self, ctx)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        from ringctl.cli._help import usage_pieces

        return usage_pieces(self, ctx)


class LazyGroup(TyperGroup):
    """The root group: commands come from ``COMMANDS``, imported on first use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: dict[str, dict[str, Any]] = {}  # module name -> its commands

    def get_params(self, ctx: Any) -> list[Any]:
        return plain_params(super().get_params(ctx))

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = f"ringctl.cli.{entry[0]}"
        if module not in self._loaded:
            self._loaded[module] = _load_module_commands(module)
        return self._loaded[module].get(cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except Exception as exc:  # typer's UsageError, whose module is private
            # typer suggests from the commands it holds; these are loaded on first use.
            message = getattr(exc, "message", None)
            if args and isinstance(message, str) and message.startswith("No such command"):
                import difflib

                matches = difflib.get_close_matches(args[0], list(COMMANDS))
                if matches and "Did you mean" not in message:
                    guesses = ", ".join(repr(m) for m in matches)
                    setattr(exc, "message", f"{message.rstrip('.')}. Did you mean {guesses}?")  # noqa: B010
            raise

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from ringctl.cli._help import render_group_help

        render_group_help(self, ctx, [(name, summary) for name, (_, summary) in COMMANDS.items()])


def _load_module_commands(module_name: str) -> dict[str, Any]:
    """Import a command module and build its click commands, as typer would have."""
    import importlib

    module = importlib.import_module(module_name)
    sub = typer.Typer(
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings=_CONTEXT,
    )
    module.register(sub)
    for info in sub.registered_commands:
        if info.cls in (None, TyperCommand):  # a module's own class is kept
            info.cls = RingctlCommand
        info.context_settings = {**_CONTEXT, **(info.context_settings or {})}
    return dict(typer.main.get_group(sub).commands)


def _print_version(value: bool) -> None:
    if value:
        from ringctl._version import __version__

        typer.echo(f"ringctl {__version__}")
        raise typer.Exit(0)


app = typer.Typer(
    name="ringctl",
    cls=LazyGroup,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings=_CONTEXT,
)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            help="Print the version and exit.",
            is_eager=True,
            callback=_print_version,
        ),
    ] = False,
) -> None:
    """Run persistent ring kernels as a message-passing pipeline.

    Start with `ringctl init DIR` to write a topology and kernels of your own, or
    `ringctl up FILE` to run one. `ringctl COMMAND -h` explains each command.
    """


def main() -> None:
    """Console-script entry point: runs the app and maps library errors to exit codes."""
    from ringctl.exceptions import RingctlError

    try:
        app(prog_name="ringctl")
    except RingctlError as exc:  # a command let one escape: still no traceback for the user
        _render.error(exc)
        sys.exit(exc.exit_code)
    except OSError as exc:
        if exc.errno not in _FULL:
            raise
        # Where the output goes is full (a redirect to a full disk, /dev/full): what was
        # printed is incomplete, so the command failed, and says so in one line.
        _silence_stdout()
        _render.error(
            f"cannot write the output: {exc.strerror or exc}",
            "free some space where stdout goes (or write elsewhere), then run it again",
        )
        sys.exit(1)


_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the exit's own flush of what is left fails no more."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return


if __name__ == "__main__":  # pragma: no cover
    main()
