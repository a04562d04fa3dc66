"""``NativeLoop``: a C++ persistent kernel's loop, on the CPU twin or on the GPU.

A ``LoopThread`` whose loop is the compiled C++ one: the same control-block handling
(``ACK`` and ``TERMINATED`` reset before a start, the wedged record stepped over on a
restart) and the same thread that waits for the loop to return. On the twin the thread
is inside the ctypes call (without the GIL); on the GPU it launched the kernel once and
waits for its stream.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ringctl.engine.local.persistent.arena import Arena, RingView
from ringctl.engine.local.persistent.native.source import NativeCompileError, translation_unit
from ringctl.engine.local.persistent.thread import LoopThread
from ringctl.kernel.persistent import LoopOptions, PersistentKernel

__all__ = ["NativeBackend", "NativeLoop", "arena_span", "native_loop", "read_source", "release"]

NativeBackend = Literal["twin", "cuda"]


def read_source(kernel: PersistentKernel) -> str:
    """The text of the kernel's ``.cu`` file, or a ``NativeCompileError`` naming it."""
    native = kernel.native
    if native is None:
        raise TypeError(f"{kernel.kernel_id} has no C++ handler")
    try:
        return Path(native.source).read_text()
    except OSError as exc:
        raise NativeCompileError(
            f"{kernel.kernel_id}: cannot read its C++ source {native.source}: {exc.strerror}"
        ) from exc


#: The native loop has no clock: it spins a number of passes, about this many (CPU pause
#: hints) per microsecond of ``spin_us``. It takes no spin slot either.
_PASSES_PER_US = 32


class NativeLoop(LoopThread):
    """One C++ kernel's loop; ``compile`` builds it (phase 1), ``start`` runs it."""

    backend: NativeBackend = "twin"
    _entry: Any = None

    def compile(self) -> None:
        """Build the loop with the kernel's handler; a compiler error raises here, at launch."""
        if self._entry is not None:
            return
        native = self.kernel.native
        assert native is not None
        text = translation_unit(self.kernel, native, read_source(self.kernel))
        if self.backend == "cuda":
            from ringctl.engine.local.persistent.native.cuda import CudaLoop

            self._entry = CudaLoop(text)
        else:
            from ringctl.engine.local.persistent.native.twin import load_library

            self._entry = load_library(text)

    def _loop_and_args(self) -> tuple[Any, tuple[Any, ...]]:
        self.compile()
        o = self._options
        out = self._outbox
        args: tuple[int, ...] = (
            self._ctrl.ctypes.data, self._inbox.header.ctypes.data,
            self._inbox.records.ctypes.data, self._inbox.capacity,
            0 if out is None else out.header.ctypes.data,
            0 if out is None else out.records.ctypes.data,
            0 if out is None else out.capacity,
            self._state.ctypes.data, min(o.spin_us * _PASSES_PER_US, 1 << 62), o.nap_us,
            o.batch,
        )  # fmt: skip
        return self._entry, args


def native_loop(
    arena: Arena,
    backend: str,
    kernel: PersistentKernel,
    ctrl: np.ndarray[Any, np.dtype[np.int64]],
    inbox: RingView,
    outbox: RingView | None,
    state: np.ndarray[Any, np.dtype[np.float64]],
    options: LoopOptions,
) -> NativeLoop:
    """The loop for a worker: ``cpu`` runs the twin, ``cuda`` the GPU (arena registered)."""
    if backend not in ("cpu", "cuda"):
        raise ValueError(f"{kernel.kernel_id}: unknown backend {backend!r} (cpu or cuda)")
    if kernel.native is None:
        raise TypeError(f"{kernel.kernel_id} has no C++ handler")
    loop = NativeLoop(kernel, ctrl, inbox, outbox, state, options)
    if backend == "cuda":
        from ringctl.engine.local.persistent.native.cuda import register_host_memory

        register_host_memory(*arena_span(arena))
        loop.backend = "cuda"
    return loop


def arena_span(arena: Arena) -> tuple[int, int]:
    """The arena's mapped address and size (from a control block's view and its offset)."""
    name, offset = next(iter(arena.layout.controls.items()))
    return int(arena.controls[name].ctypes.data) - offset, arena.layout.size


def release(arena: Arena) -> None:
    """Before an arena this process ran GPU loops on is closed: drop its registration."""
    cuda = sys.modules.get("ringctl.engine.local.persistent.native.cuda")
    if cuda is not None and arena.controls:
        cuda.unregister_host_memory(arena_span(arena)[0])
