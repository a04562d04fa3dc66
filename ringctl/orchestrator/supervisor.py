"""The supervisor: brings a plan up in two phases, watches it, restarts, drains it down.

It is the only code that waits: every decision (restart and backoff, completion, stop,
force, the exit code) is made by its ``Policy`` (``ringctl.orchestrator.policy``), which
it hands events and whose instructions it carries out. It drives an ``Engine`` (the local
runtime or the Ray engine), never prints, and reports through
``status()`` (the ``ringctl ps --json`` document), the events it records, and the
``RunResult`` of a run, whose exit code follows the accounting law
(``ringctl.engine.accounting``): 0 only when every accepted message was delivered or
dropped by a policy the topology chose.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ringctl._printable import few
from ringctl.control.target import Progress
from ringctl.engine.contract import require
from ringctl.engine.lifecycle import RUNNING, KernelState
from ringctl.exceptions import (
    ControlPlaneError,
    KernelStateError,
    RingctlError,
    RunFailedError,
    UserInputError,
)
from ringctl.orchestrator.applying import launch
from ringctl.orchestrator.drift import FileWatch, drift
from ringctl.orchestrator.plan import Plan
from ringctl.orchestrator.policy import (
    Activated,
    CloseInbox,
    DownFacts,
    DrainTimedOut,
    Event,
    ForceNow,
    KernelEnded,
    LaunchStopped,
    LoopBlocked,
    Note,
    Outcome,
    Policy,
    RestartAt,
    Restarted,
    RestartFailed,
    RestartStarted,
    StopRequested,
    StopRun,
    Tick,
)
from ringctl.orchestrator.states import TopologyState, next_topology_state

if TYPE_CHECKING:
    from ringctl.engine.accounting import Accounting
    from ringctl.engine.contract import Engine
    from ringctl.engine.local.ports import Tap
    from ringctl.orchestrator.applying import Applied

__all__ = ["DownReport", "LaunchFailed", "RunResult", "Supervisor"]

log = logging.getLogger("ringctl.supervisor")

S = KernelState
T = TopologyState
_LIVE: Final = (T.RUNNING, T.PAUSED)
#: How often the supervisor looks for completion when nothing else woke it.
TICK_S: Final = 0.02
#: A status document is rebuilt at most this often, however many watchers ask.
STATUS_MAX_AGE_S: Final = 0.05
#: Without a wake-up, how often the watch loop still looks at every kernel's state.
LOOK_EVERY_S: Final = 0.5


class LaunchFailed(RunFailedError):
    """Phase 1 failed: everything launched so far was terminated and nothing was activated."""

    def __init__(self, kernel_id: str, cause: BaseException, rolled_back: list[str]) -> None:
        self.kernel_id = kernel_id
        self.cause = cause
        self.rolled_back = rolled_back
        reason = getattr(cause, "reason", None) or getattr(cause, "message", None) or str(cause)
        undone = ", ".join(rolled_back) if rolled_back else "nothing else was launched"
        super().__init__(
            f"launch of kernel {kernel_id!r} failed: {reason}; rolled back ({undone}), "
            "nothing was activated",
            hint=getattr(cause, "hint", None),
        )


@dataclass(frozen=True, slots=True)
class DownReport:
    """What a drain-and-terminate did. ``left`` names every kernel that lost messages."""

    graceful: bool
    seconds: float
    left: dict[str, int] = field(default_factory=dict)
    forced: tuple[str, ...] = ()
    #: Kernels that swallowed cancellation: abandoned, named, never waited for again.
    refused: tuple[str, ...] = ()

    @property
    def messages_left(self) -> int:
        return sum(self.left.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "graceful": self.graceful,
            "seconds": round(self.seconds, 3),
            "messages_left": self.messages_left,
            "left": dict(self.left),
            "forced": list(self.forced),
            "refused": list(self.refused),
        }


@dataclass(frozen=True, slots=True)
class RunResult:
    outcome: Outcome
    exit_code: int
    reason: str
    down: DownReport | None = None
    failure: str | None = None
    #: The accounting law's terms at the end of the run (None if it never started).
    accounting: Accounting | None = None
    #: A stop came before every kernel was up: the launch was rolled back.
    launch_stopped: bool = False


class Supervisor:
    """Owns one running topology: its engine, its restarts and its way down."""

    def __init__(self, plan: Plan, engine: Engine | None = None) -> None:
        self._plan = plan
        if engine is None:
            from ringctl.engine import make_engine

            engine = make_engine(plan.engine)
        self.runtime: Engine = engine
        self._state = T.CREATED
        self._history: list[str] = [str(T.CREATED)]
        self.phase: dict[str, Any] | None = None
        self.events: deque[dict[str, Any]] = deque(maxlen=100)
        self.timings: dict[str, float] = {}
        self.down_report: DownReport | None = None
        self.accounting: Accounting | None = None
        self._started = time.monotonic()
        self._lock = asyncio.Lock()  # control commands run one at a time
        self._wake = asyncio.Event()  # a kernel terminated, or a stop was asked for
        self._hurry = asyncio.Event()  # down: pending restarts happen now
        self._ended = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Every decision about the run (restarts, backoff, stop, the exit code).
        self.policy = Policy({k.id: k.restart for k in plan.kernels}, self._started)
        # kernel waiting out its backoff -> (set it: restart now, the task restarting it)
        self._backoff: dict[str, tuple[asyncio.Event, asyncio.Task[None]]] = {}
        self._launch: asyncio.Task[Any] | None = None  # phase 1 and 2, while they run
        self._bounds: list[threading.Timer] = []  # see stop_within
        self._loop: asyncio.AbstractEventLoop | None = None
        self._status_cache: tuple[float, dict[str, Any]] | None = None
        self._phase_started = time.perf_counter()
        self._publishers: list[Callable[[dict[str, Any]], None]] = []
        #: The last ``ringctl apply`` (None: the topology runs as ``up`` started it), and
        #: how the running kernels differ from their file (read by ``ping``).
        self.applied: Applied | None = None
        self.drift: list[str] = []
        self.file_watch = FileWatch(plan.file)
        self.runtime.add_listener(self._on_state_change)

    # -- bookkeeping ---------------------------------------------------------------------

    @property
    def plan(self) -> Plan:
        return self._plan

    @plan.setter
    def plan(self, plan: Plan) -> None:
        """A new plan (``ringctl apply``): its restart policies from now on."""
        self._plan = plan
        self.policy.rules = {k.id: k.restart for k in plan.kernels}

    @property
    def failure(self) -> str | None:
        return self.policy.failure

    def _decide(self, event: Event) -> None:
        """Hand ``event`` to the policy and carry out what it says."""
        for step in self.policy.handle(event, time.monotonic()):
            match step:
                case Note(kind, text):
                    self.event(kind, text)
                case RestartAt(kernel, _at, delay):
                    now = asyncio.Event()
                    task = asyncio.get_running_loop().create_task(self._restart(kernel, delay, now))
                    self._backoff[kernel] = (now, task)
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                case CloseInbox(kernel):
                    lost = self.runtime.close_inbox(kernel, "lost")
                    if lost:
                        self.event(
                            "failure", f"{lost} messages queued for {kernel} will not be processed"
                        )
                case StopRun():
                    self._wake.set()
                case ForceNow():
                    # From any thread, whatever holds the loop: each kernel stops after
                    # the message in hand; what is queued stays, and is counted left.
                    self.runtime.stop_now()
                    self._wake.set()
        self._status_cache = None

    def loop_blocked(self, text: str) -> None:
        """The watchdog saw the kernels' loop held; ``text`` names the holder."""
        self._decide(LoopBlocked(text))

    @property
    def state(self) -> TopologyState:
        return self._state

    def _set_state(self, new: TopologyState) -> None:
        if new is self._state:
            return
        self._state = next_topology_state(self._state, new, self._history)
        self._history.append(str(new))
        self._status_cache = None

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self._started

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    def forget_status(self) -> None:
        """The next status document is built anew (the kernels changed)."""
        self._status_cache = None

    async def cancel_backoff(self, kernel_id: str) -> None:
        """A kernel waiting out its restart backoff is not brought back."""
        pending = self._backoff.pop(kernel_id, None)
        if pending is not None:
            pending[1].cancel()
            await asyncio.gather(pending[1], return_exceptions=True)

    def event(self, kind: str, text: str) -> None:
        self.events.append({"t": round(self.uptime_s, 3), "kind": kind, "text": text})

    def _on_state_change(self, kernel_id: str, old: KernelState, new: KernelState) -> None:
        if new is S.TERMINATED:
            self._wake.set()  # level-triggered: the watch loop looks at every kernel

    # -- phase 1 and phase 2 -------------------------------------------------------------

    async def up(self, progress: Progress | None = None) -> None:
        """Launch every kernel in order, wire the queues, then activate in the same order.

        A launch failure terminates what was launched so far and raises ``LaunchFailed``.
        """
        self._loop = asyncio.get_running_loop()
        self._set_state(T.STARTING)
        launched: list[str] = []
        self._launch = asyncio.get_running_loop().create_task(self._bring_up(launched, progress))
        try:
            await self._launch
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if (task is not None and task.cancelling()) or not self.policy.stopping:
                raise  # cancelled from outside, not by a stop
            await self._roll_back(launched)
        finally:
            self._launch = None

    async def _roll_back(self, launched: list[str]) -> None:
        """A stop came during the launch: terminate what was launched, account, report."""
        t0 = time.monotonic()
        self._decide(LaunchStopped(tuple(launched)))
        reports = await self.runtime.terminate_all(timeout=2.0)
        left = {r.kernel_id: r.left_in_inbox for r in reports if r.left_in_inbox}
        for kid in launched:
            if swept := self.runtime.close_inbox(kid, "left"):
                left[kid] = left.get(kid, 0) + swept
        self.accounting = self.runtime.accounting()
        forced = tuple(r.kernel_id for r in reports if r.forced)
        refused = tuple(self.runtime.refused)
        graceful = not left and not forced and not refused
        self.down_report = DownReport(graceful, time.monotonic() - t0, left, forced, refused)
        self.phase = None
        self._set_state(T.STOPPED)
        self._ended.set()
        self._wake.set()

    async def _bring_up(self, launched: list[str], progress: Progress | None) -> None:
        plan, rt = self.plan, self.runtime
        t0 = time.perf_counter()
        self._set_phase("launch", 0, len(plan.kernels), progress)
        current = plan.kernels[0].id if plan.kernels else ""
        try:
            for n, k in enumerate(plan.kernels, 1):
                current = k.id
                await launch(rt, k)
                launched.append(k.id)
                self._set_phase("launch", n, len(plan.kernels), progress)
                # A set-up hook may hold the loop for seconds: let a live view draw the
                # progress between kernels rather than only once phase 2 is done.
                await asyncio.sleep(0)
            for e in plan.edges:
                current = e.producer
                rt.connect(
                    e.producer,
                    e.consumer,
                    port=e.port,
                    capacity=e.capacity,
                    backpressure=e.backpressure,
                    fanout=e.fanout,
                )
        except Exception as exc:  # a RingctlError or a kernel's own bug: roll back either way
            await rt.terminate_all(timeout=2.0)
            self._set_state(T.FAILED)
            self.policy.failure = f"launch of {current!r} failed: {exc}"
            self.event("failure", self.policy.failure)
            self._ended.set()
            raise LaunchFailed(current, exc, launched) from exc
        self.timings["launch_s"] = time.perf_counter() - t0
        self.event("info", f"phase 1: {len(launched)} kernels launched")
        t1 = time.perf_counter()
        self._set_phase("activate", 0, len(plan.kernels), progress)
        for n, k in enumerate(plan.kernels, 1):
            await rt.activate(k.id)
            self._decide(Activated(k.id))
            self._set_phase("activate", n, len(plan.kernels), progress)
        self.timings["activate_s"] = time.perf_counter() - t1
        self.phase = None
        self._set_state(T.RUNNING)
        self.event("info", f"phase 2: {len(plan.kernels)} kernels active")

    def _set_phase(self, name: str, done: int, total: int, progress: Progress | None) -> None:
        if self.phase is None or self.phase.get("name") != name:
            self._phase_started = time.perf_counter()
        elapsed = round(time.perf_counter() - self._phase_started, 6)
        self.phase = {
            "name": name, "done": done, "total": total, "waiting_on": [], "elapsed_s": elapsed,
        }  # fmt: skip
        if progress is not None:
            progress(dict(self.phase))

    # -- running -------------------------------------------------------------------------

    async def run(self, *, duration: float | None = None, down_timeout: float = 10.0) -> RunResult:
        """Watch the running topology until completion, a stop request, duration or failure."""
        deadline = None if duration is None else time.monotonic() + duration
        looked = 0.0
        try:
            while not self._ended.is_set():
                woken = False
                with contextlib.suppress(TimeoutError):
                    woken = await asyncio.wait_for(self._wake.wait(), TICK_S)
                self._wake.clear()
                if self._ended.is_set():
                    break
                # Level-triggered: every kernel that terminated since the last look is
                # handled, however many wake-ups were merged. Each look costs a pass over
                # every kernel, so without a wake-up it is only a safety net.
                now = time.monotonic()
                if woken or now - looked >= LOOK_EVERY_S:
                    looked = now
                    self._check_finished()
                if deadline is not None and now >= deadline:
                    self._decide(StopRequested(f"--duration {duration:g}s elapsed"))
                if not self.policy.stopping:
                    done = self._sources_done()  # quiet only matters once they are done
                    self._decide(Tick(done, done and self.runtime.is_quiescent()))
                if self.policy.stopping:
                    break
            if not self._ended.is_set():
                await self.down(down_timeout)
        finally:
            await self._cancel_tasks()
        return self._result()

    def _sources_done(self) -> bool:
        return all(self.runtime.get_state(s) is S.TERMINATED for s in self.plan.sources)

    def _check_finished(self) -> None:
        """Hand the policy every kernel instance that terminated."""
        for kernel_id in self.plan.order:
            if self.runtime.get_state(kernel_id) is not S.TERMINATED:
                continue
            info = self.runtime.get_info(kernel_id)
            if info.state is S.TERMINATED:
                self._decide(KernelEnded(kernel_id, info.restarts, info.error, info.completed))

    async def _restart(self, kernel_id: str, delay: float, now: asyncio.Event) -> None:
        try:
            # Cut short by down (the kernel must drain) or by a restart command.
            waits = [asyncio.ensure_future(e.wait()) for e in (self._hurry, now)]
            try:
                await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()
            if self._state not in (*_LIVE, T.DRAINING):
                return
            # No command lock: down() holds it while it waits for this very restart to
            # drain the kernel's inbox. A pause or resume racing it needs none either:
            # both only touch `policy.paused` for a kernel that is not running, and
            # _relaunch reads it after its last await.
            await self._relaunch(kernel_id)
        except RingctlError as exc:
            self._decide(RestartFailed(kernel_id, str(exc)))
        finally:
            self.policy.restart_due.pop(kernel_id, None)
            self._backoff.pop(kernel_id, None)

    async def _restart_now(self, kernel_id: str) -> bool:
        """Cut a pending restart's backoff short and wait for it; True if it relaunched
        (the new instance may have failed again since, which is the restart policy's
        business)."""
        now, task = self._backoff[kernel_id]
        before = self.runtime.get_info(kernel_id).restarts
        now.set()
        await asyncio.shield(task)
        return self.runtime.get_info(kernel_id).restarts > before

    async def _relaunch(self, kernel_id: str) -> None:
        await self.runtime.relaunch(kernel_id)
        await self.runtime.activate(kernel_id)
        self._decide(Restarted(kernel_id))
        if kernel_id in self.policy.paused and self._state is not T.DRAINING:
            # It was paused when it failed: its replacement starts paused too.
            await self.runtime.deactivate(kernel_id)

    async def _cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def request_stop(self, reason: str = "stop requested", *, force: bool = False) -> None:
        """Start a graceful down (signal handlers call this); ``force`` skips the drain wait
        and stops every kernel after the message in hand. During the launch, the launch
        stops and what was launched is rolled back."""
        self._decide(StopRequested(reason, force))
        launch = self._launch
        if launch is not None and not launch.done():
            launch.cancel()

    def _result(self) -> RunResult:
        down, acc = self.down_report, self.accounting
        facts = None
        if down is not None or acc is not None:
            facts = DownFacts(
                graceful=down is None or down.graceful,
                messages_left=down.messages_left if down is not None else 0,
                refused=down.refused if down is not None else (),
                law_holds=acc is None or acc.holds,
                violations=tuple(acc.violations) if acc is not None else (),
                unprocessed=(acc.lost + acc.left + acc.queued) if acc is not None else 0,
                in_doubt=acc.in_doubt if acc is not None else 0,
                summary=acc.summary() if acc is not None else "",
            )
        v = self.policy.result(facts)
        return RunResult(
            v.outcome, v.exit_code, v.reason, down, v.failure, acc, self.policy.launch_stopped
        )

    # -- control commands ----------------------------------------------------------------

    def _select(self, kernels: list[str] | None) -> list[str]:
        order = self.plan.order
        if not kernels:
            return order
        unknown = [k for k in kernels if k not in self.plan]
        if unknown:
            from ringctl.topology.errors import did_you_mean

            guesses = [f"did you mean {g!r}?" for k in unknown if (g := did_you_mean(k, order))]
            raise UserInputError(  # a typo on the command line: exit 2, like any bad argument
                f"topology {self.plan.name!r} has no kernel {', '.join(map(repr, unknown))}",
                hint=(guesses[0] + "; " if guesses else "")
                + f"its kernels are: {', '.join(order)}",
            )
        chosen = set(kernels)
        return [k for k in order if k in chosen]

    @contextlib.asynccontextmanager
    async def _command(self, action: str) -> AsyncIterator[None]:
        """Hold the command lock for ``action``, refused unless the topology runs: checked
        before waiting for the lock too (a down holds it for the whole drain, and a
        command that came during it is answered at once) and again once it is held."""
        self._check_live(action)
        async with self._lock:
            self._check_live(action)
            yield

    def _check_live(self, action: str) -> None:
        """Refuse ``action`` unless the topology runs."""
        if self._state not in _LIVE:
            draining = self._state is T.DRAINING
            raise ControlPlaneError(
                f"cannot {action} topology {self.plan.name!r}: it is {self._state}"
                + (" (a down is under way)" if draining else ""),
                hint=f"ringctl ps {self.plan.name} shows how the drain goes" if draining else None,
            )

    async def pause(self, kernels: list[str] | None = None) -> list[str]:
        """Deactivate the named (or all) ACTIVE kernels; returns those it paused."""
        return await self._pause(kernels, True)

    async def resume(self, kernels: list[str] | None = None) -> list[str]:
        """Reactivate the named (or all) paused kernels; returns those it resumed."""
        return await self._pause(kernels, False)

    async def _pause(self, kernels: list[str] | None, pause: bool) -> list[str]:
        """``pause`` (True) or ``resume`` (False) the named (or all) kernels."""
        action = "pause" if pause else "resume"
        async with self._command(action):
            done = []
            for kid in self._select(kernels):
                (self.policy.paused.add if pause else self.policy.paused.discard)(kid)
                if self.runtime.get_state(kid) is (S.ACTIVE if pause else S.DEACTIVATED):
                    await (self.runtime.deactivate if pause else self.runtime.reactivate)(kid)
                    done.append(kid)
            # The topology reads "paused" while every kernel that still runs is paused.
            live = [kid for kid in self.plan.order if self.runtime.get_state(kid) in RUNNING]
            everything_paused = bool(live) and all(kid in self.policy.paused for kid in live)
            self._set_state(T.PAUSED if everything_paused else T.RUNNING)
            none = "nothing (already paused)" if pause else "nothing (none paused)"
            self.event(action, f"{action}d {few(done) if done else none}")
            return done

    async def restart(self, kernels: list[str], timeout: float = 5.0) -> list[str]:
        """Stop and relaunch the named kernels; each keeps its inbox and ``ctx.state``.

        Counted as a restart. A kernel waiting out its restart backoff restarts now (that
        is the restart it was waiting for). A kernel that already ended (completed or
        failed past its policy) is not brought back: it is reported in the error instead.
        """
        rt = self.runtime
        require(rt, "restart")
        async with self._command("restart"):
            chosen = self._select(kernels)
            ended = [k for k in chosen if rt.get_state(k) not in RUNNING and k not in self._backoff]
            if ended:
                raise ControlPlaneError(
                    f"cannot restart {', '.join(map(repr, ended))}: "
                    f"{'it has' if len(ended) == 1 else 'they have'} terminated",
                    hint="restart brings back a running kernel; run the topology again "
                    "for one that ended",
                )
            done = []
            for kid in chosen:
                how = ""
                if kid in self._backoff:
                    if not await self._restart_now(kid):
                        raise ControlPlaneError(
                            f"restart of {kid!r} failed: {self.failure or 'it did not start'}"
                        )
                else:
                    self._decide(RestartStarted(kid))  # the watch loop leaves it be
                    try:
                        report = await rt.restart(kid, timeout=timeout)
                    except RingctlError as exc:
                        self._decide(RestartFailed(kid, str(exc)))
                        raise
                    self._decide(Restarted(kid))
                    how = " (force-stopped)" if report.forced else ""
                restarts = rt.get_info(kid).restarts
                self.event("restart", f"{kid} restarted on request{how}; restart {restarts}")
                done.append(kid)
            self._status_cache = None
            return done

    async def scale(self, kernel: str, replicas: int, timeout: float = 5.0) -> dict[str, Any]:
        """Run ``replicas`` instances of a running kernel; returns ``{kernel, before, after}``."""
        rt = self.runtime
        require(rt, "scale")
        async with self._command("scale"):
            (kid,) = self._select([kernel])
            at = self.policy.restart_due.get(kid)
            if kid in self._backoff and at is not None:
                raise ControlPlaneError(
                    f"cannot scale {kid!r} while it waits for its restart "
                    f"(in {max(0.0, at - time.monotonic()):.0f} s)",
                    hint=f"ringctl restart {self.plan.name} {kid} restarts it now; then scale it",
                )
            if rt.get_state(kid) not in RUNNING:
                raise ControlPlaneError(f"cannot scale {kid!r}: it has terminated")
            before = await rt.scale(kid, replicas, timeout=timeout)
            if before != replicas:
                self.event("scale", f"{kid} scaled from {before} to {replicas} replicas")
            self._status_cache = None
            return {"kernel": kid, "before": before, "after": replicas}

    async def apply(
        self, new: Plan, file: str, *, source: Any = None, dry_run: bool = False,
        timeout: float = 10.0,
    ) -> dict[str, Any]:  # fmt: skip
        """Change the running topology into ``new`` (``ringctl apply``; ``dry_run``: only
        say how). What cannot change live is refused before anything changes."""
        from ringctl.orchestrator import applying

        async with self._command("apply"):
            d = applying.diff(applying.running_plan(self), new)
            if d.refused:
                raise applying.refusal_error(d, source, file)
            if dry_run or not d.changes:
                if not dry_run:  # the file says what runs (a comment may have changed)
                    self.file_watch = FileWatch(file)
                return applying.preview(d)
            applied = await applying.carry_out(self, new, d.changes, file, timeout)
            self.applied = applied
            self.file_watch = FileWatch(file)
            n = len(applied.changes)
            self.event("apply", f"applied {file}: {n} change{'s' if n != 1 else ''}")
            self.status(fresh=True)
            return {**applying.preview(d), **applied.as_dict()}

    def tap(self, kernel: str, port: str = "out", capacity: int = 256) -> Tap:
        """Attach a tap to ``kernel.port`` (detach it with ``untap``)."""
        require(self.runtime, "tap")
        (kid,) = self._select([kernel])
        if self._state in (T.CREATED, T.STARTING):
            # Its kernels are not all there yet: a valid name must not read as a typo.
            raise ControlPlaneError(
                f"cannot tap topology {self.plan.name!r}: it is {self._state} "
                "(its kernels are being launched)",
                hint=f"ringctl ps {self.plan.name} shows when it runs",
            )
        return self.runtime.tap(kid, port, capacity)

    def untap(self, kernel: str, port: str, tap: Tap) -> None:
        self.runtime.untap(kernel, port, tap)

    async def down(self, timeout: float = 10.0, progress: Progress | None = None) -> DownReport:
        """Drain and terminate: resume, restart what waits for a restart, stop the sources,
        wait until quiet, stop the rest.

        ``timeout`` bounds the whole drain; past it kernels are force-stopped. At the end
        every inbox is closed and the accounting law is checked: whatever was still
        queued is counted as left, never dropped silently. The deadline holds even while
        a kernel holds the event loop: a timer thread then stops every kernel after the
        message in hand.

        During the launch, the launch stops and what it launched is rolled back.
        """
        if self._launch is not None:
            self.request_stop("down requested")
            await self._ended.wait()
            return self.down_report or DownReport(True, 0.0)
        async with self._lock:
            if self.down_report is not None:
                return self.down_report
            self.stop_within(timeout)
            return await self._drain(timeout, progress)

    def stop_within(self, seconds: float) -> None:
        """Once ``seconds`` have passed, every kernel stops after the message in hand,
        whatever holds the event loop meanwhile (a timer thread; safe from any thread)."""
        loop = self._loop

        def passed() -> None:
            if self._ended.is_set():
                return
            self.runtime.stop_now()
            if loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop has closed
                    loop.call_soon_threadsafe(self._bound_passed)

        bound = threading.Timer(seconds, passed)
        bound.daemon = True
        bound.start()
        self._bounds.append(bound)

    def _bound_passed(self) -> None:
        if not self._ended.is_set():
            self._decide(DrainTimedOut())

    async def _drain(self, timeout: float, progress: Progress | None) -> DownReport:
        self._decide(StopRequested("down requested"))
        failed_before = self.failure is not None
        if self._state in (T.CREATED, T.STARTING):
            # Never launched: nothing was running yet.
            self._set_state(T.FAILED)
        else:
            self._set_state(T.DRAINING)
        self.event("info", f"down: {self.policy.stop_reason}")
        rt = self.runtime
        t0 = time.monotonic()
        deadline = t0 + timeout
        self.policy.paused.clear()
        self._hurry.set()  # a kernel waiting out its backoff restarts now and drains
        for kid in self.plan.order:  # paused kernels must be able to drain
            if rt.get_state(kid) is S.DEACTIVATED:
                await rt.reactivate(kid)
        left: dict[str, int] = {}
        forced: list[str] = []

        async def stop(kid: str, wait: float) -> None:
            if rt.get_state(kid) not in RUNNING:
                return
            with contextlib.suppress(KernelStateError):
                report = await rt.terminate(kid, timeout=wait)
                if report.left_in_inbox:
                    left[kid] = report.left_in_inbox
                if report.forced:
                    forced.append(kid)

        first = 0.0 if self.policy.force or self.policy.drain_timed_out else timeout
        await asyncio.gather(*(stop(s, first) for s in self.plan.stop_first))
        while not self.policy.force and not self.policy.drain_timed_out:
            self._check_finished()  # a kernel failing during the drain is handled too
            if not self.policy.restart_due and rt.is_quiescent():
                break
            now = time.monotonic()
            if now >= deadline:
                self._decide(DrainTimedOut())
                break
            self._report_drain(deadline - now, progress)
            await asyncio.sleep(0.02)
        graceful = not self.policy.restart_due and rt.is_quiescent()
        await self._cancel_tasks()  # restarts that did not happen in time
        self.policy.restart_due.clear()
        for kid in reversed(self.plan.order):
            force = self.policy.force
            wait = max(0.1, deadline - time.monotonic()) if graceful and not force else 0
            await stop(kid, wait)
        # Anything still running or stopping (a failing kernel's siblings) ends here.
        await rt.terminate_all(timeout=0.0 if self.policy.force else min(timeout, 2.0))
        for kid in self.plan.order:
            # The run is over: whatever still waits for a kernel will never be
            # processed. Closing every inbox turns it into "left", counted.
            if swept := rt.close_inbox(kid, "left"):
                left[kid] = left.get(kid, 0) + swept
        refused = tuple(rt.refused)
        for kid in refused:
            self.event("failure", f"kernel {kid} refused to stop (it swallows cancellation)")
        graceful = graceful and not forced and not left and not refused
        if not graceful and not failed_before:
            what = "drain timed out" if self.policy.drain_timed_out else "down"
            self.event("failure", f"{what}; {sum(left.values())} messages left")
        self.accounting = acc = rt.accounting()
        if not acc.holds:
            # Never expected: loud, with the numbers, in the log and in the events.
            for violation in acc.violations:
                log.error("accounting law violated: %s", violation)
                self.event("failure", f"accounting law violated: {violation}")
        self.phase = None
        if self._state is T.DRAINING:
            self._set_state(
                T.FAILED
                if self.failure
                else (T.COMPLETED if self.policy.stop_reason == "completed" else T.STOPPED)
            )
        self.down_report = DownReport(graceful, time.monotonic() - t0, left, tuple(forced), refused)
        self._status_cache = None
        for bound in self._bounds:
            bound.cancel()
        self._ended.set()
        self._wake.set()
        return self.down_report

    def _report_drain(self, seconds_left: float, progress: Progress | None) -> None:
        rt = self.runtime
        waiting = [
            {"kernel": kid, "queued": rt.queued(kid), "seconds_left": round(seconds_left, 1)}
            for kid in self.plan.order
            if kid in self.policy.restart_due
            or (rt.get_state(kid) in RUNNING and not rt.is_idle(kid))
        ]
        self.phase = {"name": "drain", "done": 0, "total": 0, "waiting_on": waiting}
        if progress is not None:
            progress(dict(self.phase))

    # -- status --------------------------------------------------------------------------

    def on_status(self, publish: Callable[[dict[str, Any]], None]) -> None:
        """Call ``publish`` with every status document built (the supervisor samples one
        every ``SAMPLE_EVERY_S``), e.g. to keep the latest where another thread reads it."""
        self._publishers.append(publish)

    def status(self, *, fresh: bool = False, max_age: float = STATUS_MAX_AGE_S) -> dict[str, Any]:
        """The ``ringctl ps NAME --json`` document (the one built last if it is at most
        ``max_age`` seconds old)."""
        now = time.monotonic()
        cached = self._status_cache
        if not fresh and cached is not None and now - cached[0] < max_age:
            return cached[1]
        from ringctl.orchestrator import status as sd

        snap = self.runtime.snapshot()
        restarting = self.policy.restart_due
        kernels = snap.kernels
        if [k.id for k in kernels] != self.plan.order:  # changed by an apply
            rank = {kid: n for n, kid in enumerate(self.plan.order)}
            kernels = tuple(sorted((k for k in kernels if k.id in rank), key=lambda k: rank[k.id]))
        self.drift = drift(self.plan, kernels, self.file_watch.edited())
        doc = sd.StatusDocument(
            name=self.plan.name,
            file=self.plan.file,
            engine=self.plan.engine,
            pid=os.getpid(),
            uptime_s=round(self.uptime_s, 3),
            state=str(self._state),
            phase=None if self.phase is None else sd.PhaseDoc.check(self.phase),
            failure=self.failure,
            events=tuple(sd.EventDoc(**e) for e in list(self.events)[-20:]),
            timings={k: round(v, 4) for k, v in self.timings.items()},
            kernels=tuple(sd.KernelDoc.of(k, _due(restarting.get(k.id), now)) for k in kernels),
            queues=tuple(sd.QueueDoc.of(q) for q in snap.queues),
            quiescent=snap.quiescent,
            down=None if self.down_report is None else sd.DownDoc.check(self.down_report.as_dict()),
            accounting=(
                None
                if self.accounting is None
                else sd.AccountingDoc.check(self.accounting.as_dict())
            ),
            applied=None if self.applied is None else sd.AppliedDoc.check(self.applied.as_dict()),
            drift=tuple(self.drift),
        ).as_dict()
        self._status_cache = (now, doc)
        for publish in self._publishers:
            publish(doc)
        return doc


def _due(at: float | None, now: float) -> float | None:
    """Seconds until a pending restart, for the status document."""
    return None if at is None else round(max(0.0, at - now), 1)
