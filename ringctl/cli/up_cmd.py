"""``ringctl up``: validate, launch in two phases, run with a dashboard or plain lines.

Foreground runs host the supervisor in this process; ``-d`` starts it as its own
process (new session, output to a log in the state directory) and returns once every
kernel is ACTIVE.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ringctl.cli import _render
from ringctl.cli._common import (
    EngineChoice,
    load_file,
    per_second,
    say,
    seconds,
    usage_error,
)

if TYPE_CHECKING:
    from ringctl.api import RunReport, TopologyFile
    from ringctl.control.paths import StateDir
    from ringctl.orchestrator.plan import Plan


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
    from ringctl.cli._output import Losses, guard_std_streams
    from ringctl.exceptions import RingctlError

    topology = load_file(file, engine)
    if name is not None and name != topology.name:
        import dataclasses

        from ringctl.api import TopologyFile

        topology = TopologyFile(dataclasses.replace(topology.plan, name=_checked_name(name)))
    plan = topology.plan
    final: dict[str, Any] = {}
    if detach:
        _detach(file, plan, duration, timeout, engine, address)
        return
    from ringctl.control.paths import state_dir

    try:
        directory = state_dir()
        directory.ensure()
        log_path = str(directory.files(plan.name).log)
    except RingctlError as exc:
        _render.fail(exc)
    losses = Losses()
    guard_std_streams(losses)  # a full disk under stdout or the log must not end the run
    if not os.environ.get("RINGCTL_DETACHED"):
        # The child of `up -d` already writes everything to this log. In the foreground,
        # kernel tracebacks go there too, so they never scribble over the dashboard;
        # the screen gets one line per failure.
        _log_to_file(log_path, losses)
    else:  # the child's stderr is the log (and counts what a full disk loses)
        _log_to(_stream_handler(sys.stderr))
    try:
        result = _run_foreground(
            topology,
            log_path=log_path,
            duration=duration,
            timeout=timeout,
            dashboard=not no_dashboard and not json_stream and sys.stdout.isatty(),
            interval=interval,
            json_stream=json_stream,
            refresh=refresh,
            metrics_port=metrics_port,
            address=address,
            losses=losses,
            final=final,
        )
    except RingctlError as exc:
        if json_stream:
            _final_document(final.get("status"), None, exc)
        _render.fail(exc)
    if json_stream:
        _final_document(result.status or final.get("status"), result, None)
    _report_result(plan, result, log_path)
    lost = losses.summary()
    if lost:
        typer.secho(f"warning: {lost}", fg=typer.colors.YELLOW, err=True)
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
    from ringctl.dashboard.plain import json_line

    doc: dict[str, Any] = dict(status or {})
    if result is not None:
        doc["result"] = {
            "outcome": result.outcome,
            "exit_code": result.exit_code,
            "reason": result.reason,
            "failure": result.failure,
            "down": result.down.as_dict() if result.down is not None else None,
            "accounting": result.accounting.as_dict() if result.accounting is not None else None,
        }
    else:
        doc["result"] = {
            "outcome": "failed",
            "exit_code": int(getattr(error, "exit_code", 1)),
            "reason": "launch failed",
            "failure": getattr(error, "message", None) or str(error),
            "down": None,
            "accounting": None,
        }
    sys.stdout.write(json_line(doc) + "\n")
    sys.stdout.flush()


def _log_to_file(path: str, losses: Any) -> None:
    from ringctl.cli._output import PrivateFileHandler

    _log_to(PrivateFileHandler(path, losses))


def _stream_handler(stream: Any) -> Any:
    import logging

    return logging.StreamHandler(stream)


def _log_to(handler: Any) -> None:
    """ringctl's own records (the loop watchdog's, say) go to ``handler`` only."""
    import logging

    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("ringctl")
    logger.addHandler(handler)
    logger.propagate = False


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
        from ringctl.engine.accounting import equation

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
    log_path: str | None = None,
    losses: Any = None,
    final: dict[str, Any] | None = None,
) -> RunReport:
    import asyncio
    import contextlib

    from ringctl.api import RunHooks
    from ringctl.engine.local.loop import run

    plan = topology.plan

    latest: dict[str, Any] = {}
    sup_box: list[Any] = []  # the supervisor, for the final document of a failed launch
    shown: dict[str, Any] = {"event": None, "tracebacks": set()}
    live_console = None
    if dashboard:
        from rich.console import Console

        live_console = Console()
    progress = None if dashboard else _LaunchProgress(plan)

    def on_phase(phase: dict[str, Any]) -> None:
        if progress is not None:
            progress.update(phase)
        name = phase.get("name", "")
        if dashboard or name not in ("launch", "activate") or phase["done"] != phase["total"]:
            return
        verb = "launched" if name == "launch" else "activated"
        label = "phase 1" if name == "launch" else "phase 2"
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
        from ringctl.engine.local.output import unmarked

        text = (
            f"ringctl: kernel {record.kernel}[{record.replica}] raised:\n"
            + printable(record.text.rstrip("\n"), lines=True)
            + f"\n(ringctl logs {plan.name} {record.kernel} shows it again)"
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

    metrics = None
    if metrics_port is not None:
        from ringctl.dashboard.metrics import serve_metrics

        metrics = serve_metrics(lambda: latest.get("status"), port=metrics_port)
        say(f"metrics on {metrics.url}")

    say(
        f"{plan.name}: {len(plan.kernels)} kernels, {len(plan.edges)} queues, "
        f"engine {plan.engine}" + (f" ({plan.file})" if plan.file else "")
    )

    async def main() -> RunReport:
        tick = 1.0 / refresh if dashboard else interval
        if metrics is not None:
            tick = min(tick, 1.0)
        viewer: asyncio.Task[Any] | None = None

        def ready(sup: Any) -> None:
            nonlocal viewer
            if losses is not None:
                loop = asyncio.get_running_loop()

                def first_loss(text: str) -> None:  # from any thread: the event log is the loop's
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(sup.event, "failure", text)

                losses.on_first_loss = first_loss
            sup_box.append(sup)
            latest["status"] = sup.status()
            if dashboard:
                viewer = asyncio.get_running_loop().create_task(_dashboard(sup))

        try:
            return await topology.run_async(
                duration=duration,
                down_timeout=timeout,
                control=True,
                address=address,
                log_path=log_path,
                hooks=RunHooks(
                    on_phase=on_phase,
                    # The live view takes its own snapshot per frame; a ticker would only
                    # double the snapshots, unless the metrics endpoint needs the latest one.
                    on_tick=None if dashboard and metrics is None else on_tick,
                    tick_interval=tick,
                    on_signal=on_signal,
                    supervisor_ready=ready,
                    on_output=on_output,
                    echo_output=_echo_stream(dashboard, json_stream),
                ),
            )
        finally:
            if viewer is not None:
                await viewer  # it draws the last frame once the supervisor has ended

    async def _dashboard(sup: Any) -> None:
        from ringctl.dashboard.live import run_live_async
        from ringctl.dashboard.plain import StopReason

        # Drawn on the supervisor's own loop, not in a thread: see run_live_async.
        # The kernels' output is captured for `ringctl logs` (rich's own redirection
        # would print it above the view instead, and keep it from the log).
        reason = await run_live_async(
            sup.status,
            refresh_per_second=refresh,
            should_stop=lambda: sup.ended,
            console=live_console,
            redirect_io=False,
        )
        if reason is StopReason.QUIT and not sup.ended:
            sup.request_stop("interrupted")

    if progress is not None:
        progress.start()
    try:
        result = run(main())
    finally:
        if progress is not None:
            progress.stop()
        if metrics is not None:
            metrics.stop()
        if sup_box and final is not None:
            final["status"] = sup_box[0].status(fresh=True)  # read when the launch failed
    if result.status:
        if not dashboard and not json_stream:
            _print_events(result.status, shown)
        _print_summary(result.status)
    return result


def _echo_stream(dashboard: bool, json_stream: bool) -> Any:
    """Where a foreground run also shows what kernels print (the kernel log has it all)."""
    if os.environ.get("RINGCTL_DETACHED") or dashboard:
        return None  # the detached log would hold it twice; a live view would be scribbled on
    return sys.stderr if json_stream else sys.stdout  # --json-stream keeps stdout pure JSON


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


class _LaunchProgress:
    """Plain mode: while launch or activation takes long (a slow set-up hook), say so.

    A thread, because a synchronous set-up hook holds the event loop the whole time.
    """

    EVERY_S = 1.0

    def __init__(self, plan: Plan) -> None:
        import threading

        self.plan = plan
        self.phase: dict[str, Any] | None = None
        self.since = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="launch-progress", daemon=True)

    def update(self, phase: dict[str, Any]) -> None:
        old = self.phase
        if old is None or (old.get("name"), old.get("done")) != (phase.get("name"), phase["done"]):
            self.since = time.monotonic()
        self.phase = phase

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)

    def _loop(self) -> None:
        while not self._stop.wait(self.EVERY_S):
            phase = self.phase
            if phase is None or phase.get("name") not in ("launch", "activate"):
                continue
            done, total = int(phase.get("done", 0)), int(phase.get("total", 0))
            if done >= total:
                continue
            waited = time.monotonic() - self.since
            if waited < self.EVERY_S:
                continue
            verb = "launching" if phase["name"] == "launch" else "activating"
            label = "phase 1" if phase["name"] == "launch" else "phase 2"
            kid = self.plan.kernels[done].id
            say(f"{label}: {verb} {kid} ({done}/{total} done, {waited:.0f} s on it)")


def _report_result(plan: Plan, result: RunReport, log_path: str | None = None) -> None:
    down = result.down
    if result.outcome == "completed":
        say(f"{plan.name} completed: every source finished and every queue drained")
    elif result.outcome == "failed":
        hint = None
        if result.failure and result.failure.startswith("kernel "):
            limit = re.search(r"max_restarts is (\d+)\)$", result.failure)
            hint = f"ringctl logs {plan.name} shows the kernels' output and tracebacks; " + (
                f"its max_restarts ({limit[1]}) is used up: raise `max_restarts` in its "
                "`restart:` if more restarts are right, or fix what makes it fail"
                if limit
                else "a restart policy (restart: {policy: on-failure}) can replace a failed kernel"
            )
        _render.error(str(result.failure), hint)
    elif result.outcome == "interrupted":
        say(f"{plan.name} stopped (interrupted)")
    else:
        say(f"{plan.name} stopped ({result.reason})")
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
    plan: Plan,
    duration: float | None,
    timeout: float,
    engine: str | None,
    address: str | None,
) -> None:
    from ringctl.control.history import clean_if_stale
    from ringctl.control.paths import state_dir
    from ringctl.exceptions import RingctlError, RunFailedError

    try:
        directory = state_dir()
        directory.ensure()
        files = directory.files(plan.name)
    except RingctlError as exc:
        _render.fail(exc)
    if clean_if_stale(files) == "held":
        _render.fail(
            usage_error(
                f"topology {plan.name!r} is already running",
                f"ringctl down {plan.name}, or run a second copy: ringctl up {file} "
                f"--name {plan.name}-2",
            ),
            exit_code=1,
        )
    args = [sys.executable, "-m", "ringctl.cli", "up", str(file), "--no-dashboard",
            "--timeout", str(timeout), "--interval", "5", "--name", plan.name]  # fmt: skip
    if duration is not None:
        args += ["--duration", str(duration)]
    if engine is not None:
        args += ["--engine", engine]
    if address is not None:
        args += ["--address", address]
    try:
        fd = os.open(files.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} ringctl up -d {file}\n".encode())
            log.flush()
            child = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "RINGCTL_DETACHED": "1"},
            )
    except OSError as exc:  # a full disk, say: nothing was started
        _render.fail(
            RunFailedError(
                f"cannot write the log of {plan.name!r} ({files.log}): {exc.strerror or exc}; "
                "nothing was started",
                hint="free some space, or set RINGCTL_STATE_DIR to another directory",
            )
        )
    from ringctl.control.client import ControlClient

    client = ControlClient(files, timeout=2.0)
    deadline = time.monotonic() + 120.0
    while time.monotonic() < deadline:
        code = child.poll()
        if code is not None:
            tail = _log_tail(files.log)
            if code == 0:
                if _stopped_during_launch(directory, plan.name):
                    say(f"{plan.name} was stopped during launch (a down came before it was up); "
                        f"log: {files.log}")  # fmt: skip
                else:
                    say(f"{plan.name} ran to completion before detaching (log: {files.log})")
                raise typer.Exit(0)
            typer.echo(tail, err=True)
            _render.error(f"{plan.name} failed to come up (exit {code}); log: {files.log}")
            raise typer.Exit(1)
        if files.socket.exists():
            try:
                ping = client.request("ping")
            except RingctlError:
                ping = {}
            # Only our own child counts: a twin `up -d` racing this one may hold the name,
            # and then our child is about to exit saying so.
            mine = ping.get("pid") == child.pid
            if mine and ping.get("state") in ("running", "paused", "completed", "draining"):
                say(f"{plan.name} is up (pid {child.pid}); log: {files.log}")
                typer.echo(
                    f"  ringctl ps {plan.name}    ringctl top {plan.name}    "
                    f"ringctl down {plan.name}",
                    err=True,
                )
                return
        time.sleep(0.02)
    _render.error(f"{plan.name} did not come up within 120 s; log: {files.log}")
    raise typer.Exit(1)


def _stopped_during_launch(directory: StateDir, name: str) -> bool:
    """True if the history's last run of ``name`` (``ringctl ps -a``) was stopped during
    its launch."""
    from ringctl.control.history import read_history

    runs = [e for e in read_history(directory) if e.get("name") == name]
    return bool(runs) and "(stopped during launch)" in str(runs[-1].get("reason"))


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def register(app: typer.Typer) -> None:
    app.command()(up)


def _checked_name(name: str) -> str:
    """``--name``: a valid topology name (it names files in the state directory), or exit 2."""
    from ringctl.cli._common import check_name

    checked = check_name(name)
    assert checked is not None
    return checked
