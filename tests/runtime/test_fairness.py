"""A kernel that never has to wait still lets the rest of the loop run (its budget)."""

from __future__ import annotations

import asyncio

import pytest

from ringctl import KernelContext, RingKernelRuntime
from ringctl.kernel import context

from .support import wait_until


async def _flood(ctx: KernelContext) -> None:
    """A source whose queue always has room: no send ever has to wait."""
    while not ctx.should_terminate:
        await ctx.send(0)


async def _flood_batches(ctx: KernelContext) -> None:
    while not ctx.should_terminate:
        await ctx.send_batch([0] * 64)


async def _count_passes(passes: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        passes[0] += 1
        await asyncio.sleep(0)


async def test_a_source_that_never_waits_yields_the_loop(runtime: RingKernelRuntime) -> None:
    for kid, body in (("one", _flood), ("batches", _flood_batches)):
        # The sink is never activated: its inbox only fills.
        await runtime.launch(kid, body)
        await runtime.launch(f"{kid}-sink", _flood, queue_size=10_000_000)
        runtime.connect(kid, f"{kid}-sink", capacity=10_000_000)
    passes, stop = [0], asyncio.Event()
    counter = asyncio.create_task(_count_passes(passes, stop))
    try:
        await runtime.activate("one")
        await runtime.activate("batches")
        # Without a budget each source would run until ten million messages filled its
        # queue, and this task would not run once meanwhile.
        await wait_until(
            lambda: passes[0] >= 20,
            timeout=20,
            what="other tasks ran while both sources still had room to send",
        )
        queued = runtime.snapshot().kernel("one").messages_out
        assert 0 < queued < 10_000_000
    finally:
        stop.set()
        await counter


async def _drain(ctx: KernelContext) -> None:
    """A sink that only receives, one message at a time, one batch at a time, or
    through ``messages()``, as its params say."""
    style = ctx.params["style"]
    if style == "messages":
        async for _ in ctx.messages():
            pass
        return
    while not ctx.should_terminate:
        try:
            if style == "receive":
                await ctx.receive(timeout=0.5)
            else:
                await ctx.receive_batch(8, timeout=0.5)
        except TimeoutError:
            continue


@pytest.mark.parametrize("style", ["receive", "receive_batch", "messages"])
async def test_a_sink_with_a_full_inbox_yields_the_loop(
    runtime: RingKernelRuntime, style: str
) -> None:
    n = 200_000
    await runtime.launch("sink", _drain, params={"style": style}, queue_size=n)
    await runtime.send_batch("sink", range(n))
    seen: list[int] = []
    stop = asyncio.Event()

    async def watch() -> None:  # one look per pass of the loop
        while not stop.is_set():
            seen.append(runtime.snapshot().kernel("sink").messages_in)
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    try:
        await runtime.activate("sink")
        await wait_until(lambda: runtime.queued("sink") == 0, timeout=30, what="the drain")
    finally:
        stop.set()
        await watcher
    # Without a budget on receiving the sink would take all it holds in one pass.
    assert any(0 < m < n for m in seen), seen[:5]


def test_the_budget_is_shared_by_the_running_kernels() -> None:
    before = context._budget
    try:
        context.running_bodies(1)
        alone = context._budget
        context.running_bodies(4999)
        crowded = context._budget
    finally:
        context.running_bodies(-5000)
    assert alone > 1000 * crowded >= 1000 * context._MIN_BUDGET
    assert context._budget == before
