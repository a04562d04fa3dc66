"""The worker process: maps the arena, runs each persistent kernel's loop on a thread.

Started as ``python -m ringctl.engine.local.persistent FD`` by ``PersistentGroup``, FD one end
of a socket pair whose other end the host keeps. A thread cannot be killed, so the
loops live in a process of their own that the host can kill (force-stop) and start again
on the same arena: rings, records, counters and state survive. The host talks to the
worker over the socket only to start loops; every lifecycle command after that goes
through the kernels' control blocks in shared memory.

Messages host -> worker: the ``WorkerSpec`` first, then ``("start", KernelPlacement,
skip_wedged)`` and ``("exit",)``. Messages worker -> host: ``("started", kernel_id)``,
``("error", kernel_id, text)`` (the kernel could not be imported or compiled),
``("failed", kernel_id, traceback)`` (its handler raised while running).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from ringctl.engine.local.persistent.arena import Arena, ArenaLayout
from ringctl.engine.local.persistent.native.source import NativeCompileError
from ringctl.kernel.persistent import LoopOptions, PersistentKernel

__all__ = ["KernelPlacement", "WorkerSpec", "load_kernel", "worker_main"]

_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class KernelPlacement:
    """Where one kernel's code and shared words are: picklable, names only."""

    kernel_id: str
    entry: str  # "module:attribute" of a @persistent_kernel
    control: str
    inbox: str
    outbox: str | None
    state: str
    options: LoopOptions
    #: ``cpu`` or ``cuda``: where a C++ handler's loop runs (Numba loops run on the CPU).
    backend: str = "cpu"


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    arena: ArenaLayout
    sys_path: tuple[str, ...]


def load_kernel(entry: str) -> PersistentKernel:
    """Import ``module:attribute`` and check it is a persistent kernel."""
    module_name, _, attr = entry.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, PersistentKernel):
        raise TypeError(f"{entry} is not a @persistent_kernel (got {type(obj).__name__})")
    return obj


def worker_main(conn: Connection) -> None:
    """The worker's whole life: the spec first, then commands until exit or the host is gone."""
    try:
        spec: WorkerSpec = conn.recv()
    except EOFError:
        os._exit(0)
    for path in reversed(spec.sys_path):
        if path not in sys.path:
            sys.path.insert(0, path)
    arena = Arena(spec.arena)  # mapped, not owned: the host removes the file
    loops: dict[str, Any] = {}  # kernel id -> LoopThread
    reported: set[str] = set()
    try:
        while True:
            if conn.poll(_POLL_S):
                msg = conn.recv()
                if msg[0] == "exit":
                    return
                if msg[0] == "start":
                    _start(conn, arena, loops, msg[1], msg[2])
                    reported.discard(msg[1].kernel_id)
            for kernel_id, loop in loops.items():
                if loop.error is not None and kernel_id not in reported:
                    reported.add(kernel_id)
                    conn.send(("failed", kernel_id, loop.error))
    except (EOFError, OSError):
        # The host is gone (killed, even while this worker compiled): nobody is left to
        # drive the kernels or to remove the shared memory, so the worker removes it.
        with contextlib.suppress(OSError):
            os.unlink(spec.arena.path)
        return
    finally:
        # Loops may still be running (the host left without TERM): leave without joining them.
        conn.close()
        os._exit(0)


def _start(
    conn: Connection,
    arena: Arena,
    loops: dict[str, Any],
    placement: KernelPlacement,
    skip_wedged: bool,
) -> None:
    from ringctl.engine.local.persistent.diagnose import explain
    from ringctl.engine.local.persistent.thread import LoopThread  # Numba: only in the worker

    kid = placement.kernel_id
    kernel: PersistentKernel | None = None
    try:
        old = loops.get(kid)
        if old is not None and not old.join(0):
            raise RuntimeError(f"{kid}: its previous loop is still running")
        kernel = load_kernel(placement.entry)
        outbox = arena.rings[placement.outbox] if placement.outbox is not None else None
        views = (
            kernel,
            arena.controls[placement.control],
            arena.rings[placement.inbox],
            outbox,
            arena.arrays[placement.state],
            placement.options,
        )
        if kernel.native is not None:
            from ringctl.engine.local.persistent.native.runner import native_loop

            loop: LoopThread = native_loop(arena, placement.backend, *views)
        elif placement.backend != "cpu":
            raise ValueError(f"{kid}: a Numba handler runs on the CPU, not {placement.backend}")
        else:
            loop = LoopThread(*views)
        loop.compile()
        loop.start(skip_wedged=skip_wedged)
    except NativeCompileError as exc:
        # The compiler's own report (file:line of the user's source) says it all.
        conn.send(("error", kid, str(exc)))
        return
    except BaseException as exc:
        # SystemExit from the kernel's module too: that kernel's start failing, not the
        # worker leaving (which would fail every kernel it runs).
        conn.send(("error", kid, traceback.format_exc(), explain(exc, kernel)))
        return
    loops[kid] = loop
    conn.send(("started", kid))
