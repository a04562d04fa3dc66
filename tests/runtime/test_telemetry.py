"""Telemetry snapshots: counters that are right, queue depths, quiescence, latency."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from ringctl import KernelContext, RingKernelRuntime

from .support import collector, echo, source, wait_until

N = 500


async def test_send_n_read_n(runtime: RingKernelRuntime) -> None:
    got: list[Any] = []
    await runtime.launch("sink", collector(got))
    await runtime.launch("echo", echo)
    runtime.connect("echo", "sink")
    await runtime.activate("sink")
    await runtime.activate("echo")
    for i in range(N):
        await runtime.send("echo", i)
    await wait_until(lambda: len(got) == N)

    snap = runtime.snapshot()
    echo_snap, sink_snap = snap.kernel("echo"), snap.kernel("sink")
    assert (echo_snap.messages_in, echo_snap.messages_out) == (N, N)
    assert (sink_snap.messages_in, sink_snap.messages_out) == (N, 0)
    assert echo_snap.drops == sink_snap.drops == 0
    assert echo_snap.errors == sink_snap.errors == 0
    assert echo_snap.inbox_depth == sink_snap.inbox_depth == 0
    assert echo_snap.state == "ACTIVE" and echo_snap.backend == "cpu"
    (edge,) = snap.queues
    assert (edge.messages, edge.depth, edge.drops) == (N, 0, 0)
    assert 1 <= edge.high_water <= edge.capacity
    assert edge.as_dict()["from"] == "echo.out" and edge.as_dict()["to"] == "sink"


async def test_batch_counters(runtime: RingKernelRuntime) -> None:
    async def batch_echo(ctx: KernelContext) -> None:
        async for batch in ctx.batches(64):
            await ctx.send_batch(batch)

    await runtime.launch("b", batch_echo)
    await runtime.activate("b")
    await runtime.send_batch("b", list(range(N)))
    got: list[int] = []
    while len(got) < N:
        got += await runtime.receive_batch("b", N, timeout=2)
    snap = runtime.snapshot().kernel("b")
    assert got == list(range(N))
    assert (snap.messages_in, snap.messages_out) == (N, N)


async def test_inbox_depth_capacity_and_high_water(runtime: RingKernelRuntime) -> None:
    await runtime.launch("echo", echo, queue_size=64)
    await runtime.activate("echo")
    await runtime.deactivate("echo")
    for i in range(10):
        await runtime.send("echo", i)

    snap = runtime.snapshot().kernel("echo")
    assert (snap.inbox_depth, snap.inbox_capacity, snap.inbox_high_water) == (10, 64, 10)
    assert snap.state == "DEACTIVATED" and snap.messages_in == 0

    await runtime.reactivate("echo")
    assert await runtime.receive_batch("echo", 10, timeout=2) == list(range(10))
    snap = runtime.snapshot().kernel("echo")
    assert (snap.inbox_depth, snap.inbox_high_water) == (0, 10)


async def test_quiescence(runtime: RingKernelRuntime) -> None:
    got: list[Any] = []
    await runtime.launch("sink", collector(got))
    await runtime.launch("mid", echo)
    runtime.connect("mid", "sink")
    assert runtime.is_quiescent()  # launched, nothing queued

    await runtime.activate("sink")
    await runtime.activate("mid")
    await wait_until(runtime.is_quiescent)  # both waiting in receive
    for i in range(100):
        await runtime.send("mid", i)
    assert not runtime.is_quiescent() and not runtime.is_idle("mid")
    assert not runtime.snapshot().quiescent

    await wait_until(runtime.is_quiescent)
    assert got == list(range(100))  # quiescent means every accepted message was processed
    assert runtime.snapshot().quiescent
    assert runtime.is_idle("mid") and runtime.is_idle("sink")
    assert runtime.is_quiescent(["mid"])


async def test_a_busy_kernel_is_not_idle(runtime: RingKernelRuntime) -> None:
    release = asyncio.Event()

    async def slow(ctx: KernelContext) -> None:
        async for _ in ctx.messages():
            await release.wait()  # busy with the message in hand

    await runtime.launch("slow", slow)
    await runtime.activate("slow")
    await runtime.send("slow", "work")
    await wait_until(lambda: runtime.snapshot().kernel("slow").messages_in == 1)
    assert runtime.queued("slow") == 0
    assert not runtime.is_idle("slow") and not runtime.is_quiescent()
    assert runtime.snapshot().kernel("slow").waiting == 0
    release.set()
    await wait_until(runtime.is_quiescent)
    assert runtime.snapshot().kernel("slow").waiting == 1


async def test_a_finished_kernel_is_idle(runtime: RingKernelRuntime) -> None:
    await runtime.launch("numbers", source([1]))
    await runtime.activate("numbers")
    await runtime.wait_finished("numbers", timeout=2)
    assert runtime.is_idle("numbers") and runtime.is_quiescent()


async def test_latency_percentiles_appear_after_enough_messages(
    runtime: RingKernelRuntime,
) -> None:
    await runtime.launch("echo", echo)
    await runtime.activate("echo")
    assert runtime.snapshot().kernel("echo").latency_p50_us is None

    for i in range(200):
        await runtime.send("echo", i)
        await runtime.receive("echo", timeout=2)
    snap = runtime.snapshot().kernel("echo")
    assert snap.latency_p50_us is not None and snap.latency_p99_us is not None
    assert 0 < snap.latency_p50_us <= snap.latency_p99_us


@pytest.mark.parametrize("style", ["receive", "receive_batch", "messages"])
async def test_latency_times_the_work_not_the_wait_for_a_message(
    runtime: RingKernelRuntime, style: str
) -> None:
    async def worker(ctx: KernelContext) -> None:
        if style == "messages":
            async for msg in ctx.messages():
                await asyncio.sleep(0.002)  # the work
                await ctx.send(msg)
            return
        while not ctx.should_terminate:
            try:
                if style == "receive":
                    msg = await ctx.receive(timeout=1)
                else:
                    msg = await ctx.receive_batch(1, timeout=1)
            except TimeoutError:
                continue
            await asyncio.sleep(0.002)  # the work
            await ctx.send(msg)

    await runtime.launch("w", worker)
    await runtime.activate("w")
    # Timed: the messages counted 0, 16 and 32. The kernel waits 150 ms for each message,
    # then works 2 ms: a sample that took in the wait would be 150 ms or more.
    for i in range(33):
        await asyncio.sleep(0.15)
        await runtime.send("w", i)
        await runtime.receive("w", timeout=5)
    p50 = runtime.snapshot().kernel("w").latency_p50_us
    assert p50 is not None and 1_500 <= p50 < 75_000, p50


async def test_rate_over_a_window(runtime: RingKernelRuntime) -> None:
    await runtime.launch("echo", echo)
    await runtime.activate("echo")
    assert runtime.snapshot().kernel("echo").rate_in == 0.0
    for i in range(50):
        await runtime.send("echo", i)
    await runtime.receive_batch("echo", 50, timeout=2)
    await wait_until(lambda: runtime.snapshot().kernel("echo").rate_in > 0)


async def test_errors_a_body_survives_are_counted(runtime: RingKernelRuntime) -> None:
    async def tolerant(ctx: KernelContext) -> None:
        async for msg in ctx.messages():
            if msg < 0:
                ctx.record_error(f"negative: {msg}")
                continue
            ctx.metrics["last"] = msg
            await ctx.send(msg)

    await runtime.launch("t", tolerant)
    await runtime.activate("t")
    for msg in (1, -1, 2, -2, 3):
        await runtime.send("t", msg)
    assert await runtime.receive_batch("t", 3, timeout=2) != []
    await wait_until(lambda: runtime.snapshot().kernel("t").messages_in == 5)
    snap = runtime.snapshot().kernel("t")
    assert snap.errors == 2 and snap.last_error is None and snap.state == "ACTIVE"
    assert snap.metrics == {"last_error": "negative: -2", "last": 3}


async def test_snapshots_are_frozen_and_serializable(runtime: RingKernelRuntime) -> None:
    await runtime.launch("a", echo)
    await runtime.launch("b", echo)
    runtime.connect("a", "b")
    snap = runtime.snapshot()
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.kernels[0].messages_in = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.queues[0].depth = 1  # type: ignore[misc]
    as_dict = snap.as_dict()
    assert [k["id"] for k in as_dict["kernels"]] == ["a", "b"]
    assert as_dict["queues"][0]["from"] == "a.out"
    with pytest.raises(KeyError):
        snap.kernel("nope")


def test_replica_metrics_add_up_numbers_and_keep_the_rest() -> None:
    from ringctl.engine.telemetry import merge_metrics

    merged = merge_metrics(
        [
            {"total": 10, "seen": 1.5, "last": "a", "ok": True},
            {"total": 5, "seen": 0.5, "last": "b", "ok": False, "only_here": 3},
        ]
    )
    assert merged == {"total": 15, "seen": 2.0, "last": "b", "ok": False, "only_here": 3}


async def test_a_replicated_sink_shows_its_whole_total() -> None:
    async def summing(ctx: KernelContext) -> None:
        total = 0
        async for msg in ctx.messages():
            total += msg
            ctx.metrics["total"] = total

    async with RingKernelRuntime() as rt:
        await rt.launch("sink", summing, replicas=3)
        await rt.activate("sink")
        await rt.send_batch("sink", list(range(1, 101)))
        await wait_until(lambda: rt.snapshot().kernel("sink").messages_in == 100)
        assert rt.snapshot().kernel("sink").metrics["total"] == 5050
