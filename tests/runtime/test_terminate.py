"""Termination: the graceful path, force stops, what was still queued, and no task left behind."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest

from ringctl import KernelContext, KernelState, RingKernelRuntime
from ringctl.engine.local.engine import FORCE_STOP_GRACE_S

from .support import collector, echo, kernel_tasks, other_tasks, source, wait_until

S = KernelState


async def test_should_terminate_ends_the_loop_gracefully(runtime: RingKernelRuntime) -> None:
    seen: list[Any] = []

    async def body(ctx: KernelContext) -> None:
        async for _ in ctx.messages():
            pass
        # Still inside terminate(): the body sees the flag and the TERMINATING state.
        seen.append((ctx.should_terminate, runtime.get_state(ctx.kernel_id)))

    await runtime.launch("k", body)
    await runtime.activate("k")
    report = await runtime.terminate("k", timeout=5.0)

    assert seen == [(True, S.TERMINATING)]
    assert report.graceful and not report.forced
    assert report.abandoned == 0 and report.error is None and report.left_in_inbox == 0
    assert runtime.get_state("k") is S.TERMINATED
    info = runtime.get_info("k")
    assert not info.forced and not info.completed and info.error is None
    assert not kernel_tasks()


async def test_terminate_a_launched_kernel_that_never_ran(runtime: RingKernelRuntime) -> None:
    await runtime.launch("k", echo)
    await runtime.send("k", "never read")
    report = await runtime.terminate("k")
    assert report.graceful and report.left_in_inbox == 1
    assert runtime.get_state("k") is S.TERMINATED


async def test_force_stop_of_a_body_that_ignores_should_terminate(
    runtime: RingKernelRuntime,
) -> None:
    async def deaf(ctx: KernelContext) -> None:
        while True:  # never looks at ctx.should_terminate
            await asyncio.sleep(0.005)

    await runtime.launch("deaf", deaf)
    await runtime.activate("deaf")

    started = time.monotonic()
    report = await runtime.terminate("deaf", timeout=0.2)
    elapsed = time.monotonic() - started

    assert 0.19 <= elapsed < 0.2 + FORCE_STOP_GRACE_S  # uvloop timers are in ms
    assert report.forced and not report.graceful and report.abandoned == 0
    assert runtime.get_info("deaf").forced
    assert runtime.get_state("deaf") is S.TERMINATED
    assert not kernel_tasks()


async def test_force_stop_of_a_body_that_swallows_one_cancellation(
    runtime: RingKernelRuntime,
) -> None:
    async def stubborn(ctx: KernelContext) -> None:
        with contextlib.suppress(asyncio.CancelledError):  # swallowed once ...
            await asyncio.Event().wait()
        await asyncio.Event().wait()  # ... but the next cancellation gets through

    await runtime.launch("stubborn", stubborn)
    await runtime.activate("stubborn")
    report = await runtime.terminate("stubborn", timeout=0.1)
    assert report.forced and report.abandoned == 0
    assert not kernel_tasks()


async def test_a_body_that_swallows_every_cancellation_is_abandoned_in_bounded_time() -> None:
    released = asyncio.Event()

    async def immortal(ctx: KernelContext) -> None:
        while not released.is_set():
            with contextlib.suppress(asyncio.CancelledError):  # never lets go (until released)
                await asyncio.Event().wait()

    async with RingKernelRuntime() as runtime:
        await runtime.launch("immortal", immortal)
        await runtime.activate("immortal")

        started = time.monotonic()
        report = await runtime.terminate("immortal", timeout=0.1)
        elapsed = time.monotonic() - started

        assert elapsed < 0.1 + FORCE_STOP_GRACE_S + 0.5
        assert report.forced and not report.graceful
        assert report.abandoned == 1
        assert runtime.get_state("immortal") is S.TERMINATED
        assert runtime.get_info("immortal").forced
        released.set()  # so the runtime's exit can finally stop it
    assert not other_tasks()


async def test_queued_messages_are_counted_not_silently_dropped(
    runtime: RingKernelRuntime,
) -> None:
    got: list[Any] = []
    await runtime.launch("sink", collector(got))
    await runtime.launch("src", source(["e1", "e2", "e3"]))
    runtime.connect("src", "sink")
    await runtime.activate("src")
    await runtime.wait_finished("src", timeout=2)  # three messages wait on the edge
    for msg in ("x1", "x2"):
        await runtime.send("sink", msg)  # two more from outside

    report = await runtime.terminate("sink")

    assert got == []
    assert report.left_in_inbox == 5
    snap = runtime.snapshot()
    assert snap.kernel("sink").left == 5  # the telemetry shows them too, as left
    assert snap.kernel("sink").drops == 0  # not a backpressure policy's drop
    assert snap.kernel("sink").inbox_depth == 0
    (edge,) = snap.queues
    assert edge.left == 3 and edge.depth == 0 and edge.drops == 0
    acc = runtime.accounting()
    assert acc.holds and acc.left == 5 and not acc.clean


async def test_a_send_to_a_terminated_kernel_is_counted_as_left(
    runtime: RingKernelRuntime,
) -> None:
    await runtime.launch("sink", collector([]))
    await runtime.launch("src", echo)
    runtime.connect("src", "sink", capacity=2)
    await runtime.activate("src")
    await runtime.terminate("sink")

    for i in range(5):
        await runtime.send("src", i)  # src forwards into the closed edge (never blocks)
    await wait_until(lambda: runtime.snapshot().queues[0].left == 5)
    assert runtime.snapshot().kernel("src").messages_out == 5
    acc = runtime.accounting()
    (edge,) = [q for q in acc.queues if q.consumer == "sink"]
    assert acc.holds
    assert (edge.accepted, edge.left, edge.dropped, edge.balance) == (5, 5, 0, 0)


async def test_terminate_all_is_concurrent() -> None:
    async def slow_to_leave(ctx: KernelContext) -> None:
        async for _ in ctx.messages():
            pass
        await asyncio.sleep(0.2)  # the body's own clean-up takes a while

    async with RingKernelRuntime() as runtime:
        for i in range(50):
            await runtime.launch(f"k{i}", slow_to_leave)
            await runtime.activate(f"k{i}")

        started = time.monotonic()
        reports = await runtime.terminate_all(timeout=5.0)
        elapsed = time.monotonic() - started

        assert len(reports) == 50 and all(r.graceful for r in reports)
        assert elapsed < 50 * 0.2 / 5  # one after another would take 10 s
        assert not kernel_tasks()


async def test_terminate_all_skips_finished_kernels_and_reports_the_rest(
    runtime: RingKernelRuntime,
) -> None:
    await runtime.launch("done", source([1]))
    await runtime.activate("done")
    await runtime.wait_finished("done", timeout=2)
    await runtime.launch("launched", echo)
    await runtime.launch("paused", echo)
    await runtime.activate("paused")
    await runtime.deactivate("paused")

    reports = await runtime.terminate_all(timeout=1.0)

    assert sorted(r.kernel_id for r in reports) == ["launched", "paused"]
    assert all(runtime.get_state(k) is S.TERMINATED for k in runtime.kernel_ids)
    assert not other_tasks()


async def test_terminate_all_with_a_failing_kernel_whose_sibling_will_not_stop() -> None:
    async def half_broken(ctx: KernelContext) -> None:
        if ctx.replica == 0:
            raise RuntimeError("replica 0 broke")
        while True:  # replica 1 ignores should_terminate
            await asyncio.sleep(0.005)

    async with RingKernelRuntime() as runtime:
        await runtime.launch("k", half_broken, replicas=2)
        await runtime.activate("k")
        await wait_until(lambda: runtime.get_state("k") is S.TERMINATING)

        await runtime.terminate_all(timeout=0.1)

        assert runtime.get_state("k") is S.TERMINATED
        assert runtime.get_info("k").forced
        assert runtime.get_info("k").error == "RuntimeError: replica 0 broke"
        assert not other_tasks()


# -- no task left behind --------------------------------------------------------------------


async def _a_bit_of_everything(runtime: RingKernelRuntime) -> None:
    """Kernels in every state a runtime can be left in."""

    async def broken(ctx: KernelContext) -> None:
        raise ValueError("broken on purpose")

    await runtime.launch("launched", echo)
    await runtime.launch("active", echo)
    await runtime.activate("active")
    await runtime.launch("paused", echo, replicas=3)
    await runtime.activate("paused")
    await runtime.deactivate("paused")
    await runtime.launch("finished", source([1, 2]))
    await runtime.activate("finished")
    await runtime.launch("broken", broken)
    await runtime.activate("broken")
    await runtime.send("active", "in flight")
    await runtime.send("paused", "queued")


async def test_no_task_left_after_the_context_manager() -> None:
    async with RingKernelRuntime() as runtime:
        await _a_bit_of_everything(runtime)
        assert kernel_tasks()
    assert not other_tasks()
    assert all(runtime.get_state(k) is S.TERMINATED for k in runtime.kernel_ids)


async def test_no_task_left_after_terminate_all() -> None:
    runtime = RingKernelRuntime()
    await _a_bit_of_everything(runtime)
    await runtime.terminate_all(timeout=1.0)
    assert not other_tasks()


async def test_no_task_left_when_the_async_with_body_raises() -> None:
    with pytest.raises(KeyError, match="the user's own error"):
        async with RingKernelRuntime() as runtime:
            await _a_bit_of_everything(runtime)
            raise KeyError("the user's own error")
    assert not other_tasks()
    assert all(runtime.get_state(k) is S.TERMINATED for k in runtime.kernel_ids)


async def test_no_task_left_when_the_async_with_body_is_cancelled() -> None:
    entered = asyncio.Event()

    async def user_code() -> None:
        async with RingKernelRuntime() as runtime:
            await _a_bit_of_everything(runtime)
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(user_code())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not other_tasks()
