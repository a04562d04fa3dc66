"""Rings on their own: wrap-around, a full ring, end of stream, order under any interleaving."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringctl.engine.local.persistent.arena import ArenaBuilder, RingView
from ringctl.engine.local.persistent.ringops import (
    ring_close,
    ring_closed,
    ring_count,
    ring_pop,
    ring_push,
)

from .handlers import RECORD, records


@pytest.fixture
def ring() -> Iterator[RingView]:
    b = ArenaBuilder()
    b.ring("r", RECORD, 8)
    with b.create() as arena:
        yield arena.rings["r"]


def test_wrap_around_keeps_order_and_contents(ring: RingView) -> None:
    out = np.zeros(5, RECORD)
    seen: list[int] = []
    for start in range(0, 100, 5):  # 100 records through 8 slots: the indices wrap 12 times
        assert ring_push(ring.header, ring.records, records(range(start, start + 5))) == 5
        assert ring_pop(ring.header, ring.records, out) == 5
        assert list(out["value"]) == [float(s) for s in out["seq"]]
        seen.extend(out["seq"].tolist())
    assert seen == list(range(100))
    assert ring_count(ring.header) == 0


def test_a_full_ring_takes_what_fits_then_nothing(ring: RingView) -> None:
    assert ring_push(ring.header, ring.records, records(range(6))) == 6
    assert ring_push(ring.header, ring.records, records(range(6, 12))) == 2  # 8 slots
    assert ring_push(ring.header, ring.records, records(range(12, 13))) == 0
    assert ring_count(ring.header) == 8
    out = np.zeros(3, RECORD)
    assert ring_pop(ring.header, ring.records, out) == 3
    assert ring_push(ring.header, ring.records, records(range(8, 20))) == 3
    rest = np.zeros(20, RECORD)
    n = ring_pop(ring.header, ring.records, rest)
    assert rest["seq"][:n].tolist() == [3, 4, 5, 6, 7, 8, 9, 10]


def test_pop_on_an_empty_ring_takes_nothing(ring: RingView) -> None:
    out = np.zeros(4, RECORD)
    assert ring_pop(ring.header, ring.records, out) == 0


def test_closed_is_a_flag_the_consumer_sees(ring: RingView) -> None:
    assert not ring_closed(ring.header)
    ring_close(ring.header)
    assert ring_closed(ring.header)


def test_capacity_must_be_a_power_of_two() -> None:
    with pytest.raises(ValueError, match="power of two"):
        ArenaBuilder().ring("r", RECORD, 12)


def test_records_must_be_structured() -> None:
    from ringctl.persistent import persistent_kernel

    with pytest.raises(TypeError, match="structured dtype"):
        persistent_kernel(input=np.float64)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 11)), max_size=80))
def test_any_interleaving_of_pushes_and_pops_is_a_fifo(steps: list[tuple[bool, int]]) -> None:
    b = ArenaBuilder()
    b.ring("r", RECORD, 8)
    with b.create() as arena:
        r = arena.rings["r"]
        model: deque[int] = deque()
        next_seq = 0
        for is_push, n in steps:
            if is_push:
                took = ring_push(r.header, r.records, records(range(next_seq, next_seq + n)))
                assert took == min(n, 8 - len(model))
                model.extend(range(next_seq, next_seq + took))
                next_seq += took
            else:
                out = np.zeros(n, RECORD)
                got = ring_pop(r.header, r.records, out)
                assert out["seq"][:got].tolist() == [model.popleft() for _ in range(got)]
            assert ring_count(r.header) == len(model)
