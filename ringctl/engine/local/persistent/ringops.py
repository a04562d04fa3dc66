"""Compiled push and pop on a ring, for the host side and for bridges (batches, never per record).

The same acquire/release discipline as the kernel loop: the producer copies records into
free slots, then publishes them with one release store of ``HEAD``; the consumer reads
``HEAD`` with an acquire load, copies, then frees the slots with one release store of
``TAIL``. Each index has one writer, so no compare-and-swap is needed. All functions run
without the GIL and are cached on disk.
"""

from __future__ import annotations

from typing import Any

import numba

from ringctl.engine.local.persistent.atomics import load_acquire, store_release
from ringctl.engine.local.persistent.layout import HEAD, RING_CLOSED, TAIL

__all__ = ["load", "ring_close", "ring_closed", "ring_count", "ring_pop", "ring_push", "store"]

_jit = numba.njit(cache=True, nogil=True)


@_jit
def ring_push(header: Any, records: Any, src: Any) -> int:
    """Copy as many of ``src`` as fit, publish them; returns how many went in."""
    mask = records.shape[0] - 1
    head = header[HEAD]  # we are the only writer of HEAD
    tail = load_acquire(header, TAIL)
    free = records.shape[0] - (head - tail)
    n = min(free, src.shape[0])
    for k in range(n):
        records[(head + k) & mask] = src[k]
    store_release(header, HEAD, head + n)
    return int(n)


@_jit
def ring_pop(header: Any, records: Any, dst: Any) -> int:
    """Copy up to ``len(dst)`` published records into ``dst``, free their slots."""
    mask = records.shape[0] - 1
    tail = header[TAIL]  # we are the only writer of TAIL
    head = load_acquire(header, HEAD)
    n = min(head - tail, dst.shape[0])
    for k in range(n):
        dst[k] = records[(tail + k) & mask]
    store_release(header, TAIL, tail + n)
    return int(n)


@_jit
def ring_count(header: Any) -> int:
    """Records published and not yet consumed."""
    return int(load_acquire(header, HEAD) - load_acquire(header, TAIL))


@_jit
def ring_close(header: Any) -> None:
    """The producer says it will publish nothing more (after its last ``HEAD``)."""
    store_release(header, RING_CLOSED, 1)


@_jit
def ring_closed(header: Any) -> bool:
    return bool(load_acquire(header, RING_CLOSED) != 0)


@_jit
def load(words: Any, index: int) -> int:
    """One shared word with acquire ordering, for host code (control blocks, ring headers)."""
    return int(load_acquire(words, index))


@_jit
def store(words: Any, index: int, value: int) -> None:
    """One shared word with release ordering, for host code."""
    store_release(words, index, value)
