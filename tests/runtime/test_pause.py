"""Pause and resume: after ``deactivate()`` returns the kernel receives nothing until
``reactivate()``; messages keep queueing; none is lost or reordered."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ringctl import KernelContext, RingKernelRuntime
from ringctl.exceptions import KernelStateError

from .support import echo, holds, other_tasks, wait_until


def reader_into(got: list[Any]) -> Any:
    """A body whose receive has no timeout: it is left pending when the kernel pauses."""

    async def reader(ctx: KernelContext) -> None:
        while not ctx.should_terminate:
            try:
                msg = await ctx.receive()
            except TimeoutError:  # termination was requested while waiting
                continue
            got.append(msg)

    return reader


async def test_a_pending_receive_does_not_complete_while_paused(
    runtime: RingKernelRuntime,
) -> None:
    got: list[Any] = []
    await runtime.launch("reader", reader_into(got))
    await runtime.activate("reader")
    await runtime.send("reader", "a")
    await wait_until(lambda: got == ["a"])
    await wait_until(lambda: runtime.snapshot().kernel("reader").waiting == 1)

    await runtime.deactivate("reader")
    await runtime.send("reader", "b")
    await runtime.send("reader", "c")
    assert await holds(lambda: got == ["a"])
    assert runtime.queued("reader") == 2

    await runtime.reactivate("reader")
    await wait_until(lambda: got == ["a", "b", "c"])


async def test_a_message_that_woke_the_receiver_is_not_taken_after_deactivate(
    runtime: RingKernelRuntime,
) -> None:
    got: list[Any] = []
    await runtime.launch("reader", reader_into(got))
    await runtime.activate("reader")
    await wait_until(lambda: runtime.snapshot().kernel("reader").waiting == 1)

    # The send wakes the pending receive; the pause lands before the body runs again.
    await runtime.send("reader", "b")
    await runtime.deactivate("reader")
    assert await holds(lambda: got == [])
    assert runtime.queued("reader") == 1

    await runtime.reactivate("reader")
    await wait_until(lambda: got == ["b"])


async def test_a_pending_receive_with_timeout_times_out_instead(
    runtime: RingKernelRuntime,
) -> None:
    outcomes: list[Any] = []

    async def body(ctx: KernelContext) -> None:
        while not ctx.should_terminate:
            try:
                outcomes.append(await ctx.receive(timeout=0.05))
            except TimeoutError:
                outcomes.append("timeout")

    await runtime.launch("k", body)
    await runtime.activate("k")
    await wait_until(lambda: "timeout" in outcomes)
    await runtime.deactivate("k")
    outcomes.clear()
    await runtime.send("k", "m")
    await wait_until(lambda: outcomes.count("timeout") >= 2)
    assert "m" not in outcomes
    await runtime.reactivate("k")
    await wait_until(lambda: "m" in outcomes)


async def test_a_pending_batch_receive_does_not_complete_while_paused(
    runtime: RingKernelRuntime,
) -> None:
    batches: list[list[Any]] = []

    async def body(ctx: KernelContext) -> None:
        async for batch in ctx.batches(max_items=100):
            batches.append(batch)

    await runtime.launch("k", body)
    await runtime.activate("k")
    await wait_until(lambda: runtime.snapshot().kernel("k").waiting == 1)
    await runtime.deactivate("k")
    await runtime.send_batch("k", [1, 2, 3])
    assert await holds(lambda: batches == [])
    await runtime.reactivate("k")
    await wait_until(lambda: [m for b in batches for m in b] == [1, 2, 3])


async def test_is_active_and_wait_active_follow_the_state(runtime: RingKernelRuntime) -> None:
    ctxs: list[KernelContext] = []

    async def body(ctx: KernelContext) -> None:
        ctxs.append(ctx)
        async for _ in ctx.messages():
            pass

    await runtime.launch("k", body)
    await runtime.activate("k")
    await wait_until(lambda: ctxs)
    ctx = ctxs[0]
    assert ctx.is_active and not ctx.should_terminate

    await runtime.deactivate("k")
    assert not ctx.is_active
    resumed = asyncio.create_task(ctx.wait_active())
    assert await holds(lambda: not resumed.done())

    await runtime.reactivate("k")
    assert ctx.is_active
    async with asyncio.timeout(1):
        await resumed

    # wait_active also returns when termination is requested during a pause.
    await runtime.deactivate("k")
    stopped = asyncio.create_task(ctx.wait_active())
    await runtime.terminate("k")
    async with asyncio.timeout(1):
        await stopped
    assert ctx.should_terminate and not ctx.is_active


async def test_paused_replicas_none_of_them_receives(runtime: RingKernelRuntime) -> None:
    got: list[Any] = []
    await runtime.launch("pool", reader_into(got), replicas=3)
    await runtime.activate("pool")
    await wait_until(lambda: runtime.snapshot().kernel("pool").waiting == 3)
    await runtime.deactivate("pool")
    for i in range(10):
        await runtime.send("pool", i)
    assert await holds(lambda: got == [])
    await runtime.reactivate("pool")
    await wait_until(lambda: sorted(got) == list(range(10)))


async def test_a_long_pause_loses_and_reorders_nothing(runtime: RingKernelRuntime) -> None:
    await runtime.launch("echo", echo, queue_size=1000)
    await runtime.activate("echo")
    await runtime.deactivate("echo")
    for i in range(1000):
        await runtime.send("echo", i)
    assert runtime.snapshot().kernel("echo").inbox_depth == 1000
    assert runtime.snapshot().kernel("echo").messages_in == 0

    await runtime.reactivate("echo")
    assert await runtime.receive_batch("echo", 1000, timeout=2) == list(range(1000))


# -- storms: hypothesis-generated lifecycle actions interleaved with sends under load -------


async def _actor_loop(ctx: KernelContext) -> None:
    """The spec's actor loop, as an echo."""
    while not ctx.should_terminate:
        if not ctx.is_active:
            await ctx.wait_active()
            continue
        try:
            msg = await ctx.receive(timeout=0.1)
            await ctx.send(msg)
        except TimeoutError:
            continue


