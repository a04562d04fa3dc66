"""Persistent kernels the tests launch: module-level, so Numba's cache and workers find them."""

from __future__ import annotations

import asyncio

import numpy as np

from ringctl import KernelContext, ring_kernel
from ringctl.authoring import keep_running
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
def slow_on_magic(rec, out, state):  # type: ignore[no-untyped-def]
    """Takes seconds over a ``MAGIC`` record (sequential arithmetic), then goes on."""
    x = 0.0
    if rec.value == MAGIC:
        for _ in range(1_000_000_000):
            x = x * 0.5 + 1.0
    out.seq = rec.seq
    out.value = rec.value + x * 0.0  # x is used, so the loop is not optimised away
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


@ring_kernel(kernel_id="record_source", ports=("out",))
async def record_source(ctx: KernelContext) -> None:
    """Sends ``messages`` arrays of ``size`` RECORDs (seq-numbered; value = seq), then ends.

    params: ``value_at`` puts ``value`` into the record with that sequence number (a
    negative reading for ``fails_on_negative``, ``MAGIC`` for ``wedge_on_magic``);
    ``pause`` seconds between messages; ``messages: null`` sends until stopped.
    """
    p = ctx.params
    size, count = int(p.get("size", 100)), p.get("messages", 10)
    value_at, pause = p.get("value_at"), float(p.get("pause", 0.0))
    seq = 0
    while await keep_running(ctx) and (count is None or seq < int(count) * size):
        arr = records(range(seq, seq + size))
        if value_at is not None and seq <= int(value_at) < seq + size:
            arr["value"][int(value_at) - seq] = float(p.get("value", -1.0))
        await ctx.send(arr)
        seq += size
        await asyncio.sleep(pause)


@ring_kernel(kernel_id="record_sink")
async def record_sink(ctx: KernelContext) -> None:
    """Counts the records it receives (``metrics["records"]``)."""
    async for arr in ctx.messages():
        ctx.metrics["records"] = int(ctx.metrics.get("records", 0)) + len(arr)
