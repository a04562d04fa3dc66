"""``ps``, ``pause``, ``resume``, ``down`` and ``top``: a running topology, from any shell.

Each command finds the topology's supervisor by name (or the only one running) and
talks to it over its Unix socket (``ringctl.control``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ringctl._printable import few, printable
from ringctl.cli import _render
from ringctl.cli._common import (
    JsonOpt,
    KernelsArg,
    check_name,
    complete_topology,
    per_second,
    run,
    seconds,
)
from ringctl.cli._common import console as make_console

if TYPE_CHECKING:
    from ringctl.api import Running

_NAME_HELP = "The running topology (default: the only one running)."
_NameArg = Annotated[
    str | None,
    typer.Argument(help=_NAME_HELP, show_default=False, autocompletion=complete_topology),
]
_WaitOpt = Annotated[
    float | None,
    typer.Option(
        "--wait",
        metavar="SECONDS",
        callback=seconds,
        help="Seconds to wait for the supervisor's answer (default 10; 5 for top); a "
        "command it has not started by then is never applied.",
        show_default=False,
    ),
]


def _connect(name: str | None, wait: float | None) -> Running:
    from ringctl.api import connect

    return connect(check_name(name), timeout=10.0 if wait is None else wait)


def ps(
    name: Annotated[
        str | None,
        typer.Argument(help="Show this topology's kernels.", autocompletion=complete_topology),
    ] = None,
    show_all: Annotated[
        bool,
        typer.Option("--all", "-a", help="Finished runs too: outcome, exit code, duration, end."),
    ] = False,
    as_json: JsonOpt = False,
    wait: _WaitOpt = None,
) -> None:
    """List running topologies, or one topology's kernels (status word, metrics) and queues.

    A topology whose supervisor does not answer is listed as "not responding".
    """
    check_name(name)
    if name is None:
        from ringctl.api import applies, finished, listing

        died: list[str] = []
        found = run(lambda: listing(died=died))
        ended = finished() if show_all else []  # newest first
        applied = applies() if show_all else []  # newest first
        if as_json:
            doc: dict[str, Any] = {"topologies": found}
            if show_all:
                doc["finished"] = ended
                doc["applied"] = applied
            _render.print_json(doc)
            return
        for gone in died:
            _render.warning(
                f"{gone}: its supervisor died before the run ended (ringctl ps -a lists it)"
            )
        if not found and not ended:
            typer.echo("no topology is running (start one with: ringctl up FILE)")
            return
        if found:
            _print_topologies(found)
        elif show_all:
            typer.echo("no topology is running")
        if ended:
            _print_finished(ended)
        if applied:
            _print_applies(applied)
        return
    status = run(lambda: _connect(name, wait).status())
    if as_json:
        _render.print_json(status)
        return
    _print_status(status)


def _print_topologies(found: list[dict[str, Any]]) -> None:
    rows = [(_shown(t.get("name")),
             _shown(f"{t.get('state')}{' (loop blocked)' if t.get('loop') == 'blocked' else ''}"),
             _duration(t.get("uptime_s")), _shown(t.get("pid")), _shown(t.get("file") or ""),
             _applied_cell(t.get("applied"))) for t in found]  # fmt: skip
    console = make_console()
    console.print(_render.rich_table(("NAME", "STATE", "UPTIME", "PID", "FILE", "APPLIED"), rows))
    for t in found:
        if t.get("state") == "not responding":
            console.print(
                f"[yellow]{_shown(t.get('name'))}: its supervisor (pid {_shown(t.get('pid'))}) "
                f"does not answer; see {_shown(t.get('log') or 'its log')}, or kill it if it "
                "is stuck[/]"
            )


def _print_finished(finished: list[dict[str, Any]]) -> None:
    rows = [(_shown(t.get("name")), _shown(t.get("outcome")), _shown(t.get("exit_code")),
             _duration(t.get("duration_s")), _clock(t.get("ended") or None, "?"),
             _shown(t.get("reason") or "")) for t in finished]  # fmt: skip
    cols = ("NAME", "OUTCOME", "EXIT", "DURATION", "ENDED", "REASON")
    table = _render.rich_table(cols, rows, right=("EXIT", "DURATION"), title="finished")
    make_console().print(table)


def _print_applies(applies: list[dict[str, Any]]) -> None:
    rows = [
        (_shown(a.get("name")), _clock(a.get("at")), _shown(a.get("file")), _shown(_changes(a)))
        for a in applies
    ]
    table = _render.rich_table(("NAME", "APPLIED", "FILE", "CHANGES"), rows, title="applied")
    make_console().print(table)


def _changes(applied: dict[str, Any]) -> str:
    changes = applied.get("changes")
    return "; ".join(str(c).strip() for c in changes) if isinstance(changes, list) else ""


def _clock(at: Any, missing: str = "--") -> str:
    if not isinstance(at, int | float):
        return missing
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def _applied_cell(applied: Any) -> str:
    """``ps``: when the file was last applied (``--``: as ``up`` started it), and
    whether the running topology still matches it."""
    if not isinstance(applied, dict):
        return ""
    drift = applied.get("drift")
    return _clock(applied.get("at")) + (" [yellow](drift)[/]" if drift else "")


def _applied_lines(status: dict[str, Any]) -> list[str]:
    applied = status.get("applied")
    drift = status.get("drift")
    out = []
    if isinstance(applied, dict):
        n = len(applied.get("done") or [])
        out.append(f"last applied {_clock(applied.get('at'))} ({n} change{'s' if n != 1 else ''})")
    if isinstance(drift, list) and drift:
        out.append("[yellow]differs from its file: " + _shown("; ".join(map(str, drift))) + "[/]")
    elif isinstance(drift, list):
        out.append("matches its file")
    return ["  ".join(out)] if out else []


def _duration(value: Any) -> str:
    return f"{float(value):.1f}s" if isinstance(value, int | float) else "?"


def _metrics_text(metrics: Any) -> str:
    """``total=333328333350000 batches=100``: a kernel's own figures, whole."""
    if not isinstance(metrics, dict):
        return ""
    return " ".join(
        f"{key}={f'{value:.6g}' if isinstance(value, float) else value}"
        for key, value in metrics.items()
    )


