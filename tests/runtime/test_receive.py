"""Reading a kernel's output from outside: ``runtime.receive`` / ``receive_batch``."""

from __future__ import annotations

import asyncio

import pytest

from ringctl import RingKernelRuntime

from .support import echo, wait_until


async def test_receive_times_out(runtime: RingKernelRuntime) -> None:
    await runtime.launch("echo", echo)
    await runtime.activate("echo")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await runtime.receive("echo", timeout=0.05)
    assert loop.time() - started >= 0.045  # uvloop timers are in ms
    with pytest.raises(TimeoutError):
        await runtime.receive("echo", timeout=0)


async def test_concurrent_receivers_each_get_a_message(runtime: RingKernelRuntime) -> None:
    await runtime.launch("echo", echo)
    await runtime.activate("echo")
    readers = [asyncio.create_task(runtime.receive("echo", timeout=2)) for _ in range(5)]
    for i in range(5):
        await runtime.send("echo", i)
    assert sorted(await asyncio.gather(*readers)) == [0, 1, 2, 3, 4]


async def test_a_cancelled_receive_passes_its_wake_up_on(runtime: RingKernelRuntime) -> None:
    await runtime.launch("echo", echo)
    await runtime.activate("echo")
    first = asyncio.create_task(runtime.receive("echo"))
    second = asyncio.create_task(runtime.receive("echo"))
    await wait_until(lambda: runtime.snapshot().kernel("echo").waiting == 1)
    for _ in range(3):
        await asyncio.sleep(0)  # let both receives start waiting

    await runtime.send("echo", "only one")
    await asyncio.sleep(0)  # the echo runs and wakes the first receive ...
    first.cancel()  # ... which is cancelled before it can take the message
    async with asyncio.timeout(2):
        assert await second == "only one"
    assert first.cancelled()


async def test_a_receive_cancelled_while_waiting_leaves_no_trace(
    runtime: RingKernelRuntime,
) -> None:
    await runtime.launch("echo", echo)
    await runtime.activate("echo")
    for _ in range(3):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await runtime.receive("echo")
    await runtime.send("echo", "next")
    assert await runtime.receive("echo", timeout=2) == "next"


async def test_receive_batch_needs_a_positive_size(runtime: RingKernelRuntime) -> None:
    await runtime.launch("echo", echo)
    await runtime.activate("echo")
    await runtime.send("echo", 1)
    with pytest.raises(ValueError, match="max_items must be at least 1, got 0"):
        await runtime.receive_batch("echo", 0, timeout=1)
    assert await runtime.receive_batch("echo", 1, timeout=2) == [1]
