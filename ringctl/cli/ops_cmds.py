"""``logs``, ``tap``, ``restart`` and ``scale``: operating a running topology.

``logs`` reads the name's kernel log in the state directory (it outlives the run);
the others talk to the supervisor over its socket, like ``ps`` and ``pause``.
"""

from __future__ import annotations

import json
import re
import sys
import time
from typing import Annotated, Any

import typer

from ringctl._printable import printable
from ringctl.cli import RingctlCommand, _render
from ringctl.cli._common import (
    JsonOpt,
    KernelsArg,
    check_name,
    complete_kernel,
    complete_topology,
    run,
    usage_error,
)

_SINCE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


# -- logs ----------------------------------------------------------------------------------


def parse_since(text: str, now: float) -> float:
    """``5m``, ``30s``, ``2h``, ``1d`` ago, or an ISO time (``2026-11-28T09:30``), as epoch s."""
    m = _SINCE.match(text.strip())
    if m:
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise usage_error(
            f"--since {text!r} is neither a duration nor a time",
            "e.g. --since 5m, --since 30s, --since 2h, --since 2026-11-28T09:30",
        ) from None


def _stamp(ts: float) -> str:
    frac = f"{ts % 1:.3f}"[1:]
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) + frac


def log_lines(record: dict[str, Any]) -> list[str]:
    """A record as the lines ``ringctl logs`` prints, each tagged with time and kernel."""
    ts = record.get("ts")
    stamp = _stamp(float(ts)) if isinstance(ts, int | float) else "?"
    who = f"{record.get('kernel')}[{record.get('replica', 0)}]"
    stream = record.get("stream")
    tag = {"stderr": " stderr", "traceback": " traceback", "log": f" {record.get('level', '')}"}
    prefix = printable(f"{stamp} {who}{tag.get(str(stream), '')} | ")
    text = str(record.get("text", "")).rstrip("\n")
    return [prefix + printable(line, lines=True) for line in text.split("\n")]


def logs(
    name: Annotated[
        str | None,
        typer.Argument(
            help="The topology (default: the only one running).",
            show_default=False,
            autocompletion=complete_topology,
        ),
    ] = None,
    kernels: KernelsArg = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until the run ends.")
    ] = False,
    tail: Annotated[
        int | None, typer.Option(help="Only the last N lines (before following).", min=0)
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only lines from this long ago on (5m, 30s, 2h) or since a time."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON record per line (ts, kernel, replica, ...).")
    ] = False,
) -> None:
    """What the kernels printed, logged and raised, each line tagged with time and kernel.

    Works while the topology runs (foreground or -d) and after it ended, until the next
    run of the same name. A failed kernel's traceback is here in full.
    """
    from ringctl.api import LogFollower, kernel_log

    check_name(name)
    found = run(lambda: kernel_log(name))
    name, path = found.name, found.path
    if kernels:
        _check_kernels(name, kernels)
    cutoff = run(lambda: parse_since(since, time.time())) if since else None

    def render(records: list[dict[str, Any]]) -> list[str]:
        lines: list[str] = []
        for r in records:
            if (not kernels or r.get("kernel") in kernels) and (
                cutoff is None or float(r.get("ts") or 0) >= cutoff
            ):
                lines.extend([json.dumps(r, ensure_ascii=False)] if as_json else log_lines(r))
        return lines

    # One reader for the backlog and what follows it: no line written in between is lost.
    follower = LogFollower(path)
    out = render(follower.backlog())
    if tail is not None:
        out = out[-tail:] if tail else []
    _write(out)
    if not follow:
        follower.close()
        return
    missed = 0
    try:
        while True:
            new = follower.poll()
            if not new and not found.running():
                # The run is over: print what it wrote last, then stop.
                _write(render(follower.poll()))
                _say_missed(follower.missed - missed)
                _say_if_died(name)
                return
            _write(render(new))
            if follower.missed > missed:
                _say_missed(follower.missed - missed)
                missed = follower.missed
            if not new:
                time.sleep(0.2)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    finally:
        follower.close()


def _say_missed(count: int) -> None:
    if count > 0:
        _render.warning(
            f"{count} lines were rotated away before they could be read "
            "(the kernel log keeps its newest 16 to 32 MiB)"
        )


def _say_if_died(name: str) -> None:
    """Tell a follower whose run ended because its supervisor died (killed, crashed)."""
    from ringctl.api import last_run

    last = last_run(name)
    if last is not None and last.get("outcome") == "died":
        _render.warning(f"{name}: {last.get('reason')}")


def _check_kernels(name: str, kernels: list[str]) -> None:
    """Name a kernel the running topology does not have (exit 2); quiet when not running."""
    from ringctl.api import connect
    from ringctl.exceptions import RingctlError

    try:
        status = connect(name, timeout=2.0).status()
    except RingctlError:
        return
    known = [str(k.get("id")) for k in status.get("kernels", [])]
    unknown = [k for k in kernels if k not in known]
    if unknown:
        from ringctl.api import did_you_mean

        guess = did_you_mean(unknown[0], known)
        _render.fail(
            usage_error(
                f"topology {name!r} has no kernel {', '.join(map(repr, unknown))}",
                (f"did you mean {guess!r}? " if guess else "") + f"its kernels: {', '.join(known)}",
            )
        )


def _write(lines: list[str]) -> None:
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()


# -- tap -----------------------------------------------------------------------------------


