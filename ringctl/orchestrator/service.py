"""Hosting a supervisor in this process: claim the name, listen, watch the loop, handle
signals, run.

``ringctl up`` (foreground or the detached child) calls ``serve``. The callbacks are how
the CLI shows progress; this module itself never prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO, cast

from ringctl.control.paths import StateDir, state_dir
from ringctl.control.server import ControlServer
from ringctl.control.target import Progress, Tap
from ringctl.engine.local import output
from ringctl.orchestrator.plan import Plan
from ringctl.orchestrator.supervisor import RunResult, Supervisor
from ringctl.orchestrator.watchdog import LoopWatchdog

if TYPE_CHECKING:
    from ringctl.engine.contract import Engine
    from ringctl.engine.local.ports import Tap as EngineTap

__all__ = ["SupervisorTarget", "serve"]

Tick = Callable[[dict[str, Any]], None]
OnOutput = Callable[[output.OutputRecord], None]

log = logging.getLogger("ringctl.service")
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

    def stop_within(self, seconds: float) -> None:
        self.sup.stop_within(seconds)

    async def down(self, timeout: float, progress: Progress) -> dict[str, Any]:
        report = await self.sup.down(timeout, progress)
        self.sup.status(fresh=True)
        return {"state": self.sup.state, **report.as_dict()}

    async def restart(self, kernels: list[str], timeout: float) -> dict[str, Any]:
        restarted = await self.sup.restart(kernels, timeout)
        self.sup.status(fresh=True)
        return {"restarted": restarted, "state": self.sup.state}

    async def scale(self, kernel: str, replicas: int, timeout: float) -> dict[str, Any]:
        result = await self.sup.scale(kernel, replicas, timeout)
        self.sup.status(fresh=True)
        return result

    async def apply(self, file: str, dry_run: bool, timeout: float) -> dict[str, Any]:
        from ringctl.orchestrator.applying import load_for_apply

        # Reading the file imports its kernels: not on the loop they share.
        new, _, source = await asyncio.to_thread(load_for_apply, file, self.sup.plan)
        return await self.sup.apply(new, file, source=source, dry_run=dry_run, timeout=timeout)

    @property
    def applied(self) -> dict[str, Any] | None:
        applied, drift = self.sup.applied, self.sup.drift
        at = applied.at if applied is not None else None
        return {"at": at, "file": self.sup.plan.file, "drift": list(drift)}

    def tap(self, kernel: str, port: str) -> Tap:
        tap: Tap = self.sup.tap(kernel, port)
        return tap

    def untap(self, kernel: str, port: str, tap: Tap) -> None:
        # Every tap the control plane holds came from ``tap`` above: the engine's own.
        self.sup.untap(kernel, port, cast("EngineTap", tap))


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
    engine: Engine | None = None,
    control: bool = True,
    supervisor_ready: Callable[[Supervisor], None] | None = None,
    on_output: OnOutput | None = None,
    echo_output: TextIO | None = None,
) -> RunResult:
    """Bring ``plan`` up, serve the control socket, run until done, and clean up.

    SIGINT, SIGTERM and SIGHUP start a graceful down; a second SIGINT forces it
    (``on_signal`` hears ``interrupt``, ``terminate``, ``hangup`` or ``force``). The
    socket, pid and lock files are removed on every way out. Raises ``LaunchFailed``
    (after the rollback) and ``AlreadyRunningError`` before anything starts.

    With the control socket, what kernels print, log and raise goes to the name's
    kernel log (``ringctl logs``), each record also to ``on_output``; ``echo_output``
    gets the kernels' raw output as well. The run's outcome is added to the state
    directory's history (``ringctl ps -a``).
    """
    loop = asyncio.get_running_loop()
    sup = Supervisor(plan, engine)
    watchdog = LoopWatchdog(loop, on_block=sup.loop_blocked)
    # Before the socket exists: whoever sees it may signal us at once.
    signals = _Signals(loop, sup, on_signal)
    if not control:
        try:
            return await _serve(sup, duration, down_timeout, on_phase, on_tick,
                                tick_interval, signals, supervisor_ready, watchdog)  # fmt: skip
        finally:
            await sup.runtime.close()
    try:
        directory = directory or state_dir()
        directory.ensure()
        files = directory.files(plan.name)
        server = ControlServer(SupervisorTarget(sup, watchdog), files, log_path=log_path)
        await server.start()  # the name is ours from here: its kernel log and history too
    except BaseException:
        signals.remove()
        raise
    sup.on_status(server.publish)
    started = time.time()
    result: RunResult | None = None
    try:
        kernel_log = output.KernelLog(files.kernel_log)
    except OSError as exc:
        log.warning("cannot write the kernel log %s: %s", files.kernel_log, exc)
        kernel_log = None

    def sink(record: output.OutputRecord) -> None:
        if record.stream == "warning":  # a kernel's mistake Python only warns about
            sup.event("warning", f"{record.kernel}: {record.text}")
        if kernel_log is not None:
            kernel_log(record)
        if on_output is not None:
            on_output(record)

    try:
        with output.capture(sink, echo=echo_output):
            result = await _serve(sup, duration, down_timeout, on_phase, on_tick,
                                  tick_interval, signals, supervisor_ready, watchdog,
                                  publish=True)  # fmt: skip
        return result
    finally:
        if kernel_log is not None:
            kernel_log.close()
        # The outcome is in the history before the engine is closed: closing Ray after
        # its node died can end this process (Ray exits a driver whose raylet is gone),
        # and the run must not vanish without a word.
        _record(directory, sup, files.kernel_log, started, result)
        try:
            await server.close()
        finally:
            await sup.runtime.close()


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
        "pid": os.getpid(),
        "launch_stopped": result is not None and result.launch_stopped,
    }
    try:
        record_run(directory, entry)
    except OSError as exc:
        log.warning("cannot record the run in %s: %s", directory.path, exc)


class _Signals:
    """SIGINT, SIGTERM and SIGHUP start a graceful down; a second SIGINT forces it.

    Plain Python signal handlers, not the loop's: they run in the main thread between
    two steps of whatever runs there, so a kernel that holds the event loop cannot delay
    a forced stop. The handler itself only stops the kernels (``Engine.stop_now``, flag
    writes) and hands the rest to the loop.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sup: Supervisor,
        on_signal: Callable[[str], None] | None,
    ) -> None:
        self.loop, self.sup, self.on_signal = loop, sup, on_signal
        self.interrupts = 0
        # The handler interrupts whatever runs, a kernel's task too: what it hands the
        # loop runs in this context, not the kernel's (whose output is the kernel's).
        self.context = contextvars.copy_context()
        self.installed: list[tuple[signal.Signals, Any]] = []
        for sig, kind in _STOP_SIGNALS.items():
            with contextlib.suppress(ValueError, OSError):  # not the main thread
                old = signal.signal(sig, functools.partial(self._handler, kind))
                self.installed.append((sig, old))

    def _handler(self, kind: str, _signum: int, _frame: Any) -> None:
        if kind == "interrupt":
            self.interrupts += 1
            if self.interrupts > 1:
                kind = "force"
                self.sup.runtime.stop_now()
        with contextlib.suppress(RuntimeError):  # the loop has closed
            self.loop.call_soon_threadsafe(self._received, kind, context=self.context)

    def _received(self, kind: str) -> None:
        if self.on_signal is not None:
            self.on_signal(kind)
        reason = "interrupted" if kind in ("interrupt", "force") else "terminated"
        self.sup.request_stop(reason, force=kind == "force")

    def remove(self) -> None:
        for sig, old in self.installed:
            signal.signal(sig, old)
        self.installed = []


