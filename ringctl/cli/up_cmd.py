"""``ringctl up``: validate, launch in two phases, run with a dashboard or plain lines.

Foreground runs host the supervisor in this process; ``-d`` starts it as its own
process (new session, output to a log in the state directory) and returns once every
kernel is ACTIVE.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ringctl.cli import _render
from ringctl.cli._common import (
    EngineChoice,
    check_name,
    load_file,
    per_second,
    run,
    say,
    seconds,
)

if TYPE_CHECKING:
    from ringctl.api import LiveRun, RunReport, TopologyFile


def up(
    file: Annotated[Path, typer.Argument(help="The topology file.", show_default=False)],
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Run the supervisor in the background.")
    ] = False,
    duration: Annotated[
        float | None,
        typer.Option(help="Run this many seconds, then down gracefully.", callback=seconds),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            help="Seconds the final drain (and each kernel) gets before a force stop.",
            callback=seconds,
        ),
    ] = 10.0,
    no_dashboard: Annotated[
        bool,
        typer.Option(
            "--no-dashboard", help="Plain progress lines (the default when not a terminal)."
        ),
    ] = False,
    interval: Annotated[
        float,
        typer.Option(help="Seconds between plain progress lines.", min=0.05, callback=seconds),
    ] = 2.0,
    json_stream: Annotated[
        bool,
        typer.Option(
            "--json-stream",
            help="One JSON status document per interval, then a final one with a 'result'.",
        ),
    ] = False,
    refresh: Annotated[
        float, typer.Option(help="Dashboard redraws per second.", callback=per_second)
    ] = 4.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve Prometheus metrics on this port (needs ringctl[metrics]; 0: any port)."
        ),
    ] = None,
    engine: Annotated[
        EngineChoice | None, typer.Option(help="Overrides the file's engine.")
    ] = None,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address ('auto' joins a running one).")
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            "-p",
            help="Run under this name instead of the file's (a second copy of one file).",
        ),
    ] = None,
) -> None:
    """Launch a topology in two phases, in dependency order, and run it.

    Runs until Ctrl-C, `ringctl down`, --duration, or completion (every source returned
    and every queue drained: exit 0).
    """
    from ringctl.exceptions import RingctlError

    topology = load_file(file, engine)
    if name is not None and name != topology.name:
        import dataclasses

        from ringctl.api import TopologyFile

        check_name(name)  # it names files in the state directory
        topology = TopologyFile(dataclasses.replace(topology.plan, name=name))
    if detach:
        _detach(file, topology.name, duration, timeout, engine, address)
        return
    final: dict[str, Any] = {}
    try:
        result = _run_foreground(
            topology,
            duration=duration,
            timeout=timeout,
            dashboard=not no_dashboard and not json_stream and sys.stdout.isatty(),
            interval=interval,
            json_stream=json_stream,
            refresh=refresh,
            metrics_port=metrics_port,
            address=address,
            final=final,
        )
    except RingctlError as exc:
        if json_stream:
            _final_document(final.get("status"), None, exc)
        _render.fail(exc)
    if json_stream:
        _final_document(result.status or final.get("status"), result, None)
    _report_result(topology.name, result)
    if result.output_lost:
        typer.secho(f"warning: {result.output_lost}", fg=typer.colors.YELLOW, err=True)
    if result.down is not None and result.down.refused:
        # A kernel that swallowed cancellation may still hold a thread (an executor call,
        # a C library): leave now rather than wait for it at interpreter exit.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(result.exit_code)
    raise typer.Exit(result.exit_code)


def _final_document(
    status: dict[str, Any] | None, result: RunReport | None, error: BaseException | None
) -> None:
    """``--json-stream``'s last line: the final status document plus the run's ``result``
    (outcome, exit code, reason, failure, the drain's report and the accounting)."""
    from ringctl.api import RunReport
    from ringctl.dashboard.plain import json_line

    if result is None:  # the launch failed
        failure = getattr(error, "message", None) or str(error)
        code = int(getattr(error, "exit_code", 1))
        result = RunReport("", "failed", code, "launch failed", failure, None, None, {})
    sys.stdout.write(json_line({**(status or {}), "result": result.result()}) + "\n")
    sys.stdout.flush()


#: A metric name or value longer than this is cut in the run's summary (`ps --json` and
#: the status document keep it whole).
_METRIC_CHARS = 80


def _print_summary(status: dict[str, Any]) -> None:
    """The run's totals, one line per kernel, with what each kernel put in ctx.metrics."""
    from ringctl._printable import printable
    from ringctl.dashboard import human_count

    def shown(value: object) -> str:
        text = str(value)  # a metric may hold anything: keep the summary a summary
        return text if len(text) <= _METRIC_CHARS else text[: _METRIC_CHARS - 1] + "…"

    for k in status.get("kernels", []):
        items = (k.get("metrics") or {}).items()
        metrics = printable(" ".join(f"{shown(key)}={shown(value)}" for key, value in items))
        line = (
            f"  {k['id']:<16} in {human_count(k['messages_in']):>7}  "
            f"out {human_count(k['messages_out']):>7}  errors {k['errors']}  "
            f"drops {k['drops']}  restarts {k['restarts']}"
        )
        unprocessed = "".join(
            f"  {term.replace('_', ' ')} {k[term]}"
            for term in ("lost", "left", "in_doubt")
            if k.get(term)
        )
        typer.echo(line + unprocessed + (f"  {metrics}" if metrics else ""), err=True)
    accounting = status.get("accounting")
    if accounting:
        from ringctl.api import equation

        typer.echo(f"  accounting: {equation(accounting.get('totals') or {})}", err=True)


def _run_foreground(
    topology: TopologyFile,
    *,
    duration: float | None,
    timeout: float,
    dashboard: bool,
    interval: float,
    json_stream: bool,
    refresh: float,
    metrics_port: int | None,
    address: str | None,
    final: dict[str, Any],
) -> RunReport:
    from ringctl.api import RunHooks, up

    latest: dict[str, Any] = {}
    runs: list[LiveRun] = []  # the run, for the final document of a failed launch
    shown: dict[str, Any] = {"event": None, "tracebacks": set()}
    live_console = None
    if dashboard:
        from rich.console import Console

        live_console = Console()

    def on_phase(phase: dict[str, Any]) -> None:
        name = phase.get("name", "")
        if dashboard or name not in ("launch", "activate") or phase["done"] != phase["total"]:
            return
        label, verb = ("phase 1", "launched") if name == "launch" else ("phase 2", "activated")
        say(f"{label}: {verb} {phase['total']} kernels in {phase['elapsed_s'] * 1e3:.2f} ms")

    def on_tick(status: dict[str, Any]) -> None:
        latest["status"] = status
        if dashboard:
            return
        from ringctl.dashboard.plain import json_line, plain_line

        if json_stream:
            sys.stdout.write(json_line(status) + "\n")
        else:
            _print_events(status, shown)
            sys.stdout.write(plain_line(status) + "\n")
        sys.stdout.flush()

    def on_output(record: Any) -> None:
        # A kernel's traceback, once per kernel: above the dashboard (printed through the
        # live view's console) or among the plain lines.
        if record.stream != "traceback" or record.kernel in shown["tracebacks"]:
            return
        shown["tracebacks"].add(record.kernel)
        from ringctl._printable import printable
        from ringctl.api import unmarked

        text = (
            f"ringctl: kernel {record.kernel}[{record.replica}] raised:\n"
            + printable(record.text.rstrip("\n"), lines=True)
            + f"\n(ringctl logs {topology.name} {record.kernel} shows it again)"
        )
        with unmarked():  # the CLI speaking, even when called from a kernel's set-up hook
            if live_console is not None:
                from rich.text import Text

                live_console.print(Text(text, style="red"))  # above the live view
            else:
                sys.stderr.write(text + "\n")
                sys.stderr.flush()

    def on_signal(kind: str) -> None:
        if dashboard:
            return
        if kind == "force":
            say("second interrupt: forcing the stop")
        elif kind == "interrupt":
            say("stopping: draining queues (Ctrl-C again to force)")
        else:  # SIGTERM or SIGHUP: nobody is at a keyboard to press Ctrl-C
            say(f"stopping on SIG{'TERM' if kind == 'terminate' else 'HUP'}: draining queues")

    def on_start(live: LiveRun) -> None:
        runs.append(live)
        latest["status"] = live.status()

    async def view(live: LiveRun) -> None:
        from ringctl.dashboard.live import run_live_async
        from ringctl.dashboard.plain import StopReason

        # Drawn on the run's own loop, not in a thread: see run_live_async. The kernels'
        # output is captured for `ringctl logs` (rich's own redirection would print it
        # above the view instead, and keep it from the log).
        reason = await run_live_async(
            live.status,
            refresh_per_second=refresh,
            should_stop=lambda: live.ended,
            console=live_console,
            redirect_io=False,
        )
        if reason is StopReason.QUIT and not live.ended:
            live.stop("interrupted")

    metrics = None
    if metrics_port is not None:
        from ringctl.dashboard.metrics import serve_metrics

        metrics = serve_metrics(lambda: latest.get("status"), port=metrics_port)
        say(f"metrics on {metrics.url}")

    plan_file = topology.file
    say(
        f"{topology.name}: {len(topology.kernels)} kernels, {len(topology.plan.edges)} queues, "
        f"engine {topology.engine}" + (f" ({plan_file})" if plan_file else "")
    )
    tick = 1.0 / refresh if dashboard else interval
    if metrics is not None:
        tick = min(tick, 1.0)
    hooks = RunHooks(
        on_phase=on_phase,
        # The live view takes its own snapshot per frame; a ticker would only double the
        # snapshots, unless the metrics endpoint needs the latest one.
        on_tick=None if dashboard and metrics is None else on_tick,
        tick_interval=tick,
        on_signal=on_signal,
        on_start=on_start,
        view=view if dashboard else None,
        on_slow_phase=None if dashboard else say,
        on_output=on_output,
        # --json-stream keeps stdout pure JSON; a live view would be scribbled on.
        echo_output=None if dashboard else sys.stderr if json_stream else sys.stdout,
    )
    try:
        result = up(topology, duration=duration, down_timeout=timeout, address=address,
                    hooks=hooks)  # fmt: skip
    finally:
        if metrics is not None:
            metrics.stop()
        if runs:
            final["status"] = runs[0].status(fresh=True)  # read when the launch failed
    if result.status:
        if not dashboard and not json_stream:
            _print_events(result.status, shown)
        _print_summary(result.status)
    return result


def _print_events(status: dict[str, Any], shown: dict[str, Any]) -> None:
    """Each event not yet printed, on a line of its own (plain mode)."""
    from ringctl.dashboard._status import parse_status
    from ringctl.dashboard.plain import event_line

    events = parse_status(status).events
    last = shown["event"]
    start = 0
    if last is not None:
        # The document keeps a bounded tail of events: find the last one printed.
        start = next((i + 1 for i in range(len(events) - 1, -1, -1) if events[i] == last), 0)
    for event in events[start:]:
        sys.stdout.write(event_line(event) + "\n")
    if events:
        shown["event"] = events[-1]


def _report_result(name: str, result: RunReport) -> None:
    down = result.down
    if result.outcome == "completed":
        say(f"{name} completed: every source finished and every queue drained")
    elif result.outcome == "failed":
        hint = None
        if result.failure and result.failure.startswith("kernel "):
            limit = re.search(r"max_restarts is (\d+)\)$", result.failure)
            hint = f"ringctl logs {name} shows the kernels' output and tracebacks; " + (
                f"its max_restarts ({limit[1]}) is used up: raise `max_restarts` in its "
                "`restart:` if more restarts are right, or fix what makes it fail"
                if limit
                else "a restart policy (restart: {policy: on-failure}) can replace a failed kernel"
            )
        _render.error(str(result.failure), hint)
    elif result.outcome == "interrupted":
        say(f"{name} stopped (interrupted)")
    else:
        say(f"{name} stopped ({result.reason})")
    if down is not None and not down.graceful:
        where = ", ".join(f"{k}: {n}" for k, n in down.left.items()) or "none queued"
        forced = f"; force-stopped {', '.join(down.forced)}" if down.forced else ""
        if down.refused:
            forced += f"; refused to stop: {', '.join(down.refused)}"
        _render.warning(f"{_why(result)}: {down.messages_left} messages left ({where}){forced}")


def _why(result: RunReport) -> str:
    """Why the down was not graceful, without the list of refusers (said separately)."""
    return (result.failure or "the drain timed out").split("; kernel(s) that refused")[0]


def _detach(
    file: Path,
    name: str,
    duration: float | None,
    timeout: float,
    engine: str | None,
    address: str | None,
) -> None:
    from ringctl.api import start_detached

    started = run(
        lambda: start_detached(
            file, name, duration=duration, timeout=timeout, engine=engine, address=address
        )
    )
    if started.outcome == "up":
        say(f"{name} is up (pid {started.pid}); log: {started.log}")
        typer.echo(f"  ringctl ps {name}    ringctl top {name}    ringctl down {name}", err=True)
        return
    if started.outcome == "completed":
        say(f"{name} ran to completion before detaching (log: {started.log})")
        raise typer.Exit(0)
    if started.outcome == "stopped":
        say(f"{name} was stopped during launch (a down came before it was up); log: {started.log}")
        raise typer.Exit(0)
    if started.outcome == "failed":
        typer.echo(started.log_tail, err=True)
        _render.error(f"{name} failed to come up (exit {started.exit_code}); log: {started.log}")
    else:
        _render.error(f"{name} did not come up within 120 s; log: {started.log}")
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(up)
