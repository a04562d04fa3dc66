"""The compiled loop on a thread, driven through its control block by hand (no worker yet)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringctl.engine.local.persistent.arena import Arena, ArenaBuilder, RingView
from ringctl.engine.local.persistent.layout import (
    ACK,
    CMD,
    ERRORS,
    HEARTBEAT,
    IN,
    OUT,
    SPIN_LIMIT,
    SPINNING,
    STOP_FAILED,
    STOP_TERMINATED,
    TERMINATED,
    Command,
)
from ringctl.engine.local.persistent.ringops import (
    load,
    ring_close,
    ring_closed,
    ring_pop,
    ring_push,
    store,
)
from ringctl.engine.local.persistent.thread import LoopThread, spin_slots
from ringctl.kernel.persistent import LoopOptions
from ringctl.persistent import PersistentKernel

from . import handlers
from .handlers import RECORD, records


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.0005)


@dataclass
class Rig:
    arena: Arena
    thread: LoopThread
    inbox: RingView
    outbox: RingView | None
    state: np.ndarray

    @property
    def ctrl(self) -> np.ndarray:
        return self.arena.controls["k"]

    def command(self, cmd: Command) -> None:
        store(self.ctrl, CMD, int(cmd))
        wait_for(lambda: load(self.ctrl, ACK) == int(cmd))

    def push_all(self, recs: np.ndarray) -> None:
        done = 0

        def pushed() -> bool:
            nonlocal done
            done += ring_push(self.inbox.header, self.inbox.records, recs[done:])
            return done == len(recs)

        wait_for(pushed)

    def drain(self, n: int) -> np.ndarray:
        assert self.outbox is not None
        got = np.zeros(n, RECORD)
        have = 0

        def more() -> bool:
            nonlocal have
            assert self.outbox is not None
            have += ring_pop(self.outbox.header, self.outbox.records, got[have:])
            return have == n

        wait_for(more)
        return got


@pytest.fixture
def rig() -> Iterator[Callable[..., Rig]]:
    made: list[Rig] = []

    def make(kernel: PersistentKernel, capacity: int = 16, **opts: int) -> Rig:
        b = ArenaBuilder()
        b.control("k")
        b.ring("in", kernel.input, capacity)
        if kernel.output is not None:
            b.ring("out", kernel.output, capacity)
        arena = b.create()
        state = kernel.initial_state({})
        outbox = arena.rings.get("out")
        thread = LoopThread(
            kernel, arena.controls["k"], arena.rings["in"], outbox, state, LoopOptions(**opts)
        )
        thread.compile()
        thread.start()
        r = Rig(arena, thread, arena.rings["in"], outbox, state)
        made.append(r)
        wait_for(lambda: load(r.ctrl, ACK) == int(Command.IDLE))
        return r

    yield make
    for r in made:
        store(r.ctrl, CMD, int(Command.TERM))
        assert r.thread.join(5), "a loop did not stop on TERM"
        r.arena.close()


def test_records_flow_in_order_through_a_small_ring(rig: Callable[..., Rig]) -> None:
    r = rig(handlers.double, capacity=8, batch=3)
    r.command(Command.ACTIVE)
    recs = records(range(1000))
    got = np.zeros(0, RECORD)
    for start in range(0, 1000, 5):  # 1000 records through 8 slots: the indices wrap
        r.push_all(recs[start : start + 5])
        got = np.concatenate([got, r.drain(5)])
    assert got["seq"].tolist() == list(range(1000))
    assert np.array_equal(got["value"], 2.0 * np.arange(1000))
    assert load(r.ctrl, IN) == 1000 and load(r.ctrl, OUT) == 1000


def test_launched_kernel_is_idle_and_beats(rig: Callable[..., Rig]) -> None:
    r = rig(handlers.double)
    ring_push(r.inbox.header, r.inbox.records, records(range(4)))
    beat = load(r.ctrl, HEARTBEAT)
    wait_for(lambda: load(r.ctrl, HEARTBEAT) > beat + 10)
    assert load(r.ctrl, IN) == 0  # IDLE handles nothing


def test_after_pause_is_acknowledged_no_record_is_handled(rig: Callable[..., Rig]) -> None:
    r = rig(handlers.double, capacity=64)
    r.command(Command.ACTIVE)
    r.push_all(records(range(10)))
    r.drain(10)
    r.command(Command.PAUSED)
    before = load(r.ctrl, IN)
    r.push_all(records(range(10, 40)))
    beat = load(r.ctrl, HEARTBEAT)
    wait_for(lambda: load(r.ctrl, HEARTBEAT) > beat + 100)  # the loop ran, and did nothing
    assert load(r.ctrl, IN) == before
    r.command(Command.ACTIVE)
    assert r.drain(30)["seq"].tolist() == list(range(10, 40))


def test_terminate_leaves_unhandled_records_in_the_ring(rig: Callable[..., Rig]) -> None:
    r = rig(handlers.double, capacity=64)
    r.push_all(records(range(20)))  # never activated
    store(r.ctrl, CMD, int(Command.TERM))
    assert r.thread.join(5)
    assert load(r.ctrl, TERMINATED) == STOP_TERMINATED
    assert load(r.inbox.header, 0) - load(r.inbox.header, 8) == 20


def test_errors_and_filtered_records_are_counted(rig: Callable[..., Rig]) -> None:
    r = rig(handlers.keep_even, capacity=64)
    r.command(Command.ACTIVE)
    recs = records(range(20))
    recs["value"][[3, 4]] = -1.0  # two rejected
    r.push_all(recs)
    wait_for(lambda: load(r.ctrl, IN) == 20)
    assert load(r.ctrl, ERRORS) == 2
    assert load(r.ctrl, OUT) == 9  # 0,2,...,18 less 4
    assert r.drain(9)["seq"].tolist() == [0, 2, 6, 8, 10, 12, 14, 16, 18]


def test_a_sink_keeps_its_state(rig: Callable[..., Rig]) -> None:
    r = rig(handlers.total, capacity=32)
    r.command(Command.ACTIVE)
    r.push_all(records(range(100)))
    wait_for(lambda: load(r.ctrl, IN) == 100)
    assert r.state[0] == sum(range(100)) and r.state[1] == 100


def test_end_of_stream_passes_downstream_after_the_last_record(rig: Callable[..., Rig]) -> None:
    r = rig(handlers.double, capacity=16)
    r.command(Command.ACTIVE)
    r.push_all(records(range(5)))
    ring_close(r.inbox.header)
    assert r.outbox is not None
    got = r.drain(5)
    wait_for(lambda: bool(ring_closed(r.outbox.header)))  # type: ignore[union-attr]
    assert got["seq"].tolist() == list(range(5))


def test_a_full_output_ring_holds_records_back(rig: Callable[..., Rig]) -> None:
    r = rig(handlers.double, capacity=8)
    r.command(Command.ACTIVE)
    pushed = 0
    recs = records(range(100))
    # Push for as long as the rings take records; once 16 went in, keep trying for 1 s.
    deadline, full_at = time.monotonic() + 5, None
    while time.monotonic() < deadline and pushed < 100:
        pushed += ring_push(r.inbox.header, r.inbox.records, recs[pushed:])
        if pushed == 16 and full_at is None:
            full_at = time.monotonic()
        if full_at is not None and time.monotonic() - full_at > 1.0:
            break
    assert pushed == 16  # 8 handled into the full output ring, 8 waiting in the input ring
    wait_for(lambda: load(r.ctrl, OUT) == 8)
    assert r.drain(8)["seq"].tolist() == list(range(8))


def test_a_handler_that_raises_marks_the_kernel_failed(rig: Callable[..., Rig]) -> None:
    r = rig(handlers.fails_on_negative)
    r.command(Command.ACTIVE)
    r.push_all(records([1, 2], value=-1.0))
    wait_for(lambda: load(r.ctrl, TERMINATED) == STOP_FAILED)
    assert r.thread.error is not None and "negative reading" in r.thread.error


def test_a_handler_that_does_not_fit_its_records_fails_to_compile() -> None:
    b = ArenaBuilder()
    b.control("k")
    b.ring("in", RECORD, 8)
    b.ring("out", RECORD, 8)
    with b.create() as arena:
        t = LoopThread(  # other_records reads a field RECORD does not have
            handlers.other_records,
            arena.controls["k"],
            arena.rings["in"],
            arena.rings["out"],
            np.zeros(1),
        )
        with pytest.raises(Exception, match="flag"):
            t.compile()


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=30), st.integers(1, 9))
def test_order_holds_under_any_batching(chunks: list[int], batch: int) -> None:
    # The producer (this thread) and the loop (its own thread) race on a small ring.
    b = ArenaBuilder()
    b.control("k")
    b.ring("in", RECORD, 8)
    b.ring("out", RECORD, 8)
    with b.create() as arena:
        t = LoopThread(
            handlers.double,
            arena.controls["k"],
            arena.rings["in"],
            arena.rings["out"],
            np.zeros(1),
            LoopOptions(spin_us=5, nap_us=1, batch=batch),
        )
        t.start()
        ctrl = arena.controls["k"]
        store(ctrl, CMD, int(Command.ACTIVE))
        total = sum(chunks)
        recs = records(range(total))
        got: list[int] = []
        buf = np.zeros(16, RECORD)
        sent = 0
        for n in chunks:
            stop = sent + n
            while sent < stop:
                sent += ring_push(
                    arena.rings["in"].header, arena.rings["in"].records, recs[sent:stop]
                )
                k = ring_pop(arena.rings["out"].header, arena.rings["out"].records, buf)
                got.extend(buf["seq"][:k].tolist())
        deadline = time.monotonic() + 10
        while len(got) < total and time.monotonic() < deadline:
            k = ring_pop(arena.rings["out"].header, arena.rings["out"].records, buf)
            got.extend(buf["seq"][:k].tolist())
        store(ctrl, CMD, int(Command.TERM))
        assert t.join(5)
        assert got == list(range(total))


def test_a_loops_folder_others_can_write_to_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ringctl.engine.local.persistent import loop
    from ringctl.exceptions import UserInputError

    monkeypatch.setenv("RINGCTL_CACHE_DIR", str(tmp_path))
    (tmp_path / "loops").mkdir(mode=0o777)
    (tmp_path / "loops").chmod(0o777)

    def planted(rec, out, state):  # type: ignore[no-untyped-def]
        return 0

    with pytest.raises(UserInputError, match="can be written by other users"):
        loop.loops_for(planted)


def test_a_planted_loop_module_is_written_anew_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ringctl.engine.local.persistent import loop

    monkeypatch.setenv("RINGCTL_CACHE_DIR", str(tmp_path))

    def honest(rec, out, state):  # type: ignore[no-untyped-def]
        return 0

    module = loop.loops_for(honest)
    path = Path(module.__file__ or "")
    loop.loops_for.cache_clear()
    path.write_text("raise SystemExit('planted code ran')\n")
    module = loop.loops_for(honest)  # not SystemExit: the file was written anew
    assert "map_loop" in path.read_text() and hasattr(module, "map_loop")


def test_idle_loops_spin_only_on_spare_cores_and_only_for_spin_us(
    rig: Callable[..., Rig],
) -> None:
    slots = spin_slots()
    limit = int(slots[SPIN_LIMIT])
    assert limit == max(len(os.sched_getaffinity(0)) - 1, 0)
    rigs = [rig(handlers.double, capacity=64, spin_us=300_000, nap_us=1000) for _ in range(3)]
    wait_for(lambda: load(slots, SPINNING) == 0)  # the spin after launch is over
    started = time.monotonic()
    for r in rigs:  # one record each: every loop runs out of work and wants to spin
        r.command(Command.ACTIVE)
        r.push_all(records(range(1)))
        r.drain(1)
    assert load(slots, SPINNING) == min(limit, 3)  # never more spinning than spare cores
    beats = [load(r.ctrl, HEARTBEAT) for r in rigs]
    time.sleep(0.05)
    passes = sorted(load(r.ctrl, HEARTBEAT) - b for r, b in zip(rigs, beats, strict=True))
    if limit < 3:
        assert passes[2 - limit] < 100  # the loops without a slot nap (1 ms a pass)
    wait_for(lambda: load(slots, SPINNING) == 0, timeout=5.0)  # the spin is bounded by time
    assert time.monotonic() - started < 2.0
    beats = [load(r.ctrl, HEARTBEAT) for r in rigs]
    time.sleep(0.05)
    assert all(load(r.ctrl, HEARTBEAT) - b < 100 for r, b in zip(rigs, beats, strict=True))


def test_an_idle_loop_naps_longer_and_longer_up_to_a_millisecond(rig: Callable[..., Rig]) -> None:
    from ringctl.engine.local.persistent.loop import loops_for

    longest = loops_for(handlers.double.handler).longest_nap
    assert [longest(n) for n in (5, 50, 100, 1000, 5000)] == [80, 800, 1000, 1000, 5000]
    r = rig(handlers.double, capacity=64, spin_us=0, nap_us=50)
    r.command(Command.ACTIVE)
    time.sleep(0.05)  # long past the growth: 50, 100, ..., 800 us
    beat, started = load(r.ctrl, HEARTBEAT), time.monotonic()
    time.sleep(0.2)
    passes = load(r.ctrl, HEARTBEAT) - beat
    elapsed = time.monotonic() - started  # the sleep may last longer on a busy machine
    assert passes >= 10
    assert elapsed / passes > 300e-6  # naps of 800 us (+ slack); 50 us naps: about 100 us
    r.push_all(records(range(5)))  # work brings the short nap back; records flow as ever
    assert list(r.drain(5)["seq"]) == list(range(5))