def tap(
    name: Annotated[
        str,
        typer.Argument(
            metavar="[NAME]",
            help="The running topology (may be left out while only one runs).",
            show_default=False,
            autocompletion=complete_topology,
        ),
    ],
    target: Annotated[
        str,
        typer.Argument(
            metavar="KERNEL[.PORT]",
            help="The port to sample (default port: out).",
            show_default=False,
            autocompletion=complete_kernel,
        ),
    ],
    count: Annotated[
        int | None, typer.Option("-n", "--count", help="Exit after N messages.", min=1)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document per message.")] = False,
) -> None:
    """Sample the messages leaving a kernel's port, as they go by.

    The edge itself is untouched (order, backpressure, counts); the tap is a bounded
    side channel that skips messages rather than slow the kernel down, and costs
    nothing once no one taps. Arrays show as dtype, shape and their first values.
    """
    from ringctl.api import connect, preview_text
    from ringctl.exceptions import RingctlError

    chosen: str | None = name or None  # "" (TapCommand): the only topology running
    kernel, _, port = target.partition(".")
    if not kernel or (target.count(".") and not port):
        _render.fail(usage_error(f"{target!r} is not KERNEL or KERNEL.PORT", "e.g. square.out"))
    port = port or "out"
    check_name(chosen)
    running = run(lambda: connect(chosen))
    name = running.name
    messages = running.tap(kernel, port, count)
    shown_missed = 0
    quiet = False
    try:
        while True:
            try:
                data = next(messages)
            except StopIteration as end:
                summary: dict[str, Any] = end.value
                break
            if data is None:
                if not as_json and not quiet:  # once per lull, so a silent tap explains itself
                    typer.echo(
                        f"tap: nothing from {kernel}.{port} yet; still waiting "
                        f"(ringctl ps {name} shows whether {kernel} is paused or idle)",
                        err=True,
                    )
                quiet = True
                continue
            quiet = False
            if as_json:
                _write([json.dumps(data, ensure_ascii=False)])
                continue
            missed = int(data.get("missed") or 0)
            if missed > shown_missed:
                _write([f"… {missed - shown_missed} messages went by unshown"])
                shown_missed = missed
            stamp = _stamp(float(data.get("t") or 0))[11:]
            line = f"{stamp} {kernel}.{port} #{data.get('n')}  {preview_text(data.get('value'))}"
            _write([printable(line)])
    except RingctlError as exc:
        _render.fail(exc)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if summary.get("ended") and (count is None or summary.get("messages", 0) < count):
        typer.echo(
            f"tap: {name} ended after {summary.get('messages', 0)} messages from {kernel}.{port}",
            err=True,
        )


# -- restart and scale ---------------------------------------------------------------------


_Running = Annotated[
    str,
    typer.Argument(
        help="The running topology.", show_default=False, autocompletion=complete_topology
    ),
]


def restart(
    name: _Running,
    kernels: Annotated[
        list[str],
        typer.Argument(
            help="The kernels to restart.", show_default=False, autocompletion=complete_kernel
        ),
    ],
    timeout: Annotated[
        float, typer.Option(help="Seconds each kernel gets to stop before a force stop.", min=0)
    ] = 5.0,
    as_json: JsonOpt = False,
) -> None:
    """Stop and relaunch kernels; each keeps its inbox and ctx.state (counts as a restart)."""
    from ringctl.api import connect

    check_name(name)
    running = run(lambda: connect(name))
    result = run(lambda: running.restart(kernels, timeout))
    if as_json:
        _render.print_json(result)
        return
    typer.echo(f"restarted: {', '.join(result.get('restarted') or [])}")


def parse_scale(items: list[str]) -> list[tuple[str, int]]:
    """``["square=4"]`` -> ``[("square", 4)]``; a usage error names the bad item."""
    out = []
    for item in items:
        kernel, eq, count = item.partition("=")
        if not eq or not kernel or not count.strip().isdigit() or int(count) < 1:
            raise usage_error(
                f"{item!r} is not KERNEL=N with N a whole number >= 1",
                "e.g. ringctl scale NAME square=4",
            )
        out.append((kernel, int(count)))
    return out


def scale(
    name: _Running,
    targets: Annotated[
        list[str],
        typer.Argument(metavar="KERNEL=N", help="New replica counts.", show_default=False),
    ],
    timeout: Annotated[
        float, typer.Option(help="Seconds a removed replica gets to stop.", min=0)
    ] = 5.0,
    as_json: JsonOpt = False,
) -> None:
    """Change how many replicas of a running kernel share its inbox.

    New replicas run the kernel's set-up hook (a kernel that cannot run as several says
    why there); removed ones finish the message in hand. Nothing queued is lost.
    """
    from ringctl.api import connect

    wanted = run(lambda: parse_scale(targets))
    check_name(name)
    running = run(lambda: connect(name))
    results = []
    for kernel, replicas in wanted:
        result = run(lambda k=kernel, r=replicas: running.scale(k, r, timeout))
        results.append(result)
        if not as_json:
            before, after = result.get("before"), result.get("after")
            unit = "replica" if after == 1 else "replicas"
            if before == after:
                typer.echo(f"{result.get('kernel')}: already {after} {unit}")
            else:
                typer.echo(f"{result.get('kernel')}: {before} -> {after} {unit}")
    if as_json:
        _render.print_json({"scaled": results})


class TapCommand(RingctlCommand):
    """``tap [NAME] KERNEL[.PORT]``: with one word before the options, NAME was left out."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        words, i = [], 0
        while i < len(args):
            arg = args[i]
            if arg == "--":
                words += args[i + 1 :]
                break
            if arg in ("-n", "--count"):
                i += 2  # the option and its value
                continue
            if not arg.startswith("-") or arg == "-":
                words.append(arg)
            i += 1
        if len(words) == 1 and not ctx.resilient_parsing:  # (completion: NAME comes first)
            args = ["", *args]  # NAME left out: the only topology running
        return list(super().parse_args(ctx, args))


def register(app: typer.Typer) -> None:
    app.command()(logs)
    app.command(cls=TapCommand)(tap)
    app.command()(restart)
    app.command()(scale)