async def _serve(
    sup: Supervisor,
    duration: float | None,
    down_timeout: float,
    on_phase: Progress | None,
    on_tick: Tick | None,
    tick_interval: float,
    signals: _Signals,
    supervisor_ready: Callable[[Supervisor], None] | None,
    watchdog: LoopWatchdog,
    *,
    publish: bool = False,
) -> RunResult:
    loop = asyncio.get_running_loop()
    beating = loop.create_task(watchdog.heartbeat(), name="ringctl-watchdog-heartbeat")
    ticker: asyncio.Task[None] | None = None
    publisher: asyncio.Task[None] | None = None
    try:
        if supervisor_ready is not None:
            supervisor_ready(sup)
        await sup.up(on_phase)
        if publish:
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
        signals.remove()


async def _publish(sup: Supervisor) -> None:
    """Build a status every ``PUBLISH_EVERY_S`` (``Supervisor.status`` hands each one to
    the control server), so ``ps`` has a recent one even while a kernel blocks the loop."""
    while not sup.ended:
        started = time.perf_counter()
        sup.status()
        # A document of thousands of kernels takes a while to build: never spend more
        # than a tenth of the kernels' loop on it.
        await asyncio.sleep(max(PUBLISH_EVERY_S, 9 * (time.perf_counter() - started)))


async def _tick(sup: Supervisor, on_tick: Tick, interval: float) -> None:
    """Hand a status to ``on_tick`` every ``interval``. A tick that cannot be written (a
    full disk under stdout) is counted and reported once; the kernels go on."""
    lost = 0
    while not sup.ended:
        await asyncio.sleep(interval)
        if sup.ended:
            break
        try:
            # The document published last will do if it is recent: one of thousands of
            # kernels is not built twice a tick.
            on_tick(sup.status(max_age=min(1.0, interval / 2)))
        except OSError as exc:
            lost += 1
            if lost == 1:
                why = exc.strerror or str(exc)
                sup.event("failure", f"progress output lost ({why}); the run goes on")
                log.warning("progress output lost (%s); later losses are only counted", why)
    if lost:
        log.warning("%d progress lines were lost", lost)
