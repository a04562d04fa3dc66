"""A Ray edge's pump, driven in this process with a stand-in for the consumer's handle:
while the window has room each message leaves in a call of its own; while it is full,
what is sent is coalesced into the next call, in order."""

from __future__ import annotations

import asyncio
import concurrent.futures
import pickle
from typing import Any

import pytest

pytest.importorskip("ray")

from ringctl.engine.ray import actor
from ringctl.engine.ray.actor import WINDOW, KernelHost


class _Ref:
    def __init__(self, fut: concurrent.futures.Future[None]) -> None:
        self.fut = fut

    def future(self) -> concurrent.futures.Future[None]:
        return self.fut


class _Push:
    """Records each push call; each one ends when the test says so."""

    def __init__(self) -> None:
        self.parcels: list[tuple[str, list[Any], str, int, int]] = []
        self.ends: list[concurrent.futures.Future[None]] = []

    def remote(self, parcel: tuple[str, list[Any], str, int, int]) -> _Ref:
        pickle.dumps(parcel)  # as Ray would: a message that cannot be sent fails here
        self.parcels.append(parcel)
        self.ends.append(concurrent.futures.Future())
        return _Ref(self.ends[-1])


class _Consumer:
    def __init__(self) -> None:
        self.push = _Push()


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> KernelHost:
    monkeypatch.setattr(actor._OUTPUT, "install", lambda: None)  # this process's output
    none = pickle.dumps(None)
    h = KernelHost("producer", 0, 1, none, pickle.dumps({}), "cpu", 64, [], none)
    h.ctx.is_active = True
    return h


async def _idle(host: KernelHost) -> None:
    """Until every pump waits (a few loop passes)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_full_window_coalesces_what_is_sent_meanwhile(host: KernelHost) -> None:
    consumer = _Consumer()
    host.add_out_edge("out", "e", 64, [consumer], None)
    await _idle(host)
    for i in range(WINDOW):  # one at a time: a call each while the window has room
        await host.ctx.send(i)
        await _idle(host)
    for i in range(WINDOW, WINDOW + 5):  # the window is full: they wait in the outbox
        await host.ctx.send(i)
        await _idle(host)
    assert len(consumer.push.parcels) == WINDOW
    consumer.push.ends[0].set_result(None)  # one call ends: the rest leave in one
    await _idle(host)
    batches = [p[1] for p in consumer.push.parcels]
    assert batches == [[i] for i in range(WINDOW)] + [list(range(WINDOW, WINDOW + 5))]
    assert [p[3] for p in consumer.push.parcels] == list(range(WINDOW + 1))
    assert host.pushed == {"e": 1}
    assert host.in_flight == WINDOW + 4


async def test_a_message_that_cannot_be_sent_fails_the_kernel_not_its_send(
    host: KernelHost,
) -> None:
    consumer = _Consumer()
    host.add_out_edge("out", "e", 64, [consumer], None)
    await _idle(host)
    await host.ctx.send(lambda: None)  # cannot be pickled: the send itself returns
    await _idle(host)
    assert host.error is not None and host.error.startswith("cannot deliver to e:")
    assert host.out_lost == {"e": 1}
    assert consumer.push.parcels == []
