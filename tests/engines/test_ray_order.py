"""Several pushes in flight per Ray edge: the consumer queues each producer's pushes in
the order they were sent, whatever order Ray starts them in."""

from __future__ import annotations

import asyncio
import random

import pytest

pytest.importorskip("ray")

from ringctl.engine.ray.actor import InOrder


async def _deliver(order: InOrder, calls: list[tuple[str, int, int]]) -> list[tuple[str, int]]:
    """Start every call at once (in the given order) as Ray may; each queues its message
    after a few loop passes, as a push waiting for space would."""
    queued: list[tuple[str, int]] = []

    async def push(key: str, seq: int, first: int) -> None:
        await order.wait(key, seq, first)
        try:
            for _ in range(random.randint(0, 3)):
                await asyncio.sleep(0)
            queued.append((key, seq))
        finally:
            order.done(key, seq)

    await asyncio.wait_for(asyncio.gather(*(push(*call) for call in calls)), 5)
    return queued


async def test_pushes_started_out_of_order_are_queued_in_order_per_sender() -> None:
    rng = random.Random(7)
    calls = [(sender, seq, 0) for sender in ("a", "b") for seq in range(50)]
    rng.shuffle(calls)
    queued = await _deliver(InOrder(), calls)
    for sender in ("a", "b"):
        assert [seq for key, seq in queued if key == sender] == list(range(50))


async def test_a_consumer_that_never_heard_from_a_producer_starts_at_its_oldest_call() -> None:
    # A restarted consumer: calls 0-4 went to its predecessor; 7 was sent while 5 and 6
    # were unanswered (first=5), then 5 and 6 are sent again.
    queued = await _deliver(InOrder(), [("a", 7, 5), ("a", 6, 5), ("a", 5, 5)])
    assert queued == [("a", 5), ("a", 6), ("a", 7)]


async def test_calls_the_producer_gave_up_on_are_not_waited_for() -> None:
    order = InOrder()
    waiting = asyncio.ensure_future(_deliver(order, [("a", 0, 0), ("a", 3, 1)]))
    await asyncio.sleep(0.01)
    assert not waiting.done()  # 3 waits for 1 and 2
    # 1 and 2 were counted lost by the producer (their consumer was closed): its next
    # call says its oldest unanswered is 3.
    assert await _deliver(order, [("a", 4, 3)]) == [("a", 4)]
    assert await waiting == [("a", 0), ("a", 3)]
