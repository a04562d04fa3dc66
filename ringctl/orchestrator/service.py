"""Hosting a supervisor in this process: claim the name, listen, handle signals, run.

``ringctl up`` (foreground or the detached child) calls ``serve``. The callbacks are how
the CLI shows progress; this module itself never prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ringctl.control.paths import StateDir, state_dir
from ringctl.control.server import ControlServer
from ringctl.orchestrator.plan import Plan
from ringctl.orchestrator.supervisor import Progress, RunResult, Supervisor

if TYPE_CHECKING:
    from ringctl.engines.contract import Engine

__all__ = ["serve"]

Tick = Callable[[dict[str, Any]], None]


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
) -> RunResult:
    """Bring ``plan`` up, serve the control socket, run until done, and clean up.

    SIGINT and SIGTERM start a graceful down; a second SIGINT forces it. The socket and
    pid file are removed on every way out. Raises ``LaunchFailed`` (after the rollback)
    and ``AlreadyRunningError`` before anything starts.
    """
    sup = Supervisor(plan, runtime)
    server: ControlServer | None = None
    if control:
        directory = directory or state_dir()
        directory.ensure()
        server = ControlServer(sup, directory.files(plan.name), log_path=log_path)
        await server.start()
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
