"""A kernel's ``ctx.receive(timeout)``: on time, and without a timer per wait."""

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
