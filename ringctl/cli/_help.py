"""``--help`` pages drawn with a few rich renderables, from the click objects typer builds.

Why not typer's own help formatter: it imports rich's Markdown, Syntax and Traceback
machinery on every ``--help`` (about as long as the rest of the start-up together), it
reads help strings as rich markup (``ringctl[metrics]`` lost its ``[metrics]``), and it
labels flags ``<bool>``. Here help strings are plain text, flags show no type, an option
that takes a value shows its metavar or choices, and defaults are shown where they help.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["metavar", "render_command_help", "render_group_help", "usage_pieces"]


def _console() -> Any:
    from rich.console import Console

    # NO_COLOR is honoured by rich itself; a pipe gets plain text at a readable width.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 100)


def metavar(param: Any) -> str:
    """``FILE``, ``[NAME]``, ``FILES...`` for arguments; the value's shape for options."""
    if param.param_type_name == "argument":
        name = str(param.metavar or param.name).upper()
        name += "..." if param.nargs == -1 else ""
        return name if param.required else f"[{name}]"
    if getattr(param, "is_flag", False):
        return ""
    choices = _choices(param)
    if choices:
        return "|".join(choices)
    return str(param.metavar or param.name).upper()


def _choices(param: Any) -> list[str]:
    descriptor = getattr(param, "type_descriptor", None)
    values: Sequence[Any] = getattr(descriptor, "choices", None) or ()
    return [str(v.value if isinstance(v, enum.Enum) else v) for v in values]


def usage_pieces(command: Any, ctx: Any) -> list[str]:
    """The usage line after the command path: ``[OPTIONS] FILE [NAME]``."""
    pieces = ["[OPTIONS]"]
    pieces += [metavar(p) for p in command.params if p.param_type_name == "argument"]
    return pieces


def _default(param: Any) -> str:
    default = param.default
    if param.param_type_name == "argument" or getattr(param, "is_flag", False):
        return ""
    if param.show_default is False or default is None or default == () or default == []:
        return ""
    if isinstance(default, enum.Enum):
        default = default.value
    return f" [default: {default}]"


def _param_rows(params: Iterable[Any]) -> list[tuple[str, str, str]]:
    rows = []
    for p in params:
        if getattr(p, "hidden", False):
            continue
        if p.param_type_name == "argument":
            names = metavar(p)
            value = ""
        else:
            # Short forms first, in a fixed order (click keeps the help option's in a set).
            names = ", ".join(sorted([*p.opts, *p.secondary_opts], key=_option_order))
            value = metavar(p)
        help_text = " ".join((p.help or "").split())
        if p.param_type_name == "argument" and p.required:
            help_text += " [required]"
        rows.append((names, value, help_text + _default(p)))
    return rows


def _option_order(option: str) -> tuple[bool, str]:
    return option.startswith("--"), option


def _panel(title: str, rows: list[tuple[str, str, str]]) -> Any:
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    table = Table.grid(padding=(0, 2), expand=True)
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(style="yellow", no_wrap=True)
    table.add_column(ratio=1)
    for names, value, help_text in rows:
        # Text, never markup: a help string may hold brackets (``ringctl[metrics]``).
        table.add_row(Text(names), Text(value), Text(help_text))
    return Panel(table, title=title, title_align="left", border_style="dim")


def _print(console: Any, usage: str, help_text: str, panels: list[Any]) -> None:
    from rich.padding import Padding
    from rich.text import Text

    console.print(Padding(Text(f"Usage: {usage}", style="bold"), (1, 1, 0, 1)))
    if help_text:
        paragraphs = [" ".join(par.split()) for par in help_text.strip().split("\n\n")]
        console.print(Padding(Text("\n\n".join(paragraphs)), (1, 1, 1, 1)))
    else:
        console.print()
    for panel in panels:
        console.print(panel)


def render_command_help(command: Any, ctx: Any) -> None:
    """One command's page: usage, its docstring, arguments and options."""
    params = command.get_params(ctx)
    arguments = [p for p in params if p.param_type_name == "argument"]
    options = [p for p in params if p.param_type_name != "argument"]
    panels = []
    if arguments:
        panels.append(_panel("Arguments", _param_rows(arguments)))
    if options:
        panels.append(_panel("Options", _param_rows(options)))
    usage = f"{ctx.command_path} {' '.join(usage_pieces(command, ctx))}"
    _print(_console(), usage, command.help or "", panels)


def render_group_help(group: Any, ctx: Any, commands: list[tuple[str, str]]) -> None:
    """The top page: usage, the program's help, its options, one line per command."""
    options = [p for p in group.get_params(ctx) if p.param_type_name != "argument"]
    rows = [(name, "", summary) for name, summary in commands]
    panels = [_panel("Options", _param_rows(options)), _panel("Commands", rows)]
    usage = f"{ctx.command_path} [OPTIONS] COMMAND [ARGS]..."
    _print(_console(), usage, group.help or "", panels)
