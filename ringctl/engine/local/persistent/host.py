"""``PersistentGroup``: the host side of persistent kernels, one worker process per group.

It obeys the same lifecycle table as every other kernel (``ringctl.engine.lifecycle``):
``launch`` allocates the rings (once, for the whole group), starts the worker if needed,
compiles the kernel (cached) and returns when its loop runs idle; ``activate`` returns
when the kernel acknowledged ACTIVE; after ``deactivate`` returns no record is handled;
``terminate(timeout)`` writes TERM, waits for the kernel's flag and reports the records
left in its input ring. A kernel that does not stop in time (a handler in an endless
loop) is force-stopped: the worker process is killed, the other kernels of the group are
started again in a fresh worker on the same shared memory, in the state they were in.
``relaunch`` gives a terminated kernel a new loop on its kept rings, stepping over the
record it was stuck on (counted as lost).

Every wait polls shared words with a deadline; nothing here runs per record.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from ringctl.engine.contract import KernelInfo, TerminationReport
from ringctl.engine.ledger import KernelBook
from ringctl.engine.lifecycle import RUNNING, Action, KernelState, next_state
from ringctl.engine.local.persistent.arena import Arena, ArenaBuilder, RingView
from ringctl.engine.local.persistent.layout import (
    ACK,
    CMD,
    CONSUMER_GONE,
    DISCARDED,
    DROPS,
    ERRORS,
    HEAD,
    HEARTBEAT,
    IN,
    LOST,
    OUT,
    POS,
    RING_HEADER_WORDS,
    STOP_FAILED,
    TAIL,
    TERMINATED,
    Command,
)
from ringctl.engine.local.persistent.process import WorkerProcess
from ringctl.engine.local.persistent.worker import KernelPlacement, WorkerSpec, load_kernel
from ringctl.engine.table import KernelTable
from ringctl.exceptions import KernelLaunchError, RunFailedError
from ringctl.kernel.persistent import LoopOptions, PersistentKernel

log = logging.getLogger("ringctl.persistent")

__all__ = ["PersistentGroup", "PersistentStats", "StallError", "last_line"]

S = KernelState
#: A running kernel whose heartbeat has not moved for this long shows as stalled.
DEFAULT_STALL_AFTER_S: Final = 1.0


class StallError(RunFailedError):
    """A kernel did not acknowledge a command in time: its handler is probably stuck."""


@dataclass(frozen=True, slots=True)
class PersistentStats:
    """One kernel's counters, read from its control block and rings at one instant."""

    kernel_id: str
    state: KernelState
    records_in: int
    records_out: int
    errors: int
    drops: int
    lost: int
    heartbeat: int
    stalled: bool
    inbox_depth: int
    inbox_capacity: int
    accepted: int  # records ever published on its input ring, or discarded for it
    restarts: int
    forced: bool
    error: str | None
    #: Records a persistent kernel feeding this one discarded while this one had failed.
    discarded: int = 0


@dataclass(eq=False, kw_only=True)
class _Member(KernelBook):
    entry: str
    kernel: PersistentKernel
    params: Mapping[str, Any]
    capacity: int
    options: LoopOptions
    state: KernelState = S.CREATED  # added before launch: the group lays out its rings first
    backend: str = "cpu"  # cuda: a C++ handler's loop on the worker's GPU
    feeds_from: str | None = None  # another member whose output ring is our input ring
    error: str | None = None
    last_progress: tuple[int, int] = (-1, -1)
    beat_seen_at: float = field(default_factory=time.monotonic)
    #: New params whose state array the next (re)launch writes before the loop starts.
    fresh_state: bool = False


