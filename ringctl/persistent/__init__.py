"""Persistent kernels: compiled loops that poll rings of records and never return to Python.

Only the declaration lives here; the runtime parts (which import Numba) are imported
from their modules when a persistent kernel is launched.
"""

from __future__ import annotations

from ringctl.persistent.kernel import DEFAULT_RING_CAPACITY, PersistentKernel, persistent_kernel

__all__ = ["DEFAULT_RING_CAPACITY", "PersistentKernel", "persistent_kernel"]
