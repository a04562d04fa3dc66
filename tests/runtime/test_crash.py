"""A body that raises, a body that returns, and a restart that keeps the inbox."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ringctl import KernelContext, KernelState, RingKernelRuntime
from ringctl.exceptions import KernelFailedError, KernelStateError

from .support import echo, kernel_tasks, source, wait_until

S = KernelState


async def fragile(ctx: KernelContext) -> None:
    """An echo that breaks on the message ``"boom"``."""
    async for msg in ctx.messages():
        if msg == "boom":
            raise ValueError(f"cannot process {msg!r}")
        await ctx.send(msg)


async def test_a_body_that_raises_ends_terminated_with_the_error_visible(
    runtime: RingKernelRuntime,
) -> None:
    await runtime.launch("fragile", fragile)
    await runtime.activate("fragile")
    await runtime.send("fragile", "boom")
    info = await runtime.wait_finished("fragile", timeout=2)

    assert info.state is S.TERMINATED
    assert runtime.get_state("fragile") is S.TERMINATED
    assert info.error == "ValueError: cannot process 'boom'"
    assert isinstance(info.exception, ValueError)
    assert info.traceback is not None and "cannot process 'boom'" in info.traceback
    assert not info.completed and not info.forced
    snap = runtime.snapshot().kernel("fragile")
    assert snap.state == "TERMINATED"
    assert snap.last_error == "ValueError: cannot process 'boom'"
    assert snap.errors == 1
    assert not snap.completed
    assert not kernel_tasks()
    assert "fragile" not in runtime.active_kernels


async def test_a_waiting_receive_fails_instead_of_hanging(runtime: RingKernelRuntime) -> None:
    await runtime.launch("fragile", fragile)
    await runtime.activate("fragile")
    waiting = asyncio.create_task(runtime.receive("fragile"))  # no timeout at all
    await wait_until(lambda: runtime.snapshot().kernel("fragile").waiting == 1)
    assert not waiting.done()

    await runtime.send("fragile", "boom")
    with pytest.raises(KernelFailedError) as caught:
        async with asyncio.timeout(2):
            await waiting
    assert caught.value.kernel_id == "fragile"
    assert isinstance(caught.value.cause, ValueError)
    assert "kernel 'fragile' failed: ValueError" in str(caught.value)


async def test_output_sent_before_a_crash_is_still_read_first(runtime: RingKernelRuntime) -> None:
    await runtime.launch("fragile", fragile)
    await runtime.activate("fragile")
    for msg in (1, 2, "boom"):
        await runtime.send("fragile", msg)
    await runtime.wait_finished("fragile", timeout=2)

    assert await runtime.receive("fragile") == 1
    assert await runtime.receive_batch("fragile", 10) == [2]
    with pytest.raises(KernelFailedError):
        await runtime.receive("fragile")
    with pytest.raises(KernelFailedError):
        await runtime.receive_batch("fragile", 10, timeout=5)


async def test_a_finite_body_completes_and_its_output_stays_readable(
    runtime: RingKernelRuntime,
) -> None:
    await runtime.launch("numbers", source([1, 2, 3]))
    await runtime.activate("numbers")
    info = await runtime.wait_finished("numbers", timeout=2)

    assert info.state is S.TERMINATED
    assert info.completed and info.error is None and not info.forced
    assert runtime.snapshot().kernel("numbers").completed
    assert [await runtime.receive("numbers") for _ in range(3)] == [1, 2, 3]
    # Everything it sent has been read: a further receive says so instead of hanging.
    with pytest.raises(KernelStateError) as caught:
        await runtime.receive("numbers")
    assert caught.value.current_state is S.TERMINATED
    with pytest.raises(KernelStateError):
        await runtime.terminate("numbers")


async def test_a_failure_in_one_replica_stops_the_kernel_as_a_whole(
    runtime: RingKernelRuntime,
) -> None:
    await runtime.launch("pool", fragile, replicas=4)
    await runtime.activate("pool")
    await runtime.send("pool", "boom")
    info = await runtime.wait_finished("pool", timeout=2)
    assert info.error == "ValueError: cannot process 'boom'"
    assert not kernel_tasks()


async def test_relaunch_keeps_queued_messages_and_counts_restarts(
    runtime: RingKernelRuntime,
) -> None:
    await runtime.launch("fragile", fragile)
    for msg in (1, "boom", 2, 3):
        await runtime.send("fragile", msg)  # queued before activation (phase 1 queues)
    await runtime.activate("fragile")
    await runtime.wait_finished("fragile", timeout=2)
    assert runtime.queued("fragile") == 2

    await runtime.relaunch("fragile")
    assert runtime.get_state("fragile") is S.LAUNCHED
    assert runtime.get_info("fragile").error is None
    await runtime.activate("fragile")
    assert await runtime.receive_batch("fragile", 10, timeout=2) == [1]
    assert [await runtime.receive("fragile", timeout=2) for _ in range(2)] == [2, 3]

    snap = runtime.snapshot().kernel("fragile")
    assert snap.restarts == 1 and runtime.get_info("fragile").restarts == 1
    assert snap.errors == 1  # summed over restarts
    assert snap.messages_in == 4  # 1 and "boom" before the crash, 2 and 3 after
    assert snap.messages_out == 3
    assert snap.last_error is None

    await runtime.send("fragile", "boom")
    await runtime.wait_finished("fragile", timeout=2)
    await runtime.relaunch("fragile")
    assert runtime.snapshot().kernel("fragile").restarts == 2
    assert runtime.snapshot().kernel("fragile").errors == 2


async def test_relaunch_keeps_ctx_state(runtime: RingKernelRuntime) -> None:
    async def counting(ctx: KernelContext) -> None:
        async for msg in ctx.messages():
            ctx.state["seen"] = ctx.state.get("seen", 0) + 1
            if msg == "boom":
                raise RuntimeError("boom")
            await ctx.send(ctx.state["seen"])

    await runtime.launch("c", counting)
    await runtime.activate("c")
    for msg in ("a", "boom"):
        await runtime.send("c", msg)
    await runtime.wait_finished("c", timeout=2)
    await runtime.relaunch("c")
    await runtime.activate("c")
    await runtime.send("c", "b")
    assert await runtime.receive_batch("c", 10, timeout=2) == [1]
    assert await runtime.receive("c", timeout=2) == 3


@pytest.mark.parametrize("state", [S.LAUNCHED, S.ACTIVE, S.DEACTIVATED], ids=lambda s: s.name)
async def test_relaunch_needs_a_terminated_kernel(
    runtime: RingKernelRuntime, state: KernelState
) -> None:
    await runtime.launch("k", echo)
    if state is not S.LAUNCHED:
        await runtime.activate("k")
    if state is S.DEACTIVATED:
        await runtime.deactivate("k")
    with pytest.raises(KernelStateError) as caught:
        await runtime.relaunch("k")
    assert caught.value.current_state is state
    assert caught.value.expected_states == (S.TERMINATED,)


async def test_a_body_that_raises_while_terminating_is_recorded(
    runtime: RingKernelRuntime,
) -> None:
    async def bad_cleanup(ctx: KernelContext) -> None:
        async for _ in ctx.messages():
            pass
        raise OSError("could not flush")

    await runtime.launch("k", bad_cleanup)
    await runtime.activate("k")
    report = await runtime.terminate("k")
    assert report.error == "OSError: could not flush"
    assert runtime.snapshot().kernel("k").last_error == "OSError: could not flush"


async def test_the_state_listener_sees_a_crash(runtime: RingKernelRuntime) -> None:
    moves: list[tuple[str, Any, Any]] = []
    runtime.add_listener(lambda kid, old, new: moves.append((kid, old.name, new.name)))
    await runtime.launch("fragile", fragile)
    await runtime.activate("fragile")
    await runtime.send("fragile", "boom")
    await runtime.wait_finished("fragile", timeout=2)
    assert moves == [
        ("fragile", "CREATED", "LAUNCHED"),
        ("fragile", "LAUNCHED", "ACTIVE"),
        ("fragile", "ACTIVE", "TERMINATING"),
        ("fragile", "TERMINATING", "TERMINATED"),
    ]


async def test_a_waiting_receive_fails_when_the_kernel_is_terminated(
    runtime: RingKernelRuntime,
) -> None:
    await runtime.launch("echo", echo)
    await runtime.activate("echo")
    waiting = asyncio.create_task(runtime.receive("echo"))
    await wait_until(lambda: runtime.snapshot().kernel("echo").waiting == 1)
    await runtime.terminate("echo")
    with pytest.raises(KernelStateError, match="has terminated"):
        async with asyncio.timeout(2):
            await waiting


async def test_a_restarted_consumer_gets_what_its_producer_sent_meanwhile(
    runtime: RingKernelRuntime,
) -> None:
    got: list[Any] = []

    async def picky(ctx: KernelContext) -> None:
        async for msg in ctx.messages():
            if msg == 3 and not ctx.state.get("crashed"):
                ctx.state["crashed"] = True
                raise RuntimeError("3 once")
            got.append(msg)

    await runtime.launch("picky", picky)
    await runtime.launch("numbers", source(list(range(50))))
    runtime.connect("numbers", "picky", capacity=4)
    await runtime.activate("picky")
    await runtime.activate("numbers")
    await runtime.wait_finished("picky", timeout=2)
    # The producer filled the edge and waits; nothing it sent is lost.
    await wait_until(lambda: runtime.snapshot().kernel("numbers").blocked == 1)

    await runtime.relaunch("picky")
    await runtime.activate("picky")
    await wait_until(lambda: len(got) == 49)
    assert got == [n for n in range(50) if n != 3]  # only the message in hand was lost
    assert runtime.snapshot().queues[0].drops == 0


async def test_relaunch_after_terminate_reopens_the_inbox(runtime: RingKernelRuntime) -> None:
    await runtime.launch("echo", echo)
    await runtime.send("echo", "dropped")
    report = await runtime.terminate("echo")
    assert report.left_in_inbox == 1

    await runtime.relaunch("echo")
    await runtime.send("echo", "kept")
    await runtime.activate("echo")
    assert await runtime.receive("echo", timeout=2) == "kept"
    snap = runtime.snapshot().kernel("echo")
    assert snap.restarts == 1 and snap.left == 1  # the discarded message stays counted
    assert snap.drops == 0  # no backpressure policy dropped anything
