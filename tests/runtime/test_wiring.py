"""Kernel-to-kernel wiring: connect, fan-in, fan-out (broadcast, round robin), replicas,
unwired ports read by ``runtime.receive``, declared ports."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ringctl import KernelContext, KernelState, RingKernelRuntime, ring_kernel
from ringctl.exceptions import KernelFailedError, KernelStateError, UserInputError

from .support import collector, echo, source, wait_until

S = KernelState


async def test_connect_a_producer_to_a_consumer(runtime: RingKernelRuntime) -> None:
    got: list[Any] = []
    await runtime.launch("sink", collector(got))
    await runtime.launch("double", echo)
    await runtime.launch("numbers", source(list(range(100))))
    runtime.connect("numbers", "double")
    runtime.connect("double", "sink", capacity=8)
    for kid in ("sink", "double", "numbers"):
        await runtime.activate(kid)

    await wait_until(lambda: len(got) == 100)
    assert got == list(range(100))
    (first, second) = runtime.snapshot().queues
    assert (first.producer, first.port, first.consumer) == ("numbers", "out", "double")
    assert (second.producer, second.consumer, second.capacity) == ("double", "sink", 8)
    assert first.messages == second.messages == 100


async def test_connect_is_phase_one_work(runtime: RingKernelRuntime) -> None:
    await runtime.launch("a", echo)
    await runtime.launch("b", echo)
    await runtime.activate("a")
    with pytest.raises(KernelStateError) as caught:
        runtime.connect("a", "b")
    assert caught.value.current_state is S.ACTIVE
    assert caught.value.expected_states == (S.LAUNCHED,)
    assert "before activate()" in str(caught.value)


async def test_connect_the_same_edge_twice_is_refused(runtime: RingKernelRuntime) -> None:
    await runtime.launch("a", echo)
    await runtime.launch("b", echo)
    runtime.connect("a", "b")
    with pytest.raises(UserInputError, match="already wired"):
        runtime.connect("a", "b")


async def test_fan_in_keeps_each_producer_in_order(runtime: RingKernelRuntime) -> None:
    got: list[tuple[str, int]] = []
    await runtime.launch("sink", collector(got), queue_size=4)
    for name in ("p", "q", "r"):
        await runtime.launch(name, source([(name, i) for i in range(200)]))
        runtime.connect(name, "sink", capacity=4)
    for kid in ("sink", "p", "q", "r"):
        await runtime.activate(kid)

    await wait_until(lambda: len(got) == 600)
    for name in ("p", "q", "r"):
        assert [i for who, i in got if who == name] == list(range(200))
    # Merged, not one producer after another (the inbox reads round robin).
    assert {who for who, _ in got[:12]} == {"p", "q", "r"}


async def test_broadcast_hands_every_consumer_the_same_object(runtime: RingKernelRuntime) -> None:
    sent = [{"n": i} for i in range(50)]
    inboxes: dict[str, list[Any]] = {name: [] for name in ("x", "y", "z")}
    for name, got in inboxes.items():
        await runtime.launch(name, collector(got))
    await runtime.launch("src", source(sent))
    for name in inboxes:
        runtime.connect("src", name)  # broadcast is the default
    for kid in (*inboxes, "src"):
        await runtime.activate(kid)

    await wait_until(lambda: all(len(got) == 50 for got in inboxes.values()))
    for got in inboxes.values():
        assert all(a is b for a, b in zip(got, sent, strict=True))  # no copy, no serialization


async def test_a_message_crosses_the_runtime_by_reference(runtime: RingKernelRuntime) -> None:
    payload = bytearray(b"not copied")
    await runtime.launch("echo", echo)
    await runtime.activate("echo")
    await runtime.send("echo", payload)
    assert await runtime.receive("echo", timeout=2) is payload


async def test_round_robin_deals_messages_out_in_turn(runtime: RingKernelRuntime) -> None:
    left: list[int] = []
    right: list[int] = []
    await runtime.launch("left", collector(left))
    await runtime.launch("right", collector(right))
    await runtime.launch("src", source(list(range(20))))
    runtime.connect("src", "left", fanout="round_robin")
    runtime.connect("src", "right")
    for kid in ("left", "right", "src"):
        await runtime.activate(kid)

    await wait_until(lambda: len(left) + len(right) == 20)
    assert left == list(range(0, 20, 2))
    assert right == list(range(1, 20, 2))


async def test_round_robin_with_batches(runtime: RingKernelRuntime) -> None:
    outs: list[list[int]] = [[], [], []]

    async def batch_source(ctx: KernelContext) -> None:
        await ctx.send_batch(list(range(30)))

    for i, got in enumerate(outs):
        await runtime.launch(f"c{i}", collector(got))
    await runtime.launch("src", batch_source)
    for i in range(3):
        runtime.connect("src", f"c{i}", fanout="round_robin")
    for kid in ("c0", "c1", "c2", "src"):
        await runtime.activate(kid)

    await wait_until(lambda: sum(map(len, outs)) == 30)
    assert sorted(m for got in outs for m in got) == list(range(30))
    assert [len(got) for got in outs] == [10, 10, 10]
    for got in outs:
        assert got == sorted(got)


async def test_replicas_share_one_inbox_and_process_each_message_once(
    runtime: RingKernelRuntime,
) -> None:
    done: list[tuple[int, int]] = []

    async def worker(ctx: KernelContext) -> None:
        async for msg in ctx.messages():
            await asyncio.sleep(0)  # some work: the other replicas get their turn
            done.append((ctx.replica, msg))
            await ctx.send(msg)

    await runtime.launch("pool", worker, replicas=3)
    await runtime.launch("numbers", source(list(range(300))))
    runtime.connect("numbers", "pool")
    await runtime.activate("pool")
    await runtime.activate("numbers")

    out: list[int] = []
    while len(out) < 300:
        out += await runtime.receive_batch("pool", 300, timeout=2)
    assert sorted(out) == list(range(300))
    assert sorted(m for _, m in done) == list(range(300))  # each processed exactly once
    assert {r for r, _ in done} == {0, 1, 2}
    snap = runtime.snapshot().kernel("pool")
    assert snap.replicas == 3 and snap.messages_in == 300 and snap.messages_out == 300


async def test_an_unwired_port_is_read_with_receive(runtime: RingKernelRuntime) -> None:
    async def splitter(ctx: KernelContext) -> None:
        async for n in ctx.messages():
            await ctx.send(n, port="evens" if n % 2 == 0 else "out")

    await runtime.launch("split", splitter)
    await runtime.activate("split")
    for n in range(10):
        await runtime.send("split", n)

    assert [await runtime.receive("split", timeout=2, port="evens") for _ in range(5)] == [
        0,
        2,
        4,
        6,
        8,
    ]
    assert await runtime.receive_batch("split", 10, timeout=2) == [1, 3, 5, 7, 9]


async def test_receive_on_a_wired_port_points_to_the_consumer(runtime: RingKernelRuntime) -> None:
    await runtime.launch("a", echo)
    await runtime.launch("b", echo)
    runtime.connect("a", "b")
    with pytest.raises(UserInputError, match="wired to b"):
        await runtime.receive("a", timeout=0.1)


@ring_kernel(kernel_id="wiring-declared-ports", ports=("out", "alerts"))
async def declared(ctx: KernelContext) -> None:
    async for msg in ctx.messages():
        await ctx.send(msg, port=msg)


async def test_declared_ports_reject_unknown_ports(runtime: RingKernelRuntime) -> None:
    await runtime.launch("wiring-declared-ports")
    await runtime.launch("sink", collector([]))
    with pytest.raises(UserInputError, match=r"no output port 'oops' \(it declares: out, alerts\)"):
        runtime.connect("wiring-declared-ports", "sink", port="oops")
    with pytest.raises(UserInputError, match="no output port 'oops'"):
        await runtime.receive("wiring-declared-ports", timeout=0.1, port="oops")

    await runtime.activate("wiring-declared-ports")
    await runtime.send("wiring-declared-ports", "alerts")
    assert await runtime.receive("wiring-declared-ports", timeout=2, port="alerts") == "alerts"

    # A body sending on an undeclared port fails, and says why.
    await runtime.send("wiring-declared-ports", "oops")
    info = await runtime.wait_finished("wiring-declared-ports", timeout=2)
    assert info.error is not None and "no output port 'oops'" in info.error
    with pytest.raises(KernelFailedError):
        await runtime.receive("wiring-declared-ports", timeout=2)


async def test_remove_unwires_the_kernel(runtime: RingKernelRuntime) -> None:
    got: list[Any] = []
    await runtime.launch("src", echo)
    await runtime.launch("old", collector([]))
    await runtime.launch("keep", collector(got))
    runtime.connect("src", "old")
    runtime.connect("src", "keep")
    await runtime.terminate("old")
    runtime.remove("old")
    assert [(q.producer, q.consumer) for q in runtime.snapshot().queues] == [("src", "keep")]

    await runtime.activate("keep")
    await runtime.activate("src")
    await runtime.send("src", 1)
    await wait_until(lambda: got == [1])
