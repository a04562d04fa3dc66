"""Hosting a supervisor in this process: claim the name, listen, watch the loop, handle
signals, run.

``ringctl up`` (foreground or the detached child) calls ``serve``. The callbacks are how
the CLI shows progress; this module itself never prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ringctl.control.paths import StateDir, state_dir
from ringctl.control.server import ControlServer
from ringctl.control.target import Progress as DownProgress
from ringctl.orchestrator.plan import Plan
from ringctl.orchestrator.supervisor import Progress, RunResult, Supervisor
from ringctl.orchestrator.watchdog import LoopWatchdog

if TYPE_CHECKING:
    from ringctl.engines.contract import Engine

__all__ = ["SupervisorTarget", "serve"]

log = logging.getLogger("ringctl.service")

Tick = Callable[[dict[str, Any]], None]
#: The control server answers from the last published status while the kernels' loop is
#: blocked: publish one this often, so that one is never older than this when a block starts.
PUBLISH_EVERY_S = 0.5
#: The signals that start a graceful down. A second SIGINT forces it.
_STOP_SIGNALS = {
    signal.SIGINT: "interrupt",
    signal.SIGTERM: "terminate",
    signal.SIGHUP: "hangup",
}


class SupervisorTarget:
    """A ``Supervisor`` as the control server sees it (``ringctl.control.target``)."""

    def __init__(self, sup: Supervisor, watchdog: LoopWatchdog | None = None) -> None:
        self.sup = sup
        self.watchdog = watchdog

    @property
    def name(self) -> str:
        return self.sup.plan.name

    @property
    def file(self) -> str | None:
        return self.sup.plan.file

    @property
    def state(self) -> str:
        return self.sup.state

    @property
    def ended(self) -> bool:
        return self.sup.ended

    @property
    def uptime_s(self) -> float:
        return self.sup.uptime_s

    def loop_report(self) -> dict[str, Any] | None:
        return self.watchdog.report() if self.watchdog is not None else None

    def status(self) -> dict[str, Any]:
        return self.sup.status()

    # After each command a fresh status is built, and so published: a `ps` right after
    # it shows its effect even if the kernels' loop is slow to answer that `ps`.

    async def pause(self, kernels: list[str] | None) -> dict[str, Any]:
        paused = await self.sup.pause(kernels)
        self.sup.status(fresh=True)
        return {"paused": paused, "state": self.sup.state}

    async def resume(self, kernels: list[str] | None) -> dict[str, Any]:
        resumed = await self.sup.resume(kernels)
        self.sup.status(fresh=True)
        return {"resumed": resumed, "state": self.sup.state}

    async def down(self, timeout: float, progress: DownProgress) -> dict[str, Any]:
        report = await self.sup.down(timeout, progress)
        self.sup.status(fresh=True)
        return {"state": self.sup.state, **report.as_dict()}


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

    SIGINT, SIGTERM and SIGHUP start a graceful down; a second SIGINT forces it
    (``on_signal`` hears ``interrupt``, ``terminate``, ``hangup`` or ``force``). The
    socket, pid and lock files are removed on every way out. Raises ``LaunchFailed``
    (after the rollback) and ``AlreadyRunningError`` before anything starts.
    """
    loop = asyncio.get_running_loop()
    sup = Supervisor(plan, runtime)
    watchdog = LoopWatchdog(loop, on_block=lambda text: sup.event("failure", text))
    server: ControlServer | None = None
    if control:
        directory = directory or state_dir()
        directory.ensure()
        server = ControlServer(
            SupervisorTarget(sup, watchdog), directory.files(plan.name), log_path=log_path
        )
    interrupts = 0

    def stop_signal(kind: str) -> None:
        nonlocal interrupts
        if kind == "interrupt":
            interrupts += 1
            if interrupts > 1:
                kind = "force"
        if on_signal is not None:
            on_signal(kind)
        reason = {"interrupt": "interrupted", "force": "interrupted"}.get(kind, "terminated")
        sup.request_stop(reason, force=kind == "force")

    # Before the socket exists: whoever sees it may signal us at once.
    installed = []
    for sig, kind in _STOP_SIGNALS.items():
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop_signal, kind)
            installed.append(sig)
    try:
        if server is not None:
            await server.start()
            sup.on_status(server.publish)
    except BaseException:
        for sig in installed:
            loop.remove_signal_handler(sig)
        raise
    beating = loop.create_task(watchdog.heartbeat(), name="ringctl-watchdog-heartbeat")
    ticker: asyncio.Task[None] | None = None
    publisher: asyncio.Task[None] | None = None
    try:
        if supervisor_ready is not None:
            supervisor_ready(sup)
        await sup.up(on_phase)
        if server is not None:
            publisher = loop.create_task(_publish(sup), name="ringctl-status-publisher")
        if on_tick is not None:
            ticker = loop.create_task(_tick(sup, on_tick, tick_interval), name="ringctl-ticker")
        return await sup.run(duration=duration, down_timeout=down_timeout)
    finally:
        for task in (ticker, publisher, beating):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if not sup.ended:  # cancelled from outside: still leave nothing running
            await sup.runtime.terminate_all(timeout=1.0)
        for sig in installed:
            loop.remove_signal_handler(sig)
        if server is not None:
            await server.close()
        await sup.runtime.close()


async def _publish(sup: Supervisor) -> None:
    """Build a status every ``PUBLISH_EVERY_S`` (``Supervisor.status`` hands each one to
    the control server), so ``ps`` has a recent one even while a kernel blocks the loop."""
    while not sup.ended:
        sup.status()
        await asyncio.sleep(PUBLISH_EVERY_S)


async def _tick(sup: Supervisor, on_tick: Tick, interval: float) -> None:
    """Hand a status to ``on_tick`` every ``interval``. A tick that cannot be written (a
    full disk under stdout) is counted and reported once; the kernels go on."""
    lost = 0
    while not sup.ended:
        await asyncio.sleep(interval)
        if sup.ended:
            break
        try:
            on_tick(sup.status())
        except OSError as exc:
            lost += 1
            if lost == 1:
                why = exc.strerror or str(exc)
                sup.event("failure", f"progress output lost ({why}); the run goes on")
                log.warning("progress output lost (%s); later losses are only counted", why)
    if lost:
        log.warning("%d progress lines were lost", lost)
