"""C++ persistent kernels: the protocol on the CPU twin here, on the GPU where there is one.

Every test runs once per backend: ``cpu`` (the loop source built by the host C++
compiler, skipped without one) and ``cuda`` (marked ``gpu``, skipped unless CuPy finds a
device). The loop-level tests drive a loop through its control block by hand; the group
tests go through ``PersistentGroup`` and a real worker process, as a topology does.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from runtime.support import holds, wait_until

from ringctl.engine.lifecycle import KernelState
from ringctl.engine.local.persistent.arena import Arena, ArenaBuilder, RingView
from ringctl.engine.local.persistent.host import PersistentGroup, StallError
from ringctl.engine.local.persistent.layout import (
    ACK,
    CMD,
    CONSUMER_GONE,
    DISCARDED,
    ERRORS,
    HEAD,
    HEARTBEAT,
    IN,
    OUT,
    STOP_TERMINATED,
    TAIL,
    TERMINATED,
    Command,
)
from ringctl.engine.local.persistent.native.runner import NativeLoop, native_loop, release
from ringctl.engine.local.persistent.native.source import NativeCompileError
from ringctl.engine.local.persistent.ringops import (
    load,
    ring_close,
    ring_closed,
    ring_count,
    ring_pop,
    ring_push,
    store,
)
from ringctl.exceptions import KernelLaunchError
from ringctl.kernel.persistent import LoopOptions, PersistentKernel

from . import native_handlers as nh
from .handlers import MAGIC, RECORD, records

S = KernelState
H = "tests.persistent.native_handlers"
FAST = LoopOptions(spin_us=10, nap_us=20, batch=64)


def _usable(backend: str) -> str | None:
    """Why ``backend`` cannot run here, or None."""
    if backend == "cpu":
        from ringctl.engine.local.persistent.native.twin import compiler

        return None if compiler() else "no C++ compiler (g++, c++ or $CXX)"
    try:
        # Through ringctl's module: it sets how CUDA loads modules before CUDA starts.
        from ringctl.engine.local.persistent.native.cuda import cupy
    except ImportError:
        return "CuPy is not installed"
    return None if cupy.cuda.is_available() else "CuPy finds no CUDA device"


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def backend(request: pytest.FixtureRequest) -> str:
    why = _usable(request.param)
    if why is not None:
        pytest.skip(why)
    return str(request.param)


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.0005)


@dataclass
class Rig:
    arena: Arena
    loop: NativeLoop
    inbox: RingView
    outbox: RingView | None

    @property
    def ctrl(self) -> np.ndarray:
        return self.arena.controls["k"]

    @property
    def state(self) -> np.ndarray:
        return self.arena.arrays["s"]

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
def rig(backend: str) -> Iterator[Callable[..., Rig]]:
    made: list[Rig] = []

    def make(kernel: PersistentKernel, capacity: int = 16, **opts: int) -> Rig:
        b = ArenaBuilder()
        b.control("k")
        b.array("s", len(kernel.initial_state({})))
        b.ring("in", kernel.input, capacity)
        if kernel.output is not None:
            b.ring("out", kernel.output, capacity)
        arena = b.create()
        outbox = arena.rings.get("out")
        loop = native_loop(
            arena, backend, kernel, arena.controls["k"], arena.rings["in"], outbox,
            arena.arrays["s"], LoopOptions(**opts),
        )  # fmt: skip
        loop.compile()
        loop.start()
        r = Rig(arena, loop, arena.rings["in"], outbox)
        made.append(r)
        wait_for(lambda: load(r.ctrl, ACK) == int(Command.IDLE))
        return r

    yield make
    for r in made:
        store(r.ctrl, CMD, int(Command.TERM))
        assert r.loop.join(5), "a loop did not stop on TERM"
        release(r.arena)
        r.arena.close()


# -- the loop, driven by hand ------------------------------------------------------------


def test_records_flow_in_order_through_a_small_ring(rig: Callable[..., Rig]) -> None:
    r = rig(nh.double, capacity=8, batch=3)
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
    r = rig(nh.double)
    ring_push(r.inbox.header, r.inbox.records, records(range(4)))
    beat = load(r.ctrl, HEARTBEAT)
    wait_for(lambda: load(r.ctrl, HEARTBEAT) > beat + 10)
    assert load(r.ctrl, IN) == 0  # IDLE handles nothing


def test_after_pause_is_acknowledged_no_record_is_handled(rig: Callable[..., Rig]) -> None:
    r = rig(nh.double, capacity=64)
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
    r = rig(nh.double, capacity=64)
    r.push_all(records(range(20)))  # never activated
    store(r.ctrl, CMD, int(Command.TERM))
    assert r.loop.join(5)
    assert load(r.ctrl, TERMINATED) == STOP_TERMINATED
    assert load(r.inbox.header, HEAD) - load(r.inbox.header, TAIL) == 20


def test_a_full_output_ring_holds_records_back(rig: Callable[..., Rig]) -> None:
    r = rig(nh.double, capacity=8)
    r.command(Command.ACTIVE)
    r.push_all(records(range(8)))
    wait_for(lambda: load(r.ctrl, IN) == 8)
    r.push_all(records(range(8, 16)))  # the output ring is full: these must wait
    beat = load(r.ctrl, HEARTBEAT)
    wait_for(lambda: load(r.ctrl, HEARTBEAT) > beat + 100)
    assert load(r.ctrl, IN) == 8 and ring_count(r.inbox.header) == 8
    got = np.concatenate([r.drain(8), r.drain(8)])
    assert got["seq"].tolist() == list(range(16))


def test_errors_and_filtered_records_are_counted(rig: Callable[..., Rig]) -> None:
    r = rig(nh.keep_even, capacity=64)
    r.command(Command.ACTIVE)
    recs = records(range(20))
    recs["value"][[3, 4]] = -1.0  # two rejected
    r.push_all(recs)
    wait_for(lambda: load(r.ctrl, IN) == 20)
    assert load(r.ctrl, ERRORS) == 2
    assert load(r.ctrl, OUT) == 9  # 0,2,...,18 less 4
    assert r.drain(9)["seq"].tolist() == [0, 2, 6, 8, 10, 12, 14, 16, 18]


def test_a_sink_keeps_its_state(rig: Callable[..., Rig]) -> None:
    r = rig(nh.total, capacity=32)
    r.command(Command.ACTIVE)
    r.push_all(records(range(100)))
    wait_for(lambda: load(r.ctrl, IN) == 100)
    assert r.state[0] == sum(range(100)) and r.state[1] == 100


def test_end_of_stream_passes_downstream_after_the_last_record(rig: Callable[..., Rig]) -> None:
    r = rig(nh.double, capacity=16)
    r.command(Command.ACTIVE)
    r.push_all(records(range(5)))
    ring_close(r.inbox.header)
    assert r.outbox is not None
    got = r.drain(5)
    wait_for(lambda: bool(ring_closed(r.outbox.header)))  # type: ignore[union-attr]
    assert got["seq"].tolist() == list(range(5))


def test_with_its_consumer_gone_a_kernel_counts_what_it_discards(
    rig: Callable[..., Rig],
) -> None:
    r = rig(nh.double, capacity=8)
    assert r.outbox is not None
    store(r.outbox.header, CONSUMER_GONE, 1)
    r.command(Command.ACTIVE)
    r.push_all(records(range(30)))  # more than the output ring holds: nothing waits
    wait_for(lambda: load(r.ctrl, IN) == 30)
    assert load(r.outbox.header, DISCARDED) == 30 == load(r.ctrl, OUT)
    assert ring_count(r.outbox.header) == 0


def test_a_compiler_error_names_the_users_file_and_line(backend: str) -> None:
    b = ArenaBuilder()
    b.control("k")
    b.array("s", 1)
    b.ring("in", RECORD, 8)
    b.ring("out", RECORD, 8)
    with b.create() as arena:
        loop = native_loop(
            arena, backend, nh.broken, arena.controls["k"], arena.rings["in"],
            arena.rings["out"], arena.arrays["s"], LoopOptions(),
        )  # fmt: skip
        with pytest.raises(NativeCompileError) as caught:
            loop.compile()
    last = str(caught.value).splitlines()[-1]
    assert "broken.cu" in last and ("broken.cu:4" in last or "broken.cu(4)" in last), last
    assert "no_such_field" in str(caught.value)


# -- through PersistentGroup and a worker process ------------------------------------------


@pytest.fixture
async def group(backend: str) -> AsyncIterator[Callable[..., PersistentGroup]]:
    made: list[PersistentGroup] = []

    def make(**kinds: str) -> PersistentGroup:
        g = PersistentGroup(f"n{len(made)}", stall_after=0.3)
        for kid, name in kinds.items():
            g.add(kid, f"{H}:{name}", capacity=64, options=FAST, backend=backend)
        made.append(g)
        return g

    yield make
    for g in made:
        await g.close(timeout=1.0)
        assert g.worker_pid is None


def push(g: PersistentGroup, kid: str, recs: np.ndarray) -> None:
    ring = g.inbox(kid)
    assert ring_push(ring.header, ring.records, recs) == len(recs)


async def pop(g: PersistentGroup, kid: str, n: int, timeout: float = 10.0) -> list[int]:
    ring = g.outbox(kid)
    assert ring is not None
    buf = np.zeros(n, ring.records.dtype)
    have = 0

    def more() -> bool:
        nonlocal have
        assert ring is not None
        have += ring_pop(ring.header, ring.records, buf[have:])
        return have == n

    await wait_until(more, timeout=timeout, what=f"{n} records out of {kid}")
    return [int(s) for s in buf["seq"]]


async def test_the_whole_lifecycle_in_a_worker(group: Callable[..., PersistentGroup]) -> None:
    g = group(k="double")
    await g.launch("k")
    assert g.get_state("k") is S.LAUNCHED
    push(g, "k", records(range(5)))
    assert await holds(lambda: g.stats("k").records_in == 0, for_s=0.1)  # launched = idle
    await g.activate("k")
    assert await pop(g, "k", 5) == list(range(5))
    await g.deactivate("k")
    push(g, "k", records(range(5, 15)))
    assert await holds(lambda: g.stats("k").records_in == 5, for_s=0.1)
    await g.reactivate("k")
    assert await pop(g, "k", 10) == list(range(5, 15))
    await g.deactivate("k")
    push(g, "k", records(range(15, 20)))
    report = await g.terminate("k", timeout=2.0)
    assert report.graceful and not report.forced
    assert report.left_in_inbox == 5
    st = g.stats("k")
    assert st.accepted == st.records_in + st.inbox_depth  # nothing vanished


async def test_a_wedged_cxx_handler_is_force_stopped_and_relaunched_on_kept_rings(
    group: Callable[..., PersistentGroup],
) -> None:
    g = group(stuck="wedge_on_magic", fine="double")
    for kid in ("stuck", "fine"):
        await g.launch(kid)
        await g.activate(kid)
    push(g, "stuck", records(range(3)))
    assert await pop(g, "stuck", 3) == [0, 1, 2]
    push(g, "stuck", records([3], value=MAGIC))
    push(g, "stuck", records(range(4, 8)))
    await wait_until(lambda: g.stats("stuck").stalled, timeout=5, what="stalled")
    with pytest.raises(StallError, match="did not acknowledge"):
        await g.deactivate("stuck", timeout=0.2)
    pid = g.worker_pid

    report = await g.terminate("stuck", timeout=0.3)

    assert report.forced and not report.graceful
    assert report.left_in_inbox == 5  # the wedged record and the four behind it
    assert g.worker_pid not in (None, pid)
    assert g.get_state("fine") is S.ACTIVE  # restarted in the new worker, on its rings
    push(g, "fine", records(range(3)))
    assert await pop(g, "fine", 3) == [0, 1, 2]

    await g.relaunch("stuck")
    await g.activate("stuck")
    assert await pop(g, "stuck", 4) == [4, 5, 6, 7]  # the wedged record was stepped over
    st = g.stats("stuck")
    assert st.lost == 1 and st.restarts == 1 and not st.stalled
    assert st.accepted == st.records_in + st.lost + st.inbox_depth


async def test_a_killed_worker_and_a_relaunch_on_kept_rings(
    group: Callable[..., PersistentGroup],
) -> None:
    g = group(k="double")
    await g.launch("k")
    push(g, "k", records(range(4)))  # queued while idle
    pid = g.worker_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await wait_until(lambda: g.get_state("k") is S.TERMINATED, timeout=5, what="failed")
    await g.relaunch("k")
    await g.activate("k")
    assert await pop(g, "k", 4) == [0, 1, 2, 3]


async def test_a_cxx_handler_that_does_not_compile_is_a_launch_error_at_its_line(
    group: Callable[..., PersistentGroup],
) -> None:
    g = group(k="broken")
    with pytest.raises(KernelLaunchError, match=r"broken\.cu(:4|\(4\))") as caught:
        await g.launch("k")
    assert "no_such_field" in str(caught.value.hint)
    assert g.get_state("k") is S.CREATED


def test_a_numba_kernel_cannot_ask_for_cuda() -> None:
    g = PersistentGroup("refuse")
    with pytest.raises(ValueError, match="not available"):
        g.add("k", "tests.persistent.handlers:double", backend="cuda")


def test_an_idle_loop_naps_longer_and_longer(rig: Callable[..., Rig], backend: str) -> None:
    if backend != "cpu":
        pytest.skip("timed on the CPU")
    r = rig(nh.double, capacity=64, spin_us=0, nap_us=50)
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
