"""Timed receives, a kernel's ``ctx.receive(timeout)`` and the runtime's ``receive(timeout)``:
on time, and without a timer per wait."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ringctl import RingKernelRuntime
from ringctl.kernel.context import KernelContext


async def timed_echo(ctx: KernelContext) -> None:
    while not ctx.should_terminate:
        try:
            msg = await ctx.receive(timeout=5.0)
        except TimeoutError:
            continue
        await ctx.send(msg)


async def test_timed_waits_share_one_timer(
    runtime: RingKernelRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    await runtime.launch("echo", timed_echo)
    await runtime.activate("echo")
    await runtime.send("echo", -1)
    assert await runtime.receive("echo", timeout=2) == -1  # the kernel is waiting now
    loop = asyncio.get_running_loop()
    timers: list[Any] = []
    call_at = loop.call_at

    def counting_call_at(when: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
        timers.append(callback)
        return call_at(when, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_at", counting_call_at)
    for i in range(200):  # each round trip finds the kernel waiting with a timeout
        await runtime.send("echo", i)
        assert await runtime.receive("echo") == i
    assert len(timers) <= 2, f"{len(timers)} timers armed for 200 timed waits"


async def test_a_timeout_runs_from_its_own_receive(runtime: RingKernelRuntime) -> None:
    """The timer armed for an earlier, longer or shorter, wait never cuts a later one
    short or lets it overrun."""
    waited: list[tuple[float, float]] = []

    async def body(ctx: KernelContext) -> None:
        loop = asyncio.get_running_loop()
        for timeout in (0.3, 0.3, 2.0, 0.1):
            started = loop.time()
            try:
                await ctx.receive(timeout=timeout)
            except TimeoutError:
                waited.append((timeout, loop.time() - started))
        await ctx.send("done")
        while not ctx.should_terminate:
            await ctx.wait_active()
            await asyncio.sleep(0.01)

    await runtime.launch("k", body)
    await runtime.activate("k")
    await asyncio.sleep(0.15)
    await runtime.send("k", "first")  # ends the first wait halfway through its timeout
    await asyncio.sleep(0.6)  # the second wait times out 0.3 s after the first ended
    await runtime.send("k", "third")  # ends the 2 s wait
    assert await runtime.receive("k", timeout=5) == "done"
    assert [t for t, _ in waited] == [0.3, 0.1]
    (_, second), (_, fourth) = waited
    assert 0.29 <= second < 1.0  # not ended by the first wait's timer (due 0.15 s in)
    assert 0.09 <= fourth < 1.0  # not left to the 2 s wait's timer


async def test_the_runtimes_timed_receives_share_one_timer(
    runtime: RingKernelRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    await runtime.launch("echo", timed_echo)
    await runtime.activate("echo")
    await runtime.send("echo", -1)
    assert await runtime.receive("echo", timeout=2) == -1
    loop = asyncio.get_running_loop()
    timers: list[Any] = []
    call_at = loop.call_at

    def counting_call_at(when: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
        timers.append(callback)
        return call_at(when, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_at", counting_call_at)
    monkeypatch.setattr(loop, "call_later", lambda *a, **k: pytest.fail("call_later per wait"))
    waits = runtime.snapshot().kernel("echo").messages_in
    for i in range(200):  # each receive waits: the echo has not run yet when it starts
        await runtime.send("echo", i)
        assert await runtime.receive("echo", timeout=5) == i
    assert runtime.snapshot().kernel("echo").messages_in == waits + 200
    # The kernel's own timed waits armed at most two; the runtime's receives at most two.
    assert len(timers) <= 4, f"{len(timers)} timers armed for 400 timed waits"


async def test_the_runtimes_timed_receives_each_end_on_time(runtime: RingKernelRuntime) -> None:
    """Waits in progress together, started latest-deadline first: each times out at its
    own deadline, neither early (a timer armed for another) nor late (left to a later one);
    one that gets its message in time is not timed out afterwards."""
    await runtime.launch("echo", timed_echo)
    await runtime.activate("echo")
    loop = asyncio.get_running_loop()

    async def timed(timeout: float) -> float:
        started = loop.time()
        with pytest.raises(TimeoutError):
            await runtime.receive("echo", timeout=timeout)
        return loop.time() - started

    long = asyncio.create_task(timed(0.6))
    await asyncio.sleep(0.01)
    short = asyncio.create_task(timed(0.1))
    middle = asyncio.create_task(timed(0.3))
    waited_short, waited_middle, waited_long = await asyncio.gather(short, middle, long)
    assert 0.09 <= waited_short < 0.25
    assert 0.29 <= waited_middle < 0.45
    assert 0.59 <= waited_long < 0.9
    answered = asyncio.create_task(runtime.receive("echo", timeout=0.2))
    await asyncio.sleep(0.05)
    await runtime.send("echo", "in time")
    assert await answered == "in time"
    after = asyncio.create_task(timed(0.4))
    assert 0.39 <= await after < 0.6  # the 0.2 s deadline of the answered one is no one's