async def _batch_echo(ctx: KernelContext) -> None:
    async for batch in ctx.batches(max_items=16):
        await ctx.send_batch(batch)


def _raw_sink(got: list[Any]) -> Any:
    """Never looks at ``is_active``: the runtime alone must hold its receive while paused."""

    async def sink(ctx: KernelContext) -> None:
        while not ctx.should_terminate:
            try:
                msg = await ctx.receive()
            except TimeoutError:
                continue
            await asyncio.sleep(0)  # between two receives: a pause can land here
            got.append(msg)

    return sink


def _raw_batch_sink(got: list[Any]) -> Any:
    async def sink(ctx: KernelContext) -> None:
        while not ctx.should_terminate:
            try:
                batch = await ctx.receive_batch(max_items=8)
            except TimeoutError:
                continue
            await asyncio.sleep(0)
            got.extend(batch)

    return sink


#: Echo kernels (read back with runtime.receive) and sinks (that fill the test's list).
ECHOES = {"messages": echo, "actor_loop": _actor_loop, "batches": _batch_echo}
SINKS = {"raw_sink": _raw_sink, "raw_batch_sink": _raw_batch_sink}
BODIES = sorted([*ECHOES, *SINKS])

STEP = st.one_of(
    st.tuples(st.sampled_from(["deactivate", "reactivate"])),
    st.tuples(st.just("pause"), st.integers(0, 30)),
    st.tuples(st.just("spin"), st.integers(0, 30)),
    st.tuples(st.just("progress"), st.integers(1, 40)),
)


async def _storm(
    steps: list[tuple[Any, ...]], body: str, total: int, queue_size: int, batched: bool
) -> None:
    got: list[int] = []

    async def produce(runtime: RingKernelRuntime) -> None:
        if batched:
            for start in range(0, total, 7):
                await runtime.send_batch("k", range(start, min(total, start + 7)))
        else:
            for i in range(total):
                await runtime.send("k", i)

    async def consume(runtime: RingKernelRuntime) -> None:
        while len(got) < total:
            got.extend(await runtime.receive_batch("k", 64))

    def taken() -> int:
        return runtime.snapshot().kernel("k").messages_in

    kernel = ECHOES[body] if body in ECHOES else SINKS[body](got)
    async with asyncio.timeout(20), RingKernelRuntime(shutdown_timeout=2.0) as runtime:
        await runtime.launch("k", kernel, queue_size=queue_size)
        await runtime.activate("k")
        async with asyncio.TaskGroup() as tg:
            tg.create_task(produce(runtime))
            if body in ECHOES:
                tg.create_task(consume(runtime))
            paused_at: int | None = None
            for step in steps:
                match step:
                    case ("deactivate" | "reactivate",) if (paused_at is None) != (
                        step[0] == "deactivate"
                    ):
                        # Not valid from here: it raises and changes nothing.
                        before = runtime.get_state("k")
                        with pytest.raises(KernelStateError):
                            await getattr(runtime, step[0])("k")
                        assert runtime.get_state("k") is before
                    case ("deactivate",):
                        await runtime.deactivate("k")
                        paused_at = taken()
                    case ("reactivate",):
                        assert taken() == paused_at, "a paused kernel received a message"
                        await runtime.reactivate("k")
                        paused_at = None
                    case ("spin", n):
                        for _ in range(n):
                            await asyncio.sleep(0)
                    case ("pause", n) if paused_at is None:
                        # deactivate, let everything else run for a while, reactivate
                        await runtime.deactivate("k")
                        paused_at = taken()
                        for _ in range(n):
                            await asyncio.sleep(0)
                            assert taken() == paused_at, "a paused kernel received a message"
                        await runtime.reactivate("k")
                        paused_at = None
                    case ("progress", n) if paused_at is None:
                        goal = min(total, len(got) + n)
                        await wait_until(lambda g=goal: len(got) >= g, timeout=5)  # type: ignore[misc]
                    case _:
                        pass
                if paused_at is not None:
                    assert taken() == paused_at, "a paused kernel received a message"
            if paused_at is not None:
                await runtime.reactivate("k")
        await wait_until(lambda: len(got) >= total, timeout=5)
        snap = runtime.snapshot().kernel("k")
        assert got == list(range(total)), "lost, duplicated or reordered"
        assert snap.messages_in == total
        assert snap.messages_out == (total if body in ECHOES else 0)
        assert snap.inbox_depth == 0
    assert not other_tasks()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    steps=st.lists(STEP, max_size=25),
    body=st.sampled_from(BODIES),
    total=st.integers(0, 400),
    queue_size=st.sampled_from([1, 3, 64]),
    batched=st.booleans(),
    loop=st.sampled_from(["asyncio", "uvloop"]),
)
def test_pause_storm_delivers_everything_once_and_in_order(
    steps: list[tuple[Any, ...]],
    body: str,
    total: int,
    queue_size: int,
    batched: bool,
    loop: str,
) -> None:
    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_storm(steps, body, total, queue_size, batched))


@pytest.mark.parametrize("body", BODIES)
def test_a_long_fixed_storm(body: str) -> None:
    # A fixed storm under steady load, next to the generated ones.
    steps: list[tuple[Any, ...]] = [("spin", 3), ("deactivate",), ("spin", 10), ("reactivate",)]
    asyncio.run(_storm(steps * 30, body, 1000, 8, batched=False))