def _shown(value: Any) -> str:
    """Text from a kernel, a file or the history as rich markup showing it as it is:
    control characters escaped, brackets not taken for markup."""
    from rich.markup import escape

    return escape(printable(str(value)))


def _n(value: float | None) -> str:
    """A count as ps prints it: the number, or "--" when the document lacks it."""
    return "--" if value is None else str(int(value))


def _print_status(status: dict[str, Any]) -> None:
    from ringctl.dashboard import human_count, parse_status
    from ringctl.dashboard.view import status_word

    console = make_console()
    # Read once, tolerantly: a field an older or newer supervisor does not send reads
    # "--", never a KeyError.
    st = parse_status(status)
    metrics = {k.id: _metrics_text(k.metrics) for k in st.kernels}
    if not sys.stdout.isatty():
        # A pipe or a file gets every figure whole, on the kernel's line: no cut, no wrap.
        from rich.console import Console

        console = Console(width=200 + max(map(len, metrics.values()), default=0))
    console.print(
        f"[bold]{_shown(st.name)}[/] {_shown(st.state)}"
        + (" [bold red]BLOCKED[/]" if st.loop_blocked else "")
        + f"  uptime {st.uptime_s or 0:.1f}s  engine {st.engine}  file {_shown(st.file)}"
    )
    last = st.loop.last_block if st.loop is not None else None
    if st.loop_blocked:
        console.print(f"[bold red]{_shown(st.loop_blocked)}[/]")
    elif last is not None:
        console.print(f"[yellow]{_shown(last.message)} ({last.ago_s or 0:.0f} s ago)[/]")
    if st.stale_s is not None:
        console.print(
            f"[dim](kernel figures from {st.stale_s:.1f} s ago: the kernels' loop "
            "did not answer in time)[/]"
        )
    cols = ("KERNEL", "STATUS", "STATE", "BACKEND", "IN", "OUT", "RATE/S", "INBOX", "DROPS",
            "ERRORS", "RESTARTS", "METRICS")  # fmt: skip
    rows = [
        (
            k.id + (f" x{k.replicas}" if (k.replicas or 1) > 1 else ""),
            status_word(k),
            k.state or "--",
            (k.backend or "--") + (f" ({k.device})" if k.device else ""),
            human_count(k.messages_in),
            human_count(k.messages_out),
            human_count(k.rate_in or k.rate_out),
            f"{_n(k.inbox_depth)}/{_n(k.inbox_capacity)}",
            _n(k.drops),
            _n(k.errors),
            _n(k.restarts),
            metrics.get(k.id, ""),
        )
        for k in st.kernels
    ]
    # Metrics take the width the other columns leave: all of it in a pipe or a file (the
    # console is made wide), the rest of a terminal's line (then cut with "…").
    widths = [
        max([len(col)] + [len(printable(row[i])) for row in rows]) for i, col in enumerate(cols)
    ]
    room = max(console.width - sum(widths[:-1]) - 2 * (len(cols) - 1), 12)
    rows = [(*row[:-1], row[-1] if len(row[-1]) <= room else row[-1][: room - 1] + "…")
            for row in rows]  # fmt: skip
    right = ("IN", "OUT", "RATE/S", "INBOX", "DROPS", "ERRORS", "RESTARTS")
    _render.table(console, cols, rows, right=right)
    if st.queues:
        qrows = [
            (
                f"{q.source} -> {q.to}",
                f"{_n(q.depth)}/{_n(q.capacity)}",
                q.backpressure or "--",
                human_count(q.messages),
                _n(q.drops),
                f"{q.blocked_s or 0:.1f}s",
            )
            for q in st.queues
        ]
        qcols = ("QUEUE", "DEPTH", "POLICY", "MESSAGES", "DROPS", "BLOCKED")
        _render.table(console, qcols, qrows, right=("DEPTH", "MESSAGES", "DROPS", "BLOCKED"))
    for k in st.kernels:
        if k.last_error:
            console.print(f"[red]{_shown(k.id)}: last error: {_shown(k.last_error)}[/]")
        if k.backend_note:
            console.print(f"[yellow]{_shown(k.id)}: {_shown(k.backend_note)}[/]")
        unprocessed = [
            f"{term} {_n(v)}"
            for term, v in (("lost", k.lost), ("left", k.left), ("in doubt", k.in_doubt))
            if v
        ]
        if unprocessed:
            console.print(
                f"[red]{_shown(k.id)}: {', '.join(unprocessed)} accepted messages not processed[/]"
            )
    for line in _applied_lines(status):
        console.print(line)
    if st.failure:
        console.print(f"[red]failure: {_shown(st.failure)}[/]")


