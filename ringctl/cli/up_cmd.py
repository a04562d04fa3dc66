"""``ringctl up``: validate, launch in two phases, run with a dashboard or plain lines.

Foreground runs host the supervisor in this process; ``-d`` starts it as its own
process (new session, output to a log in the state directory) and returns once every
kernel is ACTIVE.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ringctl.cli import _render
from ringctl.cli._common import EngineChoice, load_topology, say, usage_error

if TYPE_CHECKING:
    from ringctl.api import RunReport, TopologyFile
    from ringctl.orchestrator.plan import Plan


def up(
    file: Annotated[Path, typer.Argument(help="The topology file.", show_default=False)],
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Run the supervisor in the background.")
    ] = False,
    duration: Annotated[
        float | None,
        typer.Option(help="Run this many seconds, then down gracefully.", min=0),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(help="Seconds the final drain (and each kernel) gets before a force stop."),
    ] = 10.0,
    no_dashboard: Annotated[
        bool,
        typer.Option(
            "--no-dashboard", help="Plain progress lines (the default when not a terminal)."
        ),
    ] = False,
    interval: Annotated[
        float, typer.Option(help="Seconds between plain progress lines.", min=0.05)
    ] = 2.0,
    json_stream: Annotated[
        bool, typer.Option("--json-stream", help="One JSON status document per interval.")
    ] = False,
    refresh: Annotated[float, typer.Option(help="Dashboard redraws per second.", min=0.1)] = 4.0,
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
) -> None:
    """Launch a topology in two phases, in dependency order, and run it.

    Runs until Ctrl-C, `ringctl down`, --duration, or completion (every source returned
    and every queue drained: exit 0).
    """
    from ringctl.exceptions import RingctlError

    topology = load_topology(file, engine)
    plan = topology.plan
    if detach:
        _detach(file, plan, duration, timeout, engine, address)
        return
    from ringctl.control.paths import state_dir

    log_path = str(state_dir().files(plan.name).log)
    if not os.environ.get("RINGCTL_DETACHED"):
        # The child of `up -d` already writes everything to this log. In the foreground,
        # kernel tracebacks go there too, so they never scribble over the dashboard;
        # the screen gets one line per failure.
        _log_to_file(log_path)
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
        )
    except RingctlError as exc:
        _render.fail(exc)
    _report_result(plan, result, log_path)
    if result.down is not None and result.down.refused:
        # A kernel that swallowed cancellation may still hold a thread (an executor call,
        # a C library): leave now rather than wait for it at interpreter exit.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(result.exit_code)
    raise typer.Exit(result.exit_code)


def _log_to_file(path: str) -> None:
    import logging
    from pathlib import Path

    Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handler = logging.FileHandler(path, delay=True)  # no file unless something is logged
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("ringctl")
    logger.addHandler(handler)
    logger.propagate = False


def _print_summary(status: dict[str, Any]) -> None:
    """The run's totals, one line per kernel, with what each kernel put in ctx.metrics."""
    from ringctl.dashboard import human_count

    for k in status.get("kernels", []):
        metrics = " ".join(f"{key}={value}" for key, value in (k.get("metrics") or {}).items())
        line = (
            f"  {k['id']:<16} in {human_count(k['messages_in']):>7}  "
            f"out {human_count(k['messages_out']):>7}  errors {k['errors']}  "
            f"drops {k['drops']}  restarts {k['restarts']}"
        )
        unprocessed = "".join(f"  {term} {k[term]}" for term in ("lost", "left") if k.get(term))
        typer.echo(line + unprocessed + (f"  {metrics}" if metrics else ""), err=True)
    accounting = status.get("accounting")
    if accounting:
        t = accounting.get("totals", {})
        typer.echo(
            f"  accounting: accepted {t.get('accepted', 0)} = delivered "
            f"{t.get('delivered', 0)} + dropped {t.get('dropped', 0)} + lost "
            f"{t.get('lost', 0)} + left {t.get('left', 0)}",
            err=True,
        )


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
) -> RunReport:
    import asyncio

    from ringctl.api import RunHooks
    from ringctl.runtime.loop import run

    plan = topology.plan

    latest: dict[str, Any] = {}

    def on_phase(phase: dict[str, Any]) -> None:
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

        line = json_line(status) if json_stream else plain_line(status)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def on_signal(kind: str) -> None:
        if dashboard:
            return
        if kind == "force":
            say("second interrupt: forcing the stop")
        else:
            say("stopping: draining queues (Ctrl-C again to force)")

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
                ),
            )
        finally:
            if viewer is not None:
                await viewer  # it draws the last frame once the supervisor has ended

    async def _dashboard(sup: Any) -> None:
        from ringctl.dashboard.live import run_live_async
        from ringctl.dashboard.plain import StopReason

        # Drawn on the supervisor's own loop, not in a thread: see run_live_async.
        reason = await run_live_async(
            sup.status, refresh_per_second=refresh, should_stop=lambda: sup.ended
        )
        if reason is StopReason.QUIT and not sup.ended:
            sup.request_stop("interrupted")

    try:
        result = run(main())
    finally:
        if metrics is not None:
            metrics.stop()
    if result.status:
        _print_summary(result.status)
    return result


def _report_result(plan: Plan, result: RunReport, log_path: str | None = None) -> None:
    down = result.down
    if result.outcome == "completed":
        say(f"{plan.name} completed: every source finished and every queue drained")
    elif result.outcome == "failed":
        where = f"in {log_path}" if log_path else "in the log"
        hint = None
        if result.failure and result.failure.startswith("kernel "):
            hint = (
                f"the kernel's traceback is {where}; a restart policy "
                "(restart: {policy: on-failure}) can replace a failed kernel"
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
    from ringctl.control.paths import state_dir

    directory = state_dir()
    directory.ensure()
    files = directory.files(plan.name)
    if files.clean_if_stale() == "held":
        _render.fail(
            usage_error(
                f"topology {plan.name!r} is already running",
                f"ringctl down {plan.name}, or ringctl ps {plan.name}",
            ),
            exit_code=1,
        )
    args = [sys.executable, "-m", "ringctl.cli", "up", str(file), "--no-dashboard",
            "--timeout", str(timeout), "--interval", "5"]  # fmt: skip
    if duration is not None:
        args += ["--duration", str(duration)]
    if engine is not None:
        args += ["--engine", engine]
    if address is not None:
        args += ["--address", address]
    with open(files.log, "ab") as log:
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
    from ringctl.control.client import ControlClient
    from ringctl.exceptions import RingctlError

    client = ControlClient(files, timeout=2.0)
    deadline = time.monotonic() + 120.0
    while time.monotonic() < deadline:
        code = child.poll()
        if code is not None:
            tail = _log_tail(files.log)
            if code == 0:
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


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def register(app: typer.Typer) -> None:
    app.command()(up)
