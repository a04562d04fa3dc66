"""Persistent kernels for ``persistent_bench.py`` (module-level, so Numba caches them)."""

from __future__ import annotations

import numpy as np

from ringctl.persistent import persistent_kernel

RECORD = np.dtype([("seq", np.int64), ("value", np.float64)])
# The CPU-bound stages run 4000 iterations of dependent arithmetic per record (a few
# microseconds). The count is written inside each handler on purpose: Numba's on-disk
# cache would not notice a change to a module-level constant.


@persistent_kernel(input=RECORD, output=RECORD)
def double(rec, out, state):  # type: ignore[no-untyped-def]
    out.seq = rec.seq
    out.value = rec.value * 2.0
    return 1


@persistent_kernel(input=RECORD, output=RECORD)
def keep_even(rec, out, state):  # type: ignore[no-untyped-def]
    if rec.seq % 2 != 0:
        return 0
    out.seq = rec.seq
    out.value = rec.value
    return 1


@persistent_kernel(input=RECORD, state=2)
def count(rec, state):  # type: ignore[no-untyped-def]
    """Counts records and ordering errors (a sequence number that does not grow)."""
    if rec.seq <= state[1] and state[0] > 0:
        state[0] = -1e18  # poisoned: an out-of-order record
    state[0] += 1.0
    state[1] = rec.seq
    return 0


@persistent_kernel(input=RECORD, output=RECORD)
def burn(rec, out, state):  # type: ignore[no-untyped-def]
    x = rec.value
    for _ in range(4000):
        x = x * 0.999999 + 1e-7
    out.seq = rec.seq
    out.value = x
    return 1


@persistent_kernel(input=RECORD, state=1)
def burn_sink(rec, state):  # type: ignore[no-untyped-def]
    x = rec.value
    for _ in range(4000):
        x = x * 0.999999 + 1e-7
    state[0] += x
    return 0
