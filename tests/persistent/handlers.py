"""Persistent kernels the tests launch: module-level, so Numba's cache and workers find them."""

from __future__ import annotations

import numpy as np

from ringctl.persistent import persistent_kernel

RECORD = np.dtype([("seq", np.int64), ("value", np.float64)])
OTHER = np.dtype([("seq", np.int64), ("flag", np.int32)])

#: A value that makes ``wedge_on_magic`` loop for ever (as a buggy handler would).
MAGIC = -7.0


@persistent_kernel(input=RECORD, output=RECORD)
def double(rec, out, state):  # type: ignore[no-untyped-def]
    out.seq = rec.seq
    out.value = rec.value * 2.0
    return 1


@persistent_kernel(input=RECORD, output=RECORD)
def keep_even(rec, out, state):  # type: ignore[no-untyped-def]
    """Emits even sequence numbers, rejects negative values (counted as errors)."""
    if rec.value < 0:
        return -1
    if rec.seq % 2 != 0:
        return 0
    out.seq = rec.seq
    out.value = rec.value
    return 1


@persistent_kernel(input=RECORD, state=2)
def total(rec, state):  # type: ignore[no-untyped-def]
    state[0] += rec.value
    state[1] += 1.0
    return 0


@persistent_kernel(input=RECORD, output=RECORD)
def wedge_on_magic(rec, out, state):  # type: ignore[no-untyped-def]
    x = rec.value
    while x == MAGIC:  # never changes: a handler stuck for ever, holding its core
        x = rec.value
    out.seq = rec.seq
    out.value = x
    return 1


@persistent_kernel(input=RECORD, output=RECORD)
def fails_on_negative(rec, out, state):  # type: ignore[no-untyped-def]
    if rec.value < 0:
        raise ValueError("negative reading")
    out.seq = rec.seq
    out.value = rec.value
    return 1


@persistent_kernel(input=OTHER, output=OTHER)
def other_records(rec, out, state):  # type: ignore[no-untyped-def]
    out.seq = rec.seq
    out.flag = rec.flag
    return 1


def records(seqs: range | list[int], value: float | None = None) -> np.ndarray:
    arr = np.zeros(len(seqs), RECORD)
    arr["seq"] = np.asarray(seqs)
    arr["value"] = arr["seq"] if value is None else value
    return arr


@persistent_kernel(input=RECORD, output=RECORD)
def broken(rec, out, state):  # type: ignore[no-untyped-def]
    out.seq = rec.no_such_field  # fails to compile: RECORD has no such field
    return 1
