"""Generate the CLI reference (``docs/cli.md``) from the typer app itself, so it cannot drift.

    python -m ringctl.cli.docs > docs/cli.md

A test regenerates it and compares with the checked-in file.
"""

from __future__ import annotations

import re
from typing import Any

import typer

from ringctl.cli import app

_HEADER = """# CLI reference

Generated from the typer app by `python -m ringctl.cli.docs > docs/cli.md`; do not edit
by hand. Exit codes: 0 success, 1 the run failed (a kernel failed past its restart policy,
accepted messages were lost or left unprocessed, a smoke expectation was not met, a launch
was rolled back, a drain timed out; see accounting.md), 2 bad input
(an invalid topology, bad arguments), 3 no such running topology or its supervisor does
not answer, 130 interrupted by Ctrl-C after a graceful down.

Commands that act on a running topology take its name, or find the only one running.
The state directory (sockets, pid files, logs of detached runs) is `$RINGCTL_STATE_DIR`,
else `$XDG_STATE_HOME/ringctl`, else `~/.local/state/ringctl`. `ringctl validate` keeps
the topology schema, compiled, in `$RINGCTL_CACHE_DIR`, else `$XDG_CACHE_HOME/ringctl`,
else `~/.cache/ringctl`, so that it starts without pydantic; deleting it is always safe.
"""


def _param_line(param: Any) -> str:
    # Duck-typed: typer vendors its own click, so isinstance checks against `click` fail.
    if param.param_type_name == "argument":
        name = str(param.metavar or param.name).upper()
        many = "..." if param.nargs == -1 else ""
        req = "" if param.required else " (optional)"
        help_text = f": {param.help.strip()}" if getattr(param, "help", None) else ""
        return f"- `{name}{many}`{req}{help_text}"
    from ringctl.cli._help import metavar

    flags = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
    value = metavar(param)
    if value and "|" in value:  # a choice: list the values, as help and completion do
        flags += f" `{value}`"
    help_text = (param.help or "").strip()
    default = ""
    if param.show_default is not False and param.default not in (None, False, (), []):
        default = f" (default: `{param.default}`)"
    return f"- {flags}: {help_text}{default}".rstrip(": ")


def _metavar(match: re.Match[str]) -> str:
    """``{file}`` -> ``FILE`` and ``[name]`` -> ``[NAME]``, as people write usage lines."""
    return match.group(0).upper().replace("{", "").replace("}", "")


def render() -> str:
    root: Any = typer.main.get_command(app)
    out = [_HEADER]
    ctx = root.context_class(root, info_name="ringctl")
    out.append("## Options of `ringctl` itself\n")
    out.append(
        "\n".join(_param_line(p) for p in root.get_params(ctx) if p.name != "help")
        + "\n- `-h`, `--help` (every command): show the command's help and exit.\n"
    )
    for name in root.list_commands(ctx):
        cmd = root.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        usage = " ".join(cmd.collect_usage_pieces(cmd.context_class(cmd, info_name=name)))
        usage = re.sub(r"[{[](\w+)[}\]]", _metavar, usage)
        out.append(f"## `ringctl {name} {usage}`\n")
        out.append((cmd.help or "").strip() + "\n")
        params = [p for p in cmd.params if p.name != "help"]
        if params:
            out.append("\n".join(_param_line(p) for p in params) + "\n")
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
