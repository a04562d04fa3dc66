"""Tap, restart and scale on the runtime: a running kernel operated without stopping the rest."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ringctl import KernelContext, KernelState, RingKernelRuntime, ring_kernel
from ringctl.engine.local.ports import OutPort, Tap
from ringctl.engine.local.queues import Inbox, Queue
from ringctl.exceptions import KernelStateError, UserInputError

from .support import wait_until

S = KernelState


async def counter(ctx: KernelContext) -> None:
    """1, 2, 3, ... until stopped; paced so the sink keeps up."""
    n = ctx.state.get("n", 0)
    while not ctx.should_terminate:
        n += 1
        ctx.state["n"] = n
        await ctx.send(n)
        await asyncio.sleep(0)


async def relay(ctx: KernelContext) -> None:
    async for msg in ctx.messages():
        await asyncio.sleep(0)  # give the other replicas a turn
        await ctx.send(msg)


def collector(seen: list[int]) -> Any:
    async def collect(ctx: KernelContext) -> None:
        async for msg in ctx.messages():
            seen.append(msg)

    return collect


async def pipeline(rt: RingKernelRuntime, *, relay_replicas: int = 1) -> list[int]:
    """source -> relay -> sink, running; returns the list the sink appends to."""
    seen: list[int] = []
    await rt.launch("source", counter)
    await rt.launch("relay", relay, replicas=relay_replicas, queue_size=16)
    await rt.launch("sink", collector(seen), queue_size=16)
    rt.connect("source", "relay")
    rt.connect("relay", "sink")
    for kid in ("sink", "relay", "source"):
        await rt.activate(kid)
    return seen


async def drain(rt: RingKernelRuntime) -> int:
    """Stop the source, let everything queued reach the sink, stop the rest."""
    await rt.terminate("source")
    await wait_until(rt.is_quiescent, timeout=5.0, what="pipeline drained")
    await rt.terminate("relay")
    await rt.terminate("sink")
    return rt.snapshot().kernels[0].messages_out


# -- tap -----------------------------------------------------------------------------------


def test_a_port_leaves_its_fast_path_only_while_tapped() -> None:
    port = OutPort("k", "out", 8)
    assert port.single is port.output  # unwired: the port's own output queue
    q = Queue("k.out -> c", Inbox("c"), 8, producer="k", port="out", consumer="c")
    port.connect(q)
    assert port.single is q  # KernelContext.send's inlined path: nothing else per send
    tap, other = Tap(4), Tap(4)
    port.add_tap(tap)
    port.add_tap(other)
    assert port.single is None  # every send goes through OutPort.send, which offers it
    port.remove_tap(tap)
    assert port.single is None
    port.remove_tap(other)
    assert port.single is q


async def test_a_tap_sees_what_the_port_sends_and_the_edge_gets_everything(
    runtime: RingKernelRuntime,
) -> None:
    seen = await pipeline(runtime)
    tap = runtime.tap("source")
    await wait_until(lambda: tap.seen >= 50, what="the tap saw 50 messages")
    got = tap.take(10)
    assert got == list(range(got[0], got[0] + 10))  # in order, consecutive
    runtime.untap("source", "out", tap)
    seen_then = tap.seen
    await wait_until(lambda: runtime.snapshot().kernels[0].messages_out > seen_then + 100)
    assert tap.seen == seen_then  # detached: sees nothing more
    sent = await drain(runtime)
    assert seen == list(range(1, sent + 1))  # the edge lost and reordered nothing


async def test_a_tap_nobody_reads_overwrites_and_counts_what_it_missed(
    runtime: RingKernelRuntime,
) -> None:
    seen = await pipeline(runtime)
    tap = runtime.tap("relay")
    tap_capacity = 256
    await wait_until(lambda: tap.seen > tap_capacity + 100, timeout=5.0)
    assert tap.missed == tap.seen - tap_capacity
    newest = tap.take(tap_capacity)
    assert len(newest) == tap_capacity and newest[-1] >= tap.seen - 5
    runtime.untap("relay", "out", tap)
    sent = await drain(runtime)
    assert seen == list(range(1, sent + 1))


async def test_tap_on_a_port_the_kernel_lacks_names_its_ports(runtime: RingKernelRuntime) -> None:
    await pipeline(runtime)
    with pytest.raises(UserInputError, match=r"no output port 'ot' \(its ports: out\)") as err:
        runtime.tap("source", "ot")
    assert err.value.hint == "did you mean source.out?"
    with pytest.raises(UserInputError, match="it sends nothing"):
        runtime.tap("sink", "results")  # no declared ports, nothing sent: only "out" exists
    tap = runtime.tap("sink")  # its default port, before it ever sent
    runtime.untap("sink", "out", tap)


# -- restart -------------------------------------------------------------------------------


async def test_restart_keeps_the_inbox_and_state_and_counts(runtime: RingKernelRuntime) -> None:
    seen = await pipeline(runtime)
    await wait_until(lambda: len(seen) > 100)
    for _ in range(3):
        report = await runtime.restart("relay", timeout=1.0)
        assert report.graceful and report.left_in_inbox == 0
        assert runtime.get_state("relay") is S.ACTIVE
    report = await runtime.restart("source", timeout=1.0)
    assert runtime.get_info("relay").restarts == 3
    assert runtime.get_info("source").restarts == 1
    before = len(seen)
    await wait_until(lambda: len(seen) > before + 100)
    sent = await drain(runtime)
    assert seen == list(range(1, sent + 1))  # the source's ctx.state carried its count on


async def test_restart_of_a_paused_kernel_comes_back_paused(runtime: RingKernelRuntime) -> None:
    seen = await pipeline(runtime)
    await runtime.deactivate("sink")
    await runtime.restart("sink")
    assert runtime.get_state("sink") is S.DEACTIVATED
    await runtime.reactivate("sink")
    sent = await drain(runtime)
    assert seen == list(range(1, sent + 1))


async def test_restart_of_a_terminated_kernel_is_refused(runtime: RingKernelRuntime) -> None:
    await pipeline(runtime)
    await runtime.terminate("source")
    with pytest.raises(KernelStateError):
        await runtime.restart("source")


async def test_restart_force_stops_a_body_that_ignores_the_request(
    runtime: RingKernelRuntime,
) -> None:
    starts: list[int] = []

    async def stubborn(ctx: KernelContext) -> None:
        starts.append(ctx.replica)
        await asyncio.sleep(3600)

    await runtime.launch("stubborn", stubborn)
    await runtime.activate("stubborn")
    await wait_until(lambda: len(starts) == 1)
    report = await runtime.restart("stubborn", timeout=0.05)
    assert report.forced
    await wait_until(lambda: len(starts) == 2)
    assert runtime.get_info("stubborn").restarts == 1


# -- scale ---------------------------------------------------------------------------------


async def test_scale_up_and_down_under_load_loses_and_duplicates_nothing(
    runtime: RingKernelRuntime,
) -> None:
    seen = await pipeline(runtime)
    previous = 1
    for replicas in (4, 2, 5, 1, 3, 1):
        before = len(seen)
        assert await runtime.scale("relay", replicas, timeout=1.0) == previous
        previous = replicas
        assert runtime.get_info("relay").replicas == replicas
        assert runtime.snapshot().kernels[1].replicas == replicas
        await wait_until(lambda b=before: len(seen) > b + 50)
    sent = await drain(runtime)
    assert sorted(seen) == list(range(1, sent + 1))  # replicas may reorder, never lose
    relay_snap = runtime.snapshot().kernels[1]
    assert relay_snap.messages_in == relay_snap.messages_out == sent  # removed ones counted


async def test_scale_of_a_paused_kernel_adds_paused_replicas(runtime: RingKernelRuntime) -> None:
    seen = await pipeline(runtime)
    await runtime.deactivate("relay")
    stalled = len(seen)
    await runtime.scale("relay", 3)
    await asyncio.sleep(0.05)  # a bounded negative check: paused replicas take nothing
    assert len(seen) - stalled <= 16  # at most what was already in the sink's queue
    await runtime.reactivate("relay")
    sent = await drain(runtime)
    assert sorted(seen) == list(range(1, sent + 1))


async def test_a_kernel_whose_setup_refuses_replicas_keeps_running_as_it_was(
    runtime: RingKernelRuntime,
) -> None:
    def one_only(ctx: KernelContext) -> None:
        if ctx.replicas > 1:
            raise ValueError(f"{ctx.kernel_id} keeps running state, so it runs as one replica")

    widths: list[int] = []

    @ring_kernel(kernel_id="single_minded", setup=one_only)
    async def single_minded(ctx: KernelContext) -> None:
        widths.append(ctx.replicas)
        async for _ in ctx.messages():
            pass

    await runtime.launch("single_minded", single_minded)
    await runtime.activate("single_minded")
    await wait_until(lambda: widths == [1])
    with pytest.raises(UserInputError, match=r"refuses 2 replicas: .*runs as one replica") as err:
        await runtime.scale("single_minded", 2)
    assert "test_ops.py:" in err.value.message  # where the refusal was raised
    assert runtime.get_info("single_minded").replicas == 1
    assert runtime.snapshot().kernels[0].replicas == 1 and widths == [1]
    with pytest.raises(UserInputError, match="at least 1"):
        await runtime.scale("single_minded", 0)
