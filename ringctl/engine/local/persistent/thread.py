"""Run one persistent kernel's compiled loop on a Python thread (the loop drops the GIL).

This is the kernel side of the control block: it resets ``ACK`` and ``TERMINATED``
before the loop starts and records ``STOP_FAILED`` if the handler raises. Used inside
a worker process (``ringctl.engine.local.persistent.worker``) and, for benchmarks and tests of the
protocol alone, directly in the calling process.
"""

from __future__ import annotations

import os
import threading
import traceback
from typing import Any

import numpy as np

from ringctl.engine.local.persistent.arena import RingView
from ringctl.engine.local.persistent.layout import (
    ACK,
    LOST,
    POS,
    SPIN_LIMIT,
    SPIN_WORDS,
    STOP_FAILED,
    STOP_NONE,
    TAIL,
    TERMINATED,
)
from ringctl.engine.local.persistent.ringops import store
from ringctl.kernel.persistent import LoopOptions, PersistentKernel

__all__ = ["LoopThread", "spin_slots"]

_slots: list[np.ndarray[Any, np.dtype[np.int64]]] = []


def spin_slots() -> np.ndarray[Any, np.dtype[np.int64]]:
    """This process's spin slots, shared by all its loops: as many as the cores it may
    run on, less one (for the host and for whichever loop has work)."""
    if not _slots:
        slots = np.zeros(SPIN_WORDS, np.int64)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        slots[SPIN_LIMIT] = max((cores or os.cpu_count() or 1) - 1, 0)
        _slots.append(slots)
    return _slots[0]


class LoopThread:
    """One kernel's loop on a daemon thread; ``error`` holds the traceback if it raised."""

    def __init__(
        self,
        kernel: PersistentKernel,
        ctrl: np.ndarray[Any, np.dtype[np.int64]],
        inbox: RingView,
        outbox: RingView | None,
        state: np.ndarray[Any, np.dtype[np.float64]],
        options: LoopOptions | None = None,
    ) -> None:
        if (outbox is None) != kernel.is_sink:
            raise ValueError(f"{kernel.kernel_id}: a sink has no output ring, a map has one")
        self.kernel = kernel
        self._ctrl = ctrl
        self._inbox = inbox
        self._outbox = outbox
        self._state = state
        self._options = options or LoopOptions()
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    def compile(self) -> None:
        """Compile (or load from the cache) the handler and its loop; runs nothing.

        A handler that does not type-check for its records fails here, at launch.
        """
        from numba import typeof

        loop, args = self._loop_and_args()
        loop.compile(tuple(typeof(a) for a in args))  # type: ignore[no-untyped-call]

    def _loop_and_args(self) -> tuple[Any, tuple[Any, ...]]:
        from ringctl.engine.local.persistent.loop import loops_for

        loops = loops_for(self.kernel.handler)
        o, out = self._options, self._outbox
        rings: tuple[Any, ...] = (self._inbox.header, self._inbox.records)
        if out is not None:  # a map: its output ring too
            rings += (out.header, out.records)
        args = (self._ctrl, *rings, self._state, o.spin_us * 1000, o.nap_us, o.batch, spin_slots())
        return loops.sink_loop if out is None else loops.map_loop, args

    def start(self, *, skip_wedged: bool = False) -> None:
        """Start the loop (idle until the host writes ACTIVE).

        After a force-stop the record being handled when the worker died is still first
        in the ring; ``skip_wedged`` steps over it (and the unpublished part of its
        batch), counting them in ``LOST``, so a handler that hangs on one record does
        not hang again.
        """
        loop, args = self._loop_and_args()
        ctrl, header = self._ctrl, self._inbox.header
        store(ctrl, ACK, -1)
        store(ctrl, TERMINATED, STOP_NONE)
        pos, tail = int(ctrl[POS]), int(header[TAIL])
        if skip_wedged and pos > tail:
            store(ctrl, LOST, int(ctrl[LOST]) + pos - tail)
            store(header, TAIL, pos)
        self._thread = threading.Thread(
            target=self._run, args=(loop, args), name=f"ring:{self.kernel.kernel_id}", daemon=True
        )
        self._thread.start()

    def _run(self, loop: Any, args: tuple[Any, ...]) -> None:
        try:
            loop(*args)
        except BaseException:
            self.error = traceback.format_exc()
            store(self._ctrl, TERMINATED, STOP_FAILED)

    def join(self, timeout: float | None = None) -> bool:
        """True once the loop has returned (a wedged handler never does)."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()
