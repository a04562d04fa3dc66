"""Persistent kernels: compiled loops that poll rings of records and never return to Python.

The public API: ``@persistent_kernel`` declares one (``native_kernel`` one with a C++
handler), ``PersistentGroup`` runs some in a worker process, ``LoopOptions`` tunes their
loops. Nothing imported here loads Numba; the compiled parts are imported when a kernel
is launched (see docs/persistent.md).
"""

from __future__ import annotations

from ringctl.engine.local.persistent.host import PersistentGroup, PersistentStats
from ringctl.kernel.native import native_kernel
from ringctl.kernel.persistent import (
    DEFAULT_RING_BYTES,
    LoopOptions,
    PersistentKernel,
    persistent_kernel,
)

__all__ = [
    "DEFAULT_RING_BYTES",
    "LoopOptions",
    "PersistentGroup",
    "PersistentKernel",
    "PersistentStats",
    "native_kernel",
    "persistent_kernel",
]
