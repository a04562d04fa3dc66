"""The high-water mark is the deepest a queue has been, whichever path put or took.

Between two takes the depth only grows, so each take notes the depth it found, including
the takes the kernel context and the runtime write out inline; with the current depth
that is the mark. Random sequences of every put and take, checked after each step
against the deepest depth seen.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ringctl import KernelContext, RingKernelRuntime
from ringctl.engine.local.ports import OutPort
from ringctl.engine.local.queues import Inbox, Queue

from .support import wait_until

CAPACITY = 6

OPS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["put_nowait", "put", "send", "get", "receive"])),
        st.tuples(
            st.sampled_from(
                ["put_many", "send_batch", "take", "get_many", "receive_batch", "put_back"]
            ),
            st.integers(1, CAPACITY + 2),
        ),
        st.tuples(st.sampled_from(["withdraw_adopt", "clear"])),
    ),
    max_size=40,
)


async def _drive(policy: str, ops: list[tuple[Any, ...]]) -> None:
    inbox = Inbox("k")
    q = Queue("e", inbox, CAPACITY, policy)
    port = OutPort("p", "out", CAPACITY)
    port.connect(q)
    ctx = KernelContext("k", inbox=inbox, ports={"out": port}, port_factory=None)
    ctx.is_active = True
    deepest = 0
    fits_one = policy != "block"  # a full blocking queue would wait: only put what fits
    for op, *arg in ops:
        n = arg[0] if arg else 1
        room = CAPACITY - len(q)
        if op == "put_nowait":
            q.put_nowait(op)
        elif op == "put" and (room or fits_one):
            await q.put(op)
        elif op == "send" and room:  # a full queue sends through the port's slow path
            await ctx.send(op)
        elif op == "put_many" and (n <= room or fits_one):
            await q.put_many([op] * n)
        elif op == "send_batch" and n <= room:
            await ctx.send_batch([op] * n)
        elif op == "get":
            inbox.get_nowait()
        elif op == "receive" and len(q):
            await ctx.receive()
        elif op == "take" and len(q):
            q.take(n)
        elif op == "get_many":
            inbox.get_many_nowait(n)
        elif op == "receive_batch" and len(q):
            await ctx.receive_batch(n)
        elif op == "put_back" and len(q):
            taken = q.take(n)
            deepest = max(deepest, len(q))
            q.put_nowait("late")  # a put between the take and the giving back
            deepest = max(deepest, len(q))
            q.put_back(taken)
            deepest = max(deepest, len(q))
            q.take(1)  # shallower again: the mark must have kept the depth
        elif op == "withdraw_adopt":
            q.adopt(q.withdraw())
        elif op == "clear":
            q.clear()
        deepest = max(deepest, len(q))
        assert q.high_water == deepest, (op, n, list(q._items))


@settings(max_examples=150, deadline=None)
@given(policy=st.sampled_from(["block", "drop_oldest", "drop_newest"]), ops=OPS)
def test_the_high_water_mark_is_the_deepest_the_queue_has_been(
    policy: str, ops: list[tuple[Any, ...]]
) -> None:
    asyncio.run(_drive(policy, ops))


async def test_the_runtime_feeding_a_kernel_keeps_its_high_water_mark(
    runtime: RingKernelRuntime,
) -> None:
    async def takes_one(ctx: KernelContext) -> None:
        await ctx.receive()
        await asyncio.sleep(3600)

    await runtime.launch("k", takes_one, queue_size=64)
    await runtime.activate("k")
    for i in range(3):  # the kernel runs only once this task waits
        await runtime.send("k", i)
    await wait_until(lambda: runtime.snapshot().kernel("k").messages_in == 1)
    snap = runtime.snapshot().kernel("k")
    assert (snap.inbox_depth, snap.inbox_high_water) == (2, 3)
    await runtime.send_batch("k", range(7))
    snap = runtime.snapshot().kernel("k")
    assert (snap.inbox_depth, snap.inbox_high_water) == (9, 9)