class PersistentGroup(KernelTable[_Member]):
    """Persistent kernels that share one worker process and one arena of shared memory.

    Add every kernel and connect them before the first ``launch`` (the arena is laid out
    once). Remember it as the runtime's lifecycle, spoken through control blocks.
    """

    def __init__(
        self,
        name: str,
        *,
        sys_path: Sequence[str] = (),
        stall_after: float = DEFAULT_STALL_AFTER_S,
    ) -> None:
        super().__init__()
        self.name = name
        self._sys_path = tuple(sys_path)
        self._stall_after = stall_after
        self._arena: Arena | None = None
        self._worker: WorkerProcess | None = None
        self._closed = False
        self._final: dict[str, PersistentStats] = {}  # what stats() says after close()

    # -- building ------------------------------------------------------------------------

    def add(
        self,
        kernel_id: str,
        entry: str,
        *,
        params: Mapping[str, Any] | None = None,
        capacity: int | None = None,
        options: LoopOptions | None = None,
        kernel: PersistentKernel | None = None,
        backend: str = "cpu",
    ) -> PersistentKernel:
        """Declare a kernel of the group (``entry`` is its ``module:attribute``).

        ``kernel`` saves importing ``entry`` here when the caller already did; the worker
        imports ``entry`` itself either way. ``capacity`` (records per ring) defaults to
        the kernel's ``default_ring``. ``backend="cuda"`` runs a C++ handler's loop on the
        worker's GPU (``native_kernel``); ``cpu`` runs every kernel on a CPU thread.
        """
        if self._arena is not None:
            raise RuntimeError(f"group {self.name!r} is laid out; add kernels before launch")
        if kernel_id in self._kernels:
            raise ValueError(f"kernel {kernel_id!r} is already in group {self.name!r}")
        if kernel is None:
            kernel = load_kernel(entry)
        if backend not in ("cpu", "cuda") or (backend == "cuda" and kernel.native is None):
            raise ValueError(
                f"kernel {kernel_id!r}: backend {backend!r} is not available for it "
                "(cpu, or cuda for a native_kernel)"
            )
        self._kernels[kernel_id] = _Member(
            id=kernel_id, entry=entry, kernel=kernel, params=dict(params or {}),
            capacity=capacity or kernel.default_ring, options=options or LoopOptions(),
            backend=backend,
        )  # fmt: skip
        return kernel

    def set_params(self, kernel_id: str, params: Mapping[str, Any]) -> None:
        """New params for the kernel's next loop (``ringctl apply``): its state array is
        made anew from them (``init(params)``) when it is relaunched. Raises
        ``ValueError`` if that array would not fit the one laid out for it."""
        m = self._require(kernel_id)
        fresh = m.kernel.initial_state(params)
        if self._arena is not None:
            laid_out = len(self._arena.arrays[f"{m.id}.state"])
            if len(fresh) != laid_out:
                raise ValueError(
                    f"{kernel_id}: its state array would hold {len(fresh)} values with these "
                    f"params, not the {laid_out} laid out for it"
                )
        m.params, m.fresh_state = dict(params), True

    def connect(self, producer: str, consumer: str) -> None:
        """Make ``producer``'s output ring ``consumer``'s input ring: no Python in between."""
        p, c = self._require(producer), self._require(consumer)
        if p.kernel.output is None:
            raise ValueError(f"{producer} is a sink: it has no output ring to connect")
        if p.kernel.output != c.kernel.input:
            raise ValueError(
                f"{producer} -> {consumer}: {producer} writes {p.kernel.output} but "
                f"{consumer} reads {c.kernel.input}"
            )
        if c.feeds_from is not None:
            raise ValueError(
                f"{consumer} already reads from {c.feeds_from} (one producer per ring)"
            )
        if any(m.feeds_from == producer for m in self._kernels.values()):
            raise ValueError(f"{producer} already feeds a kernel (one consumer per ring)")
        c.feeds_from = producer

    def _layout(self) -> Arena:
        if self._closed:
            raise RuntimeError(f"persistent group {self.name!r} is closed")
        if self._arena is None:
            b = ArenaBuilder()
            for m in self._kernels.values():
                b.control(f"{m.id}.ctrl")
                b.array(f"{m.id}.state", len(m.kernel.initial_state(m.params)))
                if m.feeds_from is None:
                    b.ring(f"{m.id}.in", m.kernel.input, m.capacity)
                if m.kernel.output is not None:
                    b.ring(f"{m.id}.out", m.kernel.output, m.capacity)
            self._arena = b.create(group=self.name)
            for m in self._kernels.values():
                self._arena.arrays[f"{m.id}.state"][:] = m.kernel.initial_state(m.params)
        return self._arena

    def _placement(self, m: _Member) -> KernelPlacement:
        inbox = f"{m.feeds_from}.out" if m.feeds_from is not None else f"{m.id}.in"
        return KernelPlacement(
            kernel_id=m.id,
            entry=m.entry,
            control=f"{m.id}.ctrl",
            inbox=inbox,
            outbox=f"{m.id}.out" if m.kernel.output is not None else None,
            state=f"{m.id}.state",
            options=m.options,
            backend=m.backend,
        )

    # -- what bridges and observers read -------------------------------------------------

    def kernel(self, kernel_id: str) -> PersistentKernel:
        return self._require(kernel_id).kernel

    def feeder(self, kernel_id: str) -> str | None:
        """The kernel of the group that writes this kernel's input ring, if any."""
        return self._require(kernel_id).feeds_from

    def reader(self, kernel_id: str) -> str | None:
        """The kernel of the group that reads this kernel's output ring, if any."""
        self._require(kernel_id)
        return next((k for k, m in self._kernels.items() if m.feeds_from == kernel_id), None)

    @property
    def running(self) -> bool:
        """Some kernel of the group is launched and not yet terminated."""
        return any(m.state in (*RUNNING, S.TERMINATING) for m in self._kernels.values())

    def get_state(self, kernel_id: str) -> KernelState:
        self._pump()
        return self._require(kernel_id).state

    def _info(self, k: _Member) -> KernelInfo:
        return KernelInfo(
            k.id, k.state, 1, "cpu", None, k.completed, k.error, None, None, k.restarts,
            k.forced,
        )  # fmt: skip

    def inbox(self, kernel_id: str) -> RingView:
        """The ring this kernel reads (the host pushes here unless another member feeds it)."""
        return self._layout().rings[self._placement(self._require(kernel_id)).inbox]

    def outbox(self, kernel_id: str) -> RingView | None:
        m = self._require(kernel_id)
        return None if m.kernel.output is None else self._layout().rings[f"{m.id}.out"]

    def state_array(self, kernel_id: str) -> np.ndarray[Any, np.dtype[np.float64]]:
        """The kernel's state words (shared with its loop: read, do not write while it runs)."""
        return self._layout().arrays[f"{kernel_id}.state"]

    def close_input(self, kernel_id: str) -> None:
        """The kernel will not run again (until a relaunch): a persistent kernel that feeds
        it stops waiting for room in its ring and counts what it discards instead."""
        from ringctl.engine.local.persistent.ringops import store

        if self._arena is not None and not self._closed:
            store(self.inbox(kernel_id).header, CONSUMER_GONE, 1)

    def stats(self, kernel_id: str) -> PersistentStats:
        from ringctl.engine.local.persistent.ringops import load

        if self._closed:
            return self._final[kernel_id]
        self._pump()
        m = self._require(kernel_id)
        if self._arena is None:  # nothing launched yet: every counter is zero
            return PersistentStats(
                m.id, m.state, 0, 0, 0, 0, 0, 0, False, 0, m.capacity, 0, 0, False, None
            )
        ctrl = self._ctrl(m)
        ring = self.inbox(kernel_id)
        beat = load(ctrl, HEARTBEAT)
        # The heartbeat moves once per pass (per batch); the record position once per
        # record, so a slow handler on a big batch is not taken for a stuck one.
        progress = (beat, load(ctrl, POS))
        now = time.monotonic()
        if progress != m.last_progress:
            m.last_progress, m.beat_seen_at = progress, now
        stalled = m.state in RUNNING and now - m.beat_seen_at > self._stall_after
        head, tail = load(ring.header, HEAD), load(ring.header, TAIL)
        discarded = load(ring.header, DISCARDED)
        return PersistentStats(
            kernel_id=m.id,
            state=m.state,
            records_in=load(ctrl, IN),
            records_out=load(ctrl, OUT),
            errors=load(ctrl, ERRORS),
            drops=load(ctrl, DROPS),
            lost=load(ctrl, LOST),
            heartbeat=beat,
            stalled=stalled,
            inbox_depth=head - tail,
            inbox_capacity=ring.capacity,
            accepted=head + discarded,
            discarded=discarded,
            restarts=m.restarts,
            forced=m.forced,
            error=m.error,
        )

    # -- the lifecycle -------------------------------------------------------------------

    async def launch(self, kernel_id: str, timeout: float = 120.0) -> None:
        """Phase 1: rings, worker, compile (cached), loop started idle."""
        m = self._require(kernel_id)
        next_state(m.id, m.state, "launch")  # refuse before doing anything
        await self._start_loop(m, skip_wedged=False, timeout=timeout)
        self._move(m, "launch")

    async def relaunch(self, kernel_id: str, timeout: float = 120.0) -> None:
        """A new loop for a terminated kernel, on its kept rings and state."""
        m = self._require(kernel_id)
        next_state(m.id, m.state, "relaunch")
        m.error, m.forced = None, False
        await self._start_loop(m, skip_wedged=True, timeout=timeout)
        m.restarted()
        self._move(m, "relaunch")

    async def activate(self, kernel_id: str, timeout: float = 5.0) -> None:
        await self._command(kernel_id, "activate", Command.ACTIVE, timeout)

    async def deactivate(self, kernel_id: str, timeout: float = 5.0) -> None:
        """Pause; returns once the kernel acknowledged: from then on it handles nothing."""
        await self._command(kernel_id, "deactivate", Command.PAUSED, timeout)

    async def reactivate(self, kernel_id: str, timeout: float = 5.0) -> None:
        await self._command(kernel_id, "reactivate", Command.ACTIVE, timeout)

    async def terminate(self, kernel_id: str, timeout: float = 5.0) -> TerminationReport:
        """Ask to stop; wait up to ``timeout`` for the flag; else kill the worker."""
        from ringctl.engine.local.persistent.ringops import load, store

        self._pump()
        m = self._require(kernel_id)
        if m.state is S.TERMINATED:
            next_state(m.id, m.state, "terminate")  # raises with the table's message
        if m.state is not S.TERMINATING:
            self._move(m, "terminate")
        ctrl = self._ctrl(m)
        store(ctrl, CMD, int(Command.TERM))
        stopped = await self._wait(lambda: load(ctrl, TERMINATED) != 0, timeout)
        if not stopped:
            m.forced = True
            await self._force_stop(exclude=m.id)
        self._move(m, "finish")
        ring = self.inbox(kernel_id)
        left = load(ring.header, HEAD) - load(ring.header, TAIL)
        return TerminationReport(m.id, not m.forced, m.forced, left, error=m.error)

    async def close(self, timeout: float = 5.0) -> list[TerminationReport]:
        """Terminate what runs, stop the worker, free the shared memory."""
        reports = []
        try:
            for m in list(self._kernels.values()):
                if m.state in (*RUNNING, S.TERMINATING):
                    reports.append(await self.terminate(m.id, timeout))
        finally:
            if self._worker is not None:
                self._worker.stop()
                self._worker = None
            if not self._closed:
                self._final = {kid: self.stats(kid) for kid in self._kernels}
                self._closed = True
            if self._arena is not None:
                self._arena.close()
        return reports

    # -- the worker ----------------------------------------------------------------------

    async def _start_loop(self, m: _Member, *, skip_wedged: bool, timeout: float) -> None:
        # Importing Numba and loading the compiled host operations takes about a second:
        # off the event loop, so the other kernels (and the supervisor) keep running.
        await asyncio.to_thread(_load_host_ops)
        from ringctl.engine.local.persistent.ringops import load, store

        try:
            arena = self._layout()
        except (OSError, ValueError) as exc:
            raise KernelLaunchError(
                m.id,
                f"cannot allocate its rings: {exc}",
                hint="shared memory (/dev/shm) may be full or too small: lower `ring`, "
                "or free space there",
            ) from exc
        if m.fresh_state:  # the loop is stopped: nothing reads the array meanwhile
            arena.arrays[f"{m.id}.state"][:] = m.kernel.initial_state(m.params)
            m.fresh_state = False
        ctrl = arena.controls[f"{m.id}.ctrl"]
        store(ctrl, CMD, int(Command.IDLE))
        store(self.inbox(m.id).header, CONSUMER_GONE, 0)  # a relaunch: read the ring again
        self._ensure_worker()
        await self._start_in_worker(m, skip_wedged, timeout)
        if not await self._wait(lambda: load(ctrl, ACK) == int(Command.IDLE), timeout):
            raise KernelLaunchError(m.id, "its loop did not start")

    async def _start_in_worker(self, m: _Member, skip_wedged: bool, timeout: float) -> None:
        worker = self._worker
        assert worker is not None
        worker.send(("start", self._placement(m), skip_wedged))
        deadline = time.monotonic() + timeout
        while True:
            worker.read()
            reply = worker.take(("started", "error"), m.id)
            if reply is not None and reply[0] == "error":
                from ringctl.checks import NUMBA_HINT

                log.info("the worker could not import or compile %s:\n%s", m.entry, reply[2])
                if len(reply) < 4:  # a C++ handler: the compiler's report, its line last
                    report = str(reply[2])
                    raise KernelLaunchError(m.id, last_line(report), hint=report)
                reason = str(reply[3])
                if NUMBA_HINT in reason:
                    raise KernelLaunchError(m.id, "Numba is not installed", hint=NUMBA_HINT)
                raise KernelLaunchError(
                    m.id,
                    reason,
                    hint=f"fix the handler {m.entry}; `ringctl validate --import FILE` "
                    "compiles persistent handlers without running anything",
                )
            if reply is not None:
                return
            if not worker.alive:
                raise KernelLaunchError(m.id, "the worker process died while compiling it")
            if time.monotonic() > deadline:
                raise KernelLaunchError(m.id, f"not compiled within {timeout:g}s")
            await asyncio.sleep(0.005)

    def _ensure_worker(self) -> None:
        if self._worker is None or not self._worker.alive:
            self._worker = WorkerProcess(
                WorkerSpec(self._layout().layout, (*self._sys_path, *sys.path))
            )

    @property
    def worker_pid(self) -> int | None:
        """The worker process's pid while it runs."""
        return self._worker.pid if self._worker is not None and self._worker.alive else None

    async def _force_stop(self, exclude: str) -> None:
        """Kill the worker; start the group's other running kernels again on the same rings."""
        if self._worker is not None:
            self._worker.kill()
            self._worker = None
        for other in self._kernels.values():
            if other.id != exclude and other.state in RUNNING:
                self._ensure_worker()
                await self._start_in_worker(other, skip_wedged=False, timeout=120.0)

    def _pump(self) -> None:
        """Take in what the worker reported; a dead worker fails its running kernels."""
        from ringctl.engine.local.persistent.ringops import load

        worker = self._worker
        if self._closed or worker is None:
            return
        worker.read()
        for reply in list(worker.replies):
            if reply[0] == "failed":
                worker.replies.remove(reply)
                m = self._kernels.get(reply[1])
                if m is not None:
                    self._fail(m, reply[2])
        for m in self._kernels.values():
            if (
                self._arena is not None
                and m.state in (*RUNNING, S.TERMINATING)
                and m.error is None
                and load(self._ctrl(m), TERMINATED) == STOP_FAILED
            ):
                m.error = "its handler raised (traceback on its way from the worker)"
        if not worker.alive:
            code = worker.exit_code
            worker.kill()  # reaps it and closes the socket
            self._worker = None
            for m in self._kernels.values():
                if m.state in RUNNING:
                    self._fail(m, f"the worker process exited unexpectedly (exit code {code})")

    def _fail(self, m: _Member, error: str) -> None:
        m.error = error
        if m.state in RUNNING:
            self._move(m, "finish")

    # -- helpers ---------------------------------------------------------------------------

    async def _command(self, kernel_id: str, action: Action, cmd: Command, timeout: float) -> None:
        from ringctl.engine.local.persistent.ringops import load, store

        self._pump()
        m = self._require(kernel_id)
        next_state(m.id, m.state, action)  # refuse before writing the command
        ctrl = self._ctrl(m)
        before = load(ctrl, CMD)
        store(ctrl, CMD, int(cmd))
        if not await self._wait(lambda: load(ctrl, ACK) == int(cmd), timeout):
            # The state does not change, so neither does the command: a handler that is
            # only slow must not obey it late, behind the caller's back.
            store(ctrl, CMD, before)
            raise StallError(
                f"persistent kernel {m.id!r} did not acknowledge {cmd.name} within {timeout:g}s",
                hint="its handler may be stuck on a record: a restart (`ringctl restart`, "
                "or terminate then relaunch) force-stops it and steps over that record",
            )
        self._move(m, action)

    def _ctrl(self, m: _Member) -> np.ndarray[Any, np.dtype[np.int64]]:
        return self._layout().controls[f"{m.id}.ctrl"]

    async def _wait(self, cond: Callable[[], bool], timeout: float) -> bool:
        """Poll ``cond`` until it holds or ``timeout`` passes; the first polls do not sleep."""
        deadline = time.monotonic() + timeout
        polls = 0
        while not cond():
            if time.monotonic() > deadline:
                return False
            polls += 1
            await asyncio.sleep(0 if polls < 20 else 0.001)
        return True


def _load_host_ops() -> None:
    """Import the compiled shared-word operations and load their machine code once."""
    from ringctl.engine.local.persistent.ringops import load, ring_count, store

    words = np.zeros(RING_HEADER_WORDS, np.int64)
    store(words, HEAD, load(words, TAIL) + ring_count(words))


def last_line(text: str, default: str = "unknown error") -> str:
    """The last line of a report (a traceback's names the exception), else ``default``."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else default
