"""Every backpressure policy, and batch receive / send.

Each test is a tiny topology: a finite source wired to a consumer that is launched but not
yet active, so the edge fills up and its policy decides; then the consumer starts.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ringctl import KernelContext, RingKernelRuntime
from ringctl.engine.local.queues import Backpressure
from ringctl.exceptions import QueueFullError

from .support import collector, echo, holds, source, wait_until

TEN = list(range(10))


async def fill(
    runtime: RingKernelRuntime, policy: str, got: list[Any], *, batched: bool = False
) -> None:
    """``src`` sends 0..9 into an edge of capacity 3 whose consumer does not read yet."""

    async def batch_source(ctx: KernelContext) -> None:
        await ctx.send_batch(TEN)

    await runtime.launch("sink", collector(got))
    await runtime.launch("src", batch_source if batched else source(TEN))
    runtime.connect("src", "sink", capacity=3, backpressure=policy)
    await runtime.activate("src")


async def test_block_makes_the_producer_wait_and_loses_nothing(runtime: RingKernelRuntime) -> None:
    got: list[Any] = []
    await fill(runtime, "block", got)
    await wait_until(lambda: runtime.snapshot().kernel("src").blocked == 1)
    snap = runtime.snapshot()
    (edge,) = snap.queues
    assert edge.depth == 3 and edge.high_water == 3 and edge.backpressure == "block"
    assert snap.kernel("src").state == "ACTIVE"  # still waiting to send the 4th
    assert await holds(lambda: runtime.snapshot().queues[0].depth == 3)

    await runtime.activate("sink")
    await wait_until(lambda: len(got) == 10)
    assert got == TEN
    (edge,) = runtime.snapshot().queues
    assert edge.drops == 0 and edge.messages == 10 and edge.blocked_s > 0
    assert runtime.get_info("src").completed


async def test_block_with_batches(runtime: RingKernelRuntime) -> None:
    got: list[Any] = []
    await fill(runtime, "block", got, batched=True)
    await wait_until(lambda: runtime.snapshot().kernel("src").blocked == 1)
    await runtime.activate("sink")
    await wait_until(lambda: len(got) == 10)
    assert got == TEN


async def test_runtime_send_blocks_on_a_full_inbox(runtime: RingKernelRuntime) -> None:
    await runtime.launch("echo", echo, queue_size=2)
    await runtime.activate("echo")
    await runtime.deactivate("echo")
    await runtime.send("echo", 0)
    await runtime.send("echo", 1)
    third = asyncio.create_task(runtime.send("echo", 2))
    assert await holds(lambda: not third.done())
    assert runtime.queued("echo") == 2

    await runtime.reactivate("echo")
    async with asyncio.timeout(2):
        await third
    assert [await runtime.receive("echo", timeout=2) for _ in range(3)] == [0, 1, 2]


@pytest.mark.parametrize("batched", [False, True], ids=["send", "send_batch"])
async def test_drop_oldest_keeps_the_newest(runtime: RingKernelRuntime, batched: bool) -> None:
    got: list[Any] = []
    await fill(runtime, "drop_oldest", got, batched=batched)
    await runtime.wait_finished("src", timeout=2)  # never blocked
    snap = runtime.snapshot()
    assert snap.queues[0].drops == 7 and snap.queues[0].depth == 3
    assert snap.kernel("sink").drops == 7
    assert snap.kernel("src").messages_out == 10

    await runtime.activate("sink")
    await wait_until(lambda: len(got) == 3)
    assert got == [7, 8, 9]


@pytest.mark.parametrize("batched", [False, True], ids=["send", "send_batch"])
async def test_drop_newest_keeps_the_oldest(runtime: RingKernelRuntime, batched: bool) -> None:
    got: list[Any] = []
    await fill(runtime, "drop_newest", got, batched=batched)
    await runtime.wait_finished("src", timeout=2)
    snap = runtime.snapshot()
    assert snap.queues[0].drops == 7 and snap.kernel("sink").drops == 7

    await runtime.activate("sink")
    await wait_until(lambda: len(got) == 3)
    assert got == [0, 1, 2]


async def test_reject_raises_queue_full_in_the_producer(runtime: RingKernelRuntime) -> None:
    got: list[Any] = []
    rejected: list[tuple[int, QueueFullError]] = []

    async def careful(ctx: KernelContext) -> None:
        for n in TEN:
            try:
                await ctx.send(n)
            except QueueFullError as exc:
                rejected.append((n, exc))

    await runtime.launch("sink", collector(got))
    await runtime.launch("src", careful)
    runtime.connect("src", "sink", capacity=3, backpressure=Backpressure.REJECT)
    await runtime.activate("src")
    await runtime.wait_finished("src", timeout=2)

    assert [n for n, _ in rejected] == list(range(3, 10))
    err = rejected[0][1]
    assert err.capacity == 3 and err.queue_name == "src.out -> sink"
    assert "policy is 'reject'" in str(err)
    await runtime.activate("sink")
    await wait_until(lambda: len(got) == 3)
    assert got == [0, 1, 2]


async def test_reject_uncaught_fails_the_producer(runtime: RingKernelRuntime) -> None:
    await fill(runtime, "reject", [])
    info = await runtime.wait_finished("src", timeout=2)
    assert info.error is not None and info.error.startswith("QueueFullError")


async def test_an_unknown_policy_is_refused(runtime: RingKernelRuntime) -> None:
    await runtime.launch("a", echo)
    await runtime.launch("b", echo)
    with pytest.raises(ValueError, match="drop_all"):
        runtime.connect("a", "b", backpressure="drop_all")


# -- batches --------------------------------------------------------------------------------


async def test_receive_batch_and_send_batch(runtime: RingKernelRuntime) -> None:
    sizes: list[int] = []

    async def batcher(ctx: KernelContext) -> None:
        while not ctx.should_terminate:
            try:
                batch = await ctx.receive_batch(max_items=4, timeout=0.5)
            except TimeoutError:
                continue
            sizes.append(len(batch))
            await ctx.send_batch(m * 10 for m in batch)

    await runtime.launch("b", batcher)
    await runtime.send_batch("b", range(10))  # queued before activation
    await runtime.activate("b")

    out: list[int] = []
    while len(out) < 10:
        out += await runtime.receive_batch("b", max_items=100, timeout=2)
    assert out == [m * 10 for m in range(10)]
    assert sizes == [4, 4, 2]
    snap = runtime.snapshot().kernel("b")
    assert snap.messages_in == 10 and snap.messages_out == 10


async def test_receive_batch_times_out_when_nothing_comes(runtime: RingKernelRuntime) -> None:
    outcome: list[Any] = []

    async def body(ctx: KernelContext) -> None:
        try:
            await ctx.receive_batch(max_items=8, timeout=0.05)
        except TimeoutError:
            outcome.append("timeout")
        with pytest.raises(ValueError, match="max_items"):
            await ctx.receive_batch(max_items=0)
        outcome.append("checked")

    await runtime.launch("k", body)
    await runtime.activate("k")
    info = await runtime.wait_finished("k", timeout=2)
    assert outcome == ["timeout", "checked"] and info.completed

    await runtime.launch("quiet", echo)
    await runtime.activate("quiet")
    with pytest.raises(TimeoutError):
        await runtime.receive_batch("quiet", 8, timeout=0.01)


async def test_batches_across_fan_in_keep_each_producer_in_order(
    runtime: RingKernelRuntime,
) -> None:
    got: list[tuple[str, int]] = []

    async def batch_sink(ctx: KernelContext) -> None:
        async for batch in ctx.batches(max_items=5):
            got.extend(batch)

    await runtime.launch("sink", batch_sink)
    for name in ("p", "q"):
        await runtime.launch(name, source([(name, i) for i in range(50)]))
        runtime.connect(name, "sink", capacity=4)
    for kid in ("sink", "p", "q"):
        await runtime.activate(kid)
    await wait_until(lambda: len(got) == 100)
    for name in ("p", "q"):
        assert [i for who, i in got if who == name] == list(range(50))


async def test_batches_across_fan_in_starve_no_producer(runtime: RingKernelRuntime) -> None:
    got: list[tuple[str, int]] = []

    def endless(name: str) -> Any:
        async def produce(ctx: KernelContext) -> None:
            i = 0
            while not ctx.should_terminate:
                await ctx.send((name, i))
                i += 1

        return produce

    async def batch_sink(ctx: KernelContext) -> None:
        async for batch in ctx.batches(max_items=4):
            got.extend(batch)
            await asyncio.sleep(0)  # a little work per batch: the producers keep up

    await runtime.launch("sink", batch_sink)
    for name in ("p", "q"):
        await runtime.launch(name, endless(name))
        runtime.connect(name, "sink", capacity=64)  # always more queued than one batch
    for kid in ("sink", "p", "q"):
        await runtime.activate(kid)

    await wait_until(lambda: len(got) >= 2000)
    from_q = [i for who, i in got if who == "q"]
    assert len(from_q) >= 500, f"q starved: {len(from_q)} of {len(got)}"
    assert from_q == list(range(len(from_q)))


async def test_clear_discards_what_is_queued_and_counts_it() -> None:
    from ringctl.engine.accounting import QueueAccount, build_accounting
    from ringctl.engine.local.queues import Inbox, Queue

    q = Queue("src.out -> sink", Inbox("sink"), 3, producer="src", port="out", consumer="sink")
    for i in range(3):
        assert q.put_nowait(i)
    blocked = asyncio.ensure_future(q.put(3))  # a producer waiting for room
    await asyncio.sleep(0)
    assert not blocked.done()
    assert q.clear() == 3
    await asyncio.wait_for(blocked, 5)  # cleared room lets it on; the queue stays open
    assert (len(q), q.left, q.lost, q.closed) == (1, 3, 0, False)
    assert q.clear("lost") == 1 and q.lost == 1
    with pytest.raises(ValueError, match="'lost' or 'left'"):
        q.clear("gone")
    row = QueueAccount(q.name, q.producer, q.port, "sink", accepted=q.messages,
                       delivered=q.delivered, dropped=q.drops, lost=q.lost, left=q.left,
                       queued=len(q))  # fmt: skip
    assert (q.messages, row.balance) == (4, 0)
    assert build_accounting([row]).holds


async def test_a_blocked_batch_goes_in_whole_once_it_fits() -> None:
    from ringctl.engine.local.queues import Inbox, Queue

    q = Queue("e", Inbox("k"), capacity=4)
    await q.put_many(["a", "b"])
    putting = asyncio.create_task(q.put_many(["c", "d", "e"]))  # 2 free slots: waits
    await asyncio.sleep(0.01)
    assert not putting.done() and len(q) == 2  # nothing of it went in piecemeal
    assert q.inbox.get_nowait() == "a"  # now 3 fit
    await asyncio.wait_for(putting, 1)
    assert list(q._items) == ["b", "c", "d", "e"]
    assert (q.messages, q.delivered, q.high_water) == (5, 1, 4)
    big = asyncio.create_task(q.put_many(list(range(6))))  # bigger than the queue
    await asyncio.sleep(0.01)
    assert len(q) == 4
    assert len(q.inbox.get_many_nowait(10)) == 4  # empty: the first 4 go in, then the rest
    await asyncio.sleep(0.01)
    assert list(q._items) == [0, 1, 2, 3]
    q.inbox.get_many_nowait(10)
    await asyncio.wait_for(big, 1)
    assert list(q._items) == [4, 5] and q.messages == 11
