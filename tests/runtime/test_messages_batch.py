"""``ctx.messages()`` takes queued messages in batches and hands them out one by one."""

from __future__ import annotations

import asyncio
from typing import Any

from ringctl import KernelContext, RingKernelRuntime

from .support import wait_until


def holding_body(handled: list[Any], gate: asyncio.Event, hold_on: Any) -> Any:
    async def body(ctx: KernelContext) -> None:
        async for msg in ctx.messages():
            handled.append(msg)
            if msg == hold_on:
                await gate.wait()  # the rest of the batch it took waits in the body

    return body


async def test_a_pause_mid_batch_puts_the_rest_back_in_line(runtime: RingKernelRuntime) -> None:
    handled: list[Any] = []
    gate = asyncio.Event()
    await runtime.launch("k", holding_body(handled, gate, 2), queue_size=64)
    for i in range(10):
        await runtime.send("k", i)
    await runtime.activate("k")  # the body takes all ten at once
    await wait_until(lambda: handled == [0, 1, 2])
    assert runtime.queued("k") == 0  # taken at once, handed out one by one
    await runtime.deactivate("k")
    gate.set()
    await wait_until(lambda: runtime.queued("k") == 7)  # back in the queue, in order
    await asyncio.sleep(0.02)
    assert handled == [0, 1, 2]  # paused: nothing more is handled
    acc = runtime.accounting()
    assert acc.holds
    await runtime.reactivate("k")
    await wait_until(lambda: handled == list(range(10)))
    assert runtime.snapshot().kernel("k").messages_in == 10


async def test_a_stop_mid_batch_counts_the_rest_as_left(runtime: RingKernelRuntime) -> None:
    handled: list[Any] = []
    gate = asyncio.Event()
    await runtime.launch("k", holding_body(handled, gate, 4), queue_size=64)
    for i in range(20):
        await runtime.send("k", i)
    await runtime.activate("k")
    await wait_until(lambda: handled == [0, 1, 2, 3, 4])
    stopping = asyncio.create_task(runtime.terminate("k", timeout=2.0))
    await asyncio.sleep(0.01)
    gate.set()
    report = await stopping
    assert report.graceful and report.left_in_inbox == 15
    assert handled == [0, 1, 2, 3, 4]
    acc = runtime.accounting()
    assert acc.holds and acc.left == 15
    assert runtime.snapshot().kernel("k").messages_in == 5


async def test_a_body_that_breaks_out_gives_back_what_it_took(
    runtime: RingKernelRuntime,
) -> None:
    handled: list[Any] = []

    async def first_three(ctx: KernelContext) -> None:
        stream = ctx.messages()
        async for msg in stream:
            handled.append(msg)
            if len(handled) == 3:
                break
        await stream.aclose()  # type: ignore[attr-defined]
        await asyncio.sleep(3600)  # still running, reading nothing more

    await runtime.launch("k", first_three, queue_size=64)
    for i in range(8):
        await runtime.send("k", i)
    await runtime.activate("k")
    await wait_until(lambda: runtime.queued("k") == 5)
    assert handled == [0, 1, 2]
    assert runtime.accounting().holds
