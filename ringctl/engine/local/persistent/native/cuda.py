"""The GPU loop: the translation unit compiled by NVRTC through CuPy, launched once.

The kernel runs as one thread on a non-blocking stream (never behind the legacy default
stream) and reads its rings where they are: in the shared-memory arena, which this
process registers with ``cudaHostRegister`` (portable + mapped) so the device reaches it
over PCIe while the host and other processes keep using it. Every ring and control block
is allocated before the launch and nothing is freed or synchronised while the kernel
runs (a free synchronises the device, which would wait for ever). Modules load eagerly
(``CUDA_MODULE_LOADING=EAGER`` unless set, and each function is loaded before its launch):
a module loaded lazily at launch can wait on a kernel that never returns. Importing this
module imports CuPy: only a worker that runs a GPU kernel does.
"""

from __future__ import annotations

import mmap
import os
import threading
import time
from typing import Any, Final

# Read when CUDA initialises: before CuPy's first call in this process.
os.environ.setdefault("CUDA_MODULE_LOADING", "EAGER")

import cupy
import numpy as np

from ringctl.engine.local.persistent.native.source import NativeCompileError, first_error

__all__ = ["CudaLoop", "register_host_memory", "unregister_host_memory"]

_HOST_REGISTER_PORTABLE: Final = 1
_HOST_REGISTER_MAPPED: Final = 2
_POINTER_ARGS: Final = (0, 1, 2, 4, 5, 7)  # positions of addresses in the loop's arguments
_WAIT_S: Final = 0.001
_LOCK = threading.Lock()
#: Host ranges registered by this process: host start -> (size, device start).
_REGISTERED: dict[int, tuple[int, int]] = {}


def register_host_memory(address: int, size: int) -> None:
    """Make ``size`` bytes at ``address`` (an mmap'd arena) reachable from the device."""
    size = -(-size // mmap.PAGESIZE) * mmap.PAGESIZE  # whole pages, as the mapping has
    with _LOCK:
        if address in _REGISTERED:
            return
        rt = cupy.cuda.runtime
        rt.hostRegister(address, size, _HOST_REGISTER_PORTABLE | _HOST_REGISTER_MAPPED)
        device = int(rt.pointerGetAttributes(address).devicePointer)
        _REGISTERED[address] = (size, device)


def unregister_host_memory(address: int) -> None:
    """Forget a registration before its arena is unmapped (no kernel may still use it)."""
    with _LOCK:
        if _REGISTERED.pop(address, None) is not None:
            cupy.cuda.runtime.hostUnregister(address)


def _device_address(host: int) -> int:
    for start, (size, device) in _REGISTERED.items():
        if start <= host < start + size:
            return device + (host - start)
    raise ValueError(
        f"host address {host:#x} is not in registered memory: register the arena first"
    )


class CudaLoop:
    """``ringctl_loop`` compiled for this process's GPU; calling it runs the loop to TERM."""

    def __init__(self, text: str) -> None:
        try:
            module = cupy.RawModule(code=text, options=("-std=c++17",))
            self._function = module.get_function("ringctl_loop")  # compiles and loads now
            _ = self._function.attributes  # the function itself is loaded too, even if lazy
        except cupy.cuda.compiler.CompileException as exc:
            log = str(exc)
            raise NativeCompileError(f"{log}\n{first_error(log)}") from None

    def __call__(self, *args: int) -> None:
        """Launch on a fresh non-blocking stream, then wait (off the GIL's way) until it ends."""
        words = [_device_address(a) if i in _POINTER_ARGS and a else a for i, a in enumerate(args)]
        typed: list[Any] = [
            np.uint64(w) if i in _POINTER_ARGS else np.int64(w) for i, w in enumerate(words)
        ]
        stream = cupy.cuda.Stream(non_blocking=True)
        self._function((1,), (1,), tuple(typed), stream=stream)
        while not stream.done:
            time.sleep(_WAIT_S)