def _pause_or_resume(op: str, doc: str) -> Callable[..., None]:
    def command(
        name: _NameArg = None,
        kernels: KernelsArg = None,
        as_json: JsonOpt = False,
        wait: _WaitOpt = None,
    ) -> None:
        running = run(lambda: _connect(name, wait))
        result = run(lambda: getattr(running, op)(kernels or None))
        if as_json:
            _render.print_json(result)
            return
        done = result.get(f"{op}d") or []  # "paused" or "resumed"
        if done:
            typer.echo(f"{op}d: {few(done)}")
        else:
            typer.echo(f"nothing to do: no kernel was {'active' if op == 'pause' else 'paused'}")

    command.__doc__ = doc
    return command


pause = _pause_or_resume(
    "pause", "Deactivate all kernels (or the ones named); messages keep queueing."
)
resume = _pause_or_resume(
    "resume", "Reactivate paused kernels; what queued meanwhile is processed in order."
)


def down(
    name: _NameArg = None,
    timeout: Annotated[
        float,
        typer.Option(
            help="Seconds to drain (and per kernel) before a force stop.", callback=seconds
        ),
    ] = 10.0,
    as_json: JsonOpt = False,
    wait: _WaitOpt = None,
) -> None:
    """Drain and terminate: sources first, then the rest in reverse launch order.

    --wait bounds the wait for the supervisor to start the down and, after that, for each
    progress line (it sends one every fraction of a second while it drains).
    """
    running = run(lambda: _connect(name, wait))

    def progress(data: dict[str, Any]) -> None:
        if as_json:
            return
        for w in data.get("waiting_on") or []:
            typer.echo(
                f"waiting on {w['kernel']}: {w['queued']} queued, {w['seconds_left']:.1f} s left",
                err=True,
            )

    result = run(lambda: running.down(timeout, on_progress=progress))
    if as_json:
        _render.print_json(result)
    elif result.get("graceful"):
        typer.echo(f"{running.name}: down (drained in {result.get('seconds', 0):.2f} s)")
    else:
        where = ", ".join(f"{k}: {n}" for k, n in (result.get("left") or {}).items())
        _render.warning(
            f"{running.name}: forced down after {timeout:g} s; "
            f"{result.get('messages_left', 0)} messages left ({where or 'none queued'})"
        )
    raise typer.Exit(0 if result.get("graceful") else 1)


