"""Hosting a supervisor in this process: claim the name, listen, handle signals, run.

``ringctl up`` (foreground or the detached child) calls ``serve``. The callbacks are how
the CLI shows progress; this module itself never prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from ringctl.control.paths import StateDir, state_dir
from ringctl.control.server import ControlServer
from ringctl.orchestrator.plan import Plan
from ringctl.orchestrator.supervisor import Progress, RunResult, Supervisor
from ringctl.runtime import output

if TYPE_CHECKING:
    from ringctl.engines.contract import Engine

__all__ = ["serve"]

Tick = Callable[[dict[str, Any]], None]
OnOutput = Callable[[output.OutputRecord], None]

log = logging.getLogger("ringctl.service")


async def serve(
    plan: Plan,
    *,
    duration: float | None = None,
    down_timeout: float = 10.0,
    on_phase: Progress | None = None,
    on_tick: Tick | None = None,
    tick_interval: float = 1.0,
    on_signal: Callable[[str], None] | None = None,
    directory: StateDir | None = None,
    log_path: str | None = None,
    runtime: Engine | None = None,
    control: bool = True,
    supervisor_ready: Callable[[Supervisor], None] | None = None,
    on_output: OnOutput | None = None,
    echo_output: TextIO | None = None,
) -> RunResult:
    """Bring ``plan`` up, serve the control socket, run until done, and clean up.

    SIGINT and SIGTERM start a graceful down; a second SIGINT forces it. The socket and
    pid file are removed on every way out. Raises ``LaunchFailed`` (after the rollback)
    and ``AlreadyRunningError`` before anything starts.

    With the control socket, what kernels print, log and raise goes to the name's
    kernel log (``ringctl logs``), each record also to ``on_output``; ``echo_output``
    gets the kernels' raw output as well. The run's outcome is added to the state
    directory's history (``ringctl ps -a``).
    """
    sup = Supervisor(plan, runtime)
    server: ControlServer | None = None
    if not control:
        return await _serve(sup, duration, down_timeout, on_phase, on_tick, tick_interval,
                            on_signal, supervisor_ready, None)  # fmt: skip
    directory = directory or state_dir()
    directory.ensure()
    files = directory.files(plan.name)
    server = ControlServer(sup, files, log_path=log_path)
    await server.start()  # the name is ours from here: its kernel log and history too
    started = time.time()
    result: RunResult | None = None
    try:
        kernel_log = output.KernelLog(files.kernel_log)
    except OSError as exc:
        log.warning("cannot write the kernel log %s: %s", files.kernel_log, exc)
        kernel_log = None

    def sink(record: output.OutputRecord) -> None:
        if kernel_log is not None:
            kernel_log(record)
        if on_output is not None:
            on_output(record)

    try:
        with output.capture(sink, echo=echo_output):
            result = await _serve(sup, duration, down_timeout, on_phase, on_tick,
                                  tick_interval, on_signal, supervisor_ready, server)  # fmt: skip
        return result
    finally:
        if kernel_log is not None:
            kernel_log.close()
        _record(directory, sup, files.kernel_log, started, result)


def _record(
    directory: StateDir, sup: Supervisor, kernel_log: Any, started: float, result: RunResult | None
) -> None:
    """Add the finished run to the history ``ringctl ps -a`` shows (never raises)."""
    from ringctl.control.history import record_run

    ended = time.time()
    entry = {
        "name": sup.plan.name,
        "file": sup.plan.file,
        "engine": sup.plan.engine,
        "outcome": result.outcome if result is not None else "failed",
        "exit_code": result.exit_code if result is not None else 1,
        "reason": (result.failure or result.reason) if result is not None else sup.failure,
        "started": round(started, 3),
        "ended": round(ended, 3),
        "duration_s": round(ended - started, 3),
        "kernel_log": str(kernel_log),
    }
    try:
        record_run(directory, entry)
    except OSError as exc:
        log.warning("cannot record the run in %s: %s", directory.path, exc)


async def _serve(
    sup: Supervisor,
    duration: float | None,
    down_timeout: float,
    on_phase: Progress | None,
    on_tick: Tick | None,
    tick_interval: float,
    on_signal: Callable[[str], None] | None,
    supervisor_ready: Callable[[Supervisor], None] | None,
    server: ControlServer | None,
) -> RunResult:
    loop = asyncio.get_running_loop()
    interrupts = 0

    def interrupted() -> None:
        nonlocal interrupts
        interrupts += 1
        force = interrupts > 1
        if on_signal is not None:
            on_signal("force" if force else "interrupt")
        sup.request_stop("interrupted", force=force)

    def terminated() -> None:
        if on_signal is not None:
            on_signal("terminate")
        sup.request_stop("terminated")

    installed = []
    for sig, handler in ((signal.SIGINT, interrupted), (signal.SIGTERM, terminated)):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, handler)
            installed.append(sig)
    ticker: asyncio.Task[None] | None = None
    try:
        if supervisor_ready is not None:
            supervisor_ready(sup)
        await sup.up(on_phase)
        if on_tick is not None:
            ticker = asyncio.create_task(_tick(sup, on_tick, tick_interval))
        return await sup.run(duration=duration, down_timeout=down_timeout)
    finally:
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        if not sup.ended:  # cancelled from outside: still leave nothing running
            await sup.runtime.terminate_all(timeout=1.0)
        for sig in installed:
            loop.remove_signal_handler(sig)
        if server is not None:
            await server.close()
        await sup.runtime.close()


async def _tick(sup: Supervisor, on_tick: Tick, interval: float) -> None:
    while not sup.ended:
        await asyncio.sleep(interval)
        if not sup.ended:
            on_tick(sup.status())
