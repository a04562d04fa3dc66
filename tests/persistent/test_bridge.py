"""A persistent kernel behind the runtime: the same calls as any kernel, records in batches."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest

from ringctl import RingKernelRuntime
from ringctl.engine.lifecycle import KernelState
from ringctl.engine.local.persistent.bridge import PersistentBridges
from ringctl.kernel.persistent import LoopOptions

from . import handlers
from .handlers import MAGIC, RECORD, records

H = "tests.persistent.handlers"
FAST = LoopOptions(spin_us=50, nap_us=20, batch=64)


@pytest.fixture
async def rt() -> AsyncIterator[RingKernelRuntime]:
    async with RingKernelRuntime(shutdown_timeout=5.0) as runtime:
        yield runtime


async def launch(rt: RingKernelRuntime, handler: str, ring: int = 64) -> PersistentBridges:
    bridges = PersistentBridges(f"b-{handler}")
    kernel = bridges.kernel(
        "k", f"{H}:{handler}", getattr(handlers, handler), params={}, ring=ring, options=FAST
    )
    await rt.launch("k", kernel)
    return bridges


async def receive_records(rt: RingKernelRuntime, n: int, timeout: float = 10.0) -> np.ndarray:
    parts: list[np.ndarray] = []
    have = 0
    deadline = time.monotonic() + timeout
    while have < n:
        left = deadline - time.monotonic()
        assert left > 0, f"only {have} of {n} records came out"
        msg = await rt.receive("k", timeout=left)
        assert isinstance(msg, np.ndarray) and msg.dtype == RECORD
        parts.append(msg)
        have += len(msg)
    return np.concatenate(parts)


async def test_arrays_in_arrays_out_in_order(rt: RingKernelRuntime) -> None:
    await launch(rt, "double")
    await rt.activate("k")
    for start in range(0, 1000, 100):  # messages of 100 records into a ring of 64
        await rt.send("k", records(range(start, start + 100)))
    got = await receive_records(rt, 1000)
    assert got["seq"].tolist() == list(range(1000))
    assert np.array_equal(got["value"], 2.0 * np.arange(1000))
    info = rt.get_info("k")
    assert info.state is KernelState.ACTIVE and info.error is None
    deadline = time.monotonic() + 5  # the bridge publishes its metrics ten times a second
    while rt.snapshot().kernels[0].metrics.get("records_in") != 1000:
        assert time.monotonic() < deadline, rt.snapshot().kernels[0].metrics
        await asyncio.sleep(0.01)
    assert rt.snapshot().kernels[0].metrics["persistent"] is True
    acc = rt.accounting()
    ring = next(q for q in acc.queues if q.name == "k.ring")
    assert (ring.accepted, ring.delivered, ring.queued) == (1000, 1000, 0)
    assert acc.holds, acc.violations


async def test_pause_through_the_runtime_stops_the_loop(rt: RingKernelRuntime) -> None:
    bridges = await launch(rt, "double")
    await rt.activate("k")
    await rt.send("k", records(range(10)))
    await receive_records(rt, 10)
    await rt.deactivate("k")
    assert bridges.group.get_state("k") is KernelState.DEACTIVATED  # acknowledged
    ring = bridges.group.inbox("k")
    from ringctl.engine.local.persistent.ringops import ring_push

    ring_push(ring.header, ring.records, records(range(10, 20)))  # straight into its ring
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        assert bridges.group.stats("k").records_in == 10
        await asyncio.sleep(0.01)
    await rt.reactivate("k")
    assert (await receive_records(rt, 10))["seq"].tolist() == list(range(10, 20))


async def test_backpressure_reaches_the_sender_and_terminate_counts_what_is_left(
    rt: RingKernelRuntime,
) -> None:
    await launch(rt, "wedge_on_magic", ring=8)
    await rt.activate("k")
    await rt.send("k", records([0], value=MAGIC))  # the handler hangs on this one
    sent = 0

    async def flood() -> None:
        nonlocal sent
        while True:
            await rt.send("k", records(range(1, 5)))
            sent += 1

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(flood(), timeout=2.0)
    assert sent < 200  # the inbox (64 messages) and the ring (8) filled; the sender waited
    t0 = time.monotonic()
    report = await rt.terminate("k", timeout=0.5)
    assert time.monotonic() - t0 < 10
    assert report.forced and not report.graceful
    assert report.left_in_inbox > 0
    assert rt.get_state("k") is KernelState.TERMINATED
    acc = rt.accounting()  # the law holds for the ring too, in records
    assert acc.holds, acc.violations
    ring = next(q for q in acc.queues if q.name == "k.ring")
    assert ring.consumer == "k (records)" and ring.delivered == 0
    assert ring.left == ring.accepted > 0 and not acc.clean


async def test_a_failed_handler_fails_the_kernel_and_relaunch_keeps_the_ring(
    rt: RingKernelRuntime,
) -> None:
    bridges = await launch(rt, "fails_on_negative")
    await rt.activate("k")
    await rt.send("k", records([1], value=-1.0))
    deadline = time.monotonic() + 10
    while rt.get_state("k") is not KernelState.TERMINATED:
        assert time.monotonic() < deadline, "the failure did not reach the runtime"
        await asyncio.sleep(0.01)
    assert "negative reading" in (rt.get_info("k").error or "")
    await rt.relaunch("k")
    await rt.activate("k")
    await rt.send("k", records([2, 3]))
    assert (await receive_records(rt, 2))["seq"].tolist() == [2, 3]
    assert bridges.group.stats("k").restarts == 1
