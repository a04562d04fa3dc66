"""``PersistentGroup``: the lifecycle through control blocks, a worker process, force-stop."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest
from runtime.support import ACTIONS, SPEC_MOVES, holds, spec_expected, wait_until

from ringctl.engine.lifecycle import KernelState
from ringctl.engine.local.persistent.host import PersistentGroup, StallError
from ringctl.engine.local.persistent.ringops import ring_count, ring_pop, ring_push
from ringctl.exceptions import KernelLaunchError, KernelStateError
from ringctl.kernel.persistent import LoopOptions

from .handlers import MAGIC, records

S = KernelState
H = "tests.persistent.handlers"
FAST = LoopOptions(spin_us=50, nap_us=20, batch=64)


@pytest.fixture
async def group() -> AsyncIterator[Callable[..., PersistentGroup]]:
    made: list[PersistentGroup] = []

    def make(**kinds: str) -> PersistentGroup:
        g = PersistentGroup(f"t{len(made)}", stall_after=0.3)
        for kid, handler in kinds.items():
            g.add(kid, f"{H}:{handler}", capacity=64, options=FAST)
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


async def test_the_whole_lifecycle(group: Callable[..., PersistentGroup]) -> None:
    g = group(k="double")
    assert g.get_state("k") is S.CREATED
    await g.launch("k")
    assert g.get_state("k") is S.LAUNCHED
    push(g, "k", records(range(5)))
    assert await holds(lambda: g.stats("k").records_in == 0, for_s=0.1)  # launched = idle
    await g.activate("k")
    assert await pop(g, "k", 5) == list(range(5))
    await g.deactivate("k")
    assert g.get_state("k") is S.DEACTIVATED
    push(g, "k", records(range(5, 15)))
    assert await holds(lambda: g.stats("k").records_in == 5, for_s=0.1)
    await g.reactivate("k")
    assert await pop(g, "k", 10) == list(range(5, 15))
    push(g, "k", records(range(15, 18)))
    await g.deactivate("k")
    push(g, "k", records(range(18, 20)))
    left_before = ring_count(g.inbox("k").header)
    report = await g.terminate("k", timeout=2.0)
    assert report.graceful and not report.forced
    assert report.left_in_inbox == left_before >= 2
    assert g.get_state("k") is S.TERMINATED
    st = g.stats("k")
    assert st.accepted == st.records_in + st.inbox_depth  # nothing vanished


async def test_every_action_from_every_state_follows_the_table(
    group: Callable[..., PersistentGroup],
) -> None:
    cases = [(s, a) for s in S if s is not S.TERMINATING for a in ACTIONS]
    g = group(**{f"k{i}": "double" for i in range(len(cases))})

    async def bring(kid: str, state: KernelState) -> None:
        path = {
            S.CREATED: [],
            S.LAUNCHED: ["launch"],
            S.ACTIVE: ["launch", "activate"],
            S.DEACTIVATED: ["launch", "activate", "deactivate"],
            S.TERMINATED: ["launch", "terminate"],
        }[state]
        for action in path:
            await getattr(g, action)(kid)
        assert g.get_state(kid) is state

    for i, (state, action) in enumerate(cases):
        kid = f"k{i}"
        await bring(kid, state)
        if (state, action) in SPEC_MOVES:
            await getattr(g, action)(kid)
            want = SPEC_MOVES[(state, action)]
            # terminate passes through TERMINATING and lands in TERMINATED
            assert g.get_state(kid) is (S.TERMINATED if want is S.TERMINATING else want)
        else:
            with pytest.raises(KernelStateError) as caught:
                await getattr(g, action)(kid)
            assert caught.value.current_state is state
            assert caught.value.expected_states == spec_expected(action)
            assert g.get_state(kid) is state


async def test_ring_to_ring_in_one_worker(group: Callable[..., PersistentGroup]) -> None:
    g = PersistentGroup("chain")
    g.add("a", f"{H}:double", capacity=16, options=FAST)
    g.add("b", f"{H}:keep_even", capacity=16, options=FAST)
    g.connect("a", "b")
    try:
        for kid in ("b", "a"):
            await g.launch(kid)
            await g.activate(kid)
        got: list[int] = []
        for start in range(0, 400, 10):
            push(g, "a", records(range(start, start + 10)))
            got += await pop(g, "b", 5)
        assert got == list(range(0, 400, 2))
        assert g.inbox("b") is not None and g.outbox("a") is not None
        assert g.inbox("b").layout == g.outbox("a").layout  # type: ignore[union-attr]
    finally:
        await g.close()


def test_connect_refuses_records_that_differ() -> None:
    g = PersistentGroup("mismatch")
    g.add("a", f"{H}:double")
    g.add("b", f"{H}:other_records")
    with pytest.raises(ValueError, match="reads"):
        g.connect("a", "b")


async def test_a_wedged_handler_is_force_stopped_and_relaunched_on_kept_rings(
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
    assert g.get_state("stuck") is S.TERMINATED
    # The other kernel lives on in a new worker, still ACTIVE, on the same rings.
    assert g.worker_pid not in (None, pid)
    assert g.get_state("fine") is S.ACTIVE
    push(g, "fine", records(range(3)))
    assert await pop(g, "fine", 3) == [0, 1, 2]

    await g.relaunch("stuck")
    await g.activate("stuck")
    assert await pop(g, "stuck", 4) == [4, 5, 6, 7]  # the wedged record was stepped over
    st = g.stats("stuck")
    assert st.lost == 1 and st.restarts == 1 and not st.stalled
    assert st.accepted == st.records_in + st.lost + st.inbox_depth


async def test_a_command_the_kernel_did_not_acknowledge_is_withdrawn(
    group: Callable[..., PersistentGroup],
) -> None:
    g = group(k="slow_on_magic")
    await g.launch("k")
    await g.activate("k")
    push(g, "k", records([0], value=MAGIC))
    await wait_until(lambda: g.stats("k").stalled, timeout=5, what="busy on the slow record")
    with pytest.raises(StallError, match="did not acknowledge PAUSED"):
        await g.deactivate("k", timeout=0.1)
    assert g.get_state("k") is S.ACTIVE
    # Once the handler is done with that record the kernel goes on as the ACTIVE kernel
    # it is said to be, rather than pausing late.
    push(g, "k", records(range(1, 4)))
    assert await pop(g, "k", 4, timeout=60) == [0, 1, 2, 3]


async def test_a_killed_worker_fails_its_kernels_and_relaunch_keeps_the_rings(
    group: Callable[..., PersistentGroup],
) -> None:
    g = group(k="double")
    await g.launch("k")
    push(g, "k", records(range(4)))  # queued while idle
    pid = g.worker_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await wait_until(lambda: g.get_state("k") is S.TERMINATED, timeout=5, what="failed")
    assert "exited unexpectedly" in (g.stats("k").error or "")
    await g.relaunch("k")
    await g.activate("k")
    assert await pop(g, "k", 4) == [0, 1, 2, 3]


async def test_a_handler_that_raises_fails_the_kernel(
    group: Callable[..., PersistentGroup],
) -> None:
    g = group(k="fails_on_negative")
    await g.launch("k")
    await g.activate("k")
    push(g, "k", records([1], value=-1.0))
    await wait_until(lambda: g.get_state("k") is S.TERMINATED, timeout=5, what="failed")
    await wait_until(lambda: "negative reading" in (g.stats("k").error or ""), timeout=5)


async def test_a_handler_that_does_not_compile_is_a_launch_error(
    group: Callable[..., PersistentGroup],
) -> None:
    g = group(k="broken")
    with pytest.raises(KernelLaunchError, match="no_such_field"):
        await g.launch("k")
    assert g.get_state("k") is S.CREATED


def test_an_entry_that_is_not_a_persistent_kernel() -> None:
    g = PersistentGroup("bad")
    with pytest.raises(TypeError, match="not a @persistent_kernel"):
        g.add("k", f"{H}:records")


async def test_full_shared_memory_is_a_launch_error_that_leaves_nothing(
    group: Callable[..., PersistentGroup], monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    g = group(k="double")
    with pytest.raises(KernelLaunchError, match="No space left") as caught:
        await g.launch("k")
    assert "lower `ring`" in (caught.value.hint or "")
    assert g.get_state("k") is S.CREATED and g.worker_pid is None
    ours = f"ringctl-{g.name}-{os.getpid()}-"
    assert not [f for f in os.listdir("/dev/shm") if f.startswith(ours)]  # no half-made arena