def top(
    name: _NameArg = None,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
    refresh: Annotated[float, typer.Option(help="Redraws per second.", callback=per_second)] = 4.0,
    width: Annotated[int | None, typer.Option(help="Frame width for --once.", min=20)] = None,
    wait: _WaitOpt = None,
) -> None:
    """The live dashboard of a running topology (q or Ctrl-C detaches; it keeps running).

    Into a pipe or a file it writes plain progress lines instead, until the run ends.
    """
    running = run(lambda: _connect(name, (5.0 if wait is None else wait) + 1.0 / refresh))
    run(running.ping)  # not running: say so (exit 3), draw nothing
    if once:
        from ringctl.dashboard.view import render_text

        status = run(running.status)
        typer.echo(render_text(status, width=width or 100, color=sys.stdout.isatty()), nl=False)
        return
    import threading

    from ringctl.dashboard.live import run_live

    latest: dict[str, Any] = {}
    stop = threading.Event()

    def watch() -> None:
        from ringctl.exceptions import RingctlError

        try:
            for status in running.watch(1.0 / refresh):
                latest["status"] = status
                if stop.is_set():
                    return
        except RingctlError:
            return
        finally:
            latest["closed"] = True

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()

    from ringctl.dashboard._status import FINAL_TOPOLOGY_STATES

    def current() -> Any:
        # The stream ends after the run's final document: show that one. A stream gone
        # without it (the supervisor died) is None: the views give up after a few seconds.
        status = latest.get("status")
        if latest.get("closed"):
            state = status.get("state") if isinstance(status, dict) else None
            if not (isinstance(state, str) and state.lower() in FINAL_TOPOLOGY_STATES):
                return None
        return status

    if sys.stdout.isatty():
        run_live(current, refresh_per_second=refresh, give_up_after_s=5.0)
    else:  # a pipe or a file: plain lines, as `up` writes them, at most one a second
        from ringctl.dashboard.plain import run_plain

        deadline = time.monotonic() + 5.0
        while not latest and time.monotonic() < deadline:  # a log starts with a real line
            time.sleep(0.01)
        run_plain(current, interval_s=max(1.0, 1.0 / refresh), give_up_after_s=5.0)
    stop.set()


def register(app: typer.Typer) -> None:
    app.command()(ps)
    app.command("pause")(pause)
    app.command("resume")(resume)
    app.command()(down)
    app.command()(top)
