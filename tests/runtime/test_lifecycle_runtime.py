"""The same transition table, driven through a real ``RingKernelRuntime``.

Every state times every user action: a valid move lands where the spec says (and the state
listener sees exactly that move); anything else raises ``KernelStateError`` with
``current_state`` and ``expected_states`` and leaves the kernel where it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringctl import KernelContext, KernelState, RingKernelRuntime, ring_kernel
from ringctl.exceptions import KernelNotFoundError, KernelStateError

from .support import ACTIONS, SPEC_MOVES, echo, spec_expected, wait_until

S = KernelState
KID = "lifecycle-table-kernel"


@ring_kernel(kernel_id=KID)
async def table_kernel(ctx: KernelContext) -> None:
    """An echo that, given ``params={"hold": event}``, lingers in TERMINATING until it is set."""
    async for msg in ctx.messages():
        await ctx.send(msg)
    hold = ctx.params.get("hold")
    if hold is not None:
        await hold.wait()


@contextlib.asynccontextmanager
async def kernel_in(runtime: RingKernelRuntime, state: KernelState) -> AsyncIterator[None]:
    """Bring ``KID`` into ``state``; on the way out, let a TERMINATING kernel finish."""
    hold = asyncio.Event()
    terminating: asyncio.Task[Any] | None = None
    if state is not S.CREATED:
        await runtime.launch(KID, params={"hold": hold} if state is S.TERMINATING else {})
    if state in (S.ACTIVE, S.DEACTIVATED, S.TERMINATING):
        await runtime.activate(KID)
    if state is S.DEACTIVATED:
        await runtime.deactivate(KID)
    if state is S.TERMINATING:
        terminating = asyncio.create_task(runtime.terminate(KID, timeout=5.0))
        await wait_until(lambda: runtime.get_state(KID) is S.TERMINATING)
    if state is S.TERMINATED:
        await runtime.terminate(KID)
    assert runtime.get_state(KID) is state
    try:
        yield
    finally:
        hold.set()
        if terminating is not None:
            report = await terminating
            assert report.graceful


async def act(runtime: RingKernelRuntime, action: str) -> None:
    if action == "terminate":
        report = await runtime.terminate(KID, timeout=2.0)
        assert report.graceful, report
    else:
        await getattr(runtime, action)(KID)


@pytest.mark.parametrize(
    ("state", "action"),
    list(itertools.product(KernelState, ACTIONS)),
    ids=lambda v: v.name if isinstance(v, KernelState) else v,
)
async def test_every_state_and_action(
    runtime: RingKernelRuntime, state: KernelState, action: str
) -> None:
    async with kernel_in(runtime, state):
        moves: list[tuple[KernelState, KernelState]] = []
        runtime.add_listener(lambda _kid, old, new: moves.append((old, new)))

        if (state, action) in SPEC_MOVES:
            await act(runtime, action)
            target = SPEC_MOVES[(state, action)]
            if target is S.TERMINATING:
                # terminate() returns once the kernel has gone through TERMINATING.
                assert moves == [(state, S.TERMINATING), (S.TERMINATING, S.TERMINATED)]
                assert runtime.get_state(KID) is S.TERMINATED
            else:
                assert moves == [(state, target)]
                assert runtime.get_state(KID) is target
        else:
            with pytest.raises(KernelStateError) as caught:
                await act(runtime, action)
            assert caught.value.current_state is state
            assert caught.value.expected_states == spec_expected(action)
            assert runtime.get_state(KID) is state
            assert moves == []


async def test_activate_a_registered_kernel_never_launched(runtime: RingKernelRuntime) -> None:
    assert runtime.get_state(KID) is S.CREATED
    assert runtime.get_info(KID).state is S.CREATED
    with pytest.raises(KernelStateError) as caught:
        await runtime.activate(KID)
    assert caught.value.current_state is S.CREATED
    assert S.LAUNCHED in caught.value.expected_states
    assert "launch it first" in str(caught.value)


@pytest.mark.parametrize(
    "call",
    [
        lambda rt: rt.launch("no-such-kernel"),
        lambda rt: rt.activate("no-such-kernel"),
        lambda rt: rt.deactivate("no-such-kernel"),
        lambda rt: rt.reactivate("no-such-kernel"),
        lambda rt: rt.terminate("no-such-kernel"),
        lambda rt: rt.send("no-such-kernel", 1),
        lambda rt: rt.receive("no-such-kernel", timeout=0.1),
        lambda rt: rt.get_state("no-such-kernel"),
        lambda rt: rt.get_info("no-such-kernel"),
        lambda rt: rt.remove("no-such-kernel"),
        lambda rt: rt.connect("no-such-kernel", "running"),
    ],
    ids=[
        "launch",
        "activate",
        "deactivate",
        "reactivate",
        "terminate",
        "send",
        "receive",
        "get_state",
        "get_info",
        "remove",
        "connect",
    ],
)
async def test_unknown_id_lists_the_known_ones(runtime: RingKernelRuntime, call: Any) -> None:
    await runtime.launch("running", echo)
    with pytest.raises(KernelNotFoundError) as caught:
        result = call(runtime)
        if asyncio.iscoroutine(result):
            await result
    err = caught.value
    assert err.kernel_id == "no-such-kernel"
    assert "running" in err.known_ids  # launched here
    assert KID in err.known_ids  # registered with @ring_kernel
    assert "known kernels:" in str(err) and "running" in str(err)
    assert isinstance(err, KeyError)


async def test_terminated_stays_visible_until_removed_then_launches_anew(
    runtime: RingKernelRuntime,
) -> None:
    await runtime.launch("phoenix", echo)
    await runtime.activate("phoenix")
    await runtime.send("phoenix", "first")  # the runtime has read this kernel once
    assert await runtime.receive("phoenix", timeout=2) == "first"
    await runtime.terminate("phoenix")

    assert "phoenix" in runtime.kernel_ids
    assert runtime.get_state("phoenix") is S.TERMINATED
    for action in ACTIONS:
        with pytest.raises(KernelStateError) as caught:
            await getattr(runtime, action)("phoenix")
        assert caught.value.current_state is S.TERMINATED
    with pytest.raises(KernelStateError):
        await runtime.send("phoenix", 1)

    runtime.remove("phoenix")
    assert "phoenix" not in runtime.kernel_ids
    with pytest.raises(KernelNotFoundError):
        runtime.get_state("phoenix")

    await runtime.launch("phoenix", echo)
    await runtime.activate("phoenix")
    await runtime.send("phoenix", "again")
    assert await runtime.receive("phoenix", timeout=2) == "again"


async def test_a_removed_registered_kernel_is_created_again(runtime: RingKernelRuntime) -> None:
    await runtime.launch(KID)
    await runtime.terminate(KID)
    runtime.remove(KID)
    assert runtime.get_state(KID) is S.CREATED
    await runtime.launch(KID)
    assert runtime.get_state(KID) is S.LAUNCHED


@pytest.mark.parametrize("state", [S.LAUNCHED, S.ACTIVE, S.DEACTIVATED], ids=lambda s: s.name)
async def test_remove_needs_a_terminated_kernel(
    runtime: RingKernelRuntime, state: KernelState
) -> None:
    async with kernel_in(runtime, state):
        with pytest.raises(KernelStateError) as caught:
            runtime.remove(KID)
        assert caught.value.current_state is state
        assert caught.value.expected_states == (S.TERMINATED,)
        assert KID in runtime.kernel_ids


async def test_launch_a_plain_async_def(runtime: RingKernelRuntime) -> None:
    async def doubler(ctx: KernelContext) -> None:
        async for msg in ctx.messages():
            await ctx.send(msg * 2)

    await runtime.launch("doubler", doubler)
    await runtime.activate("doubler")
    await runtime.send("doubler", 21)
    assert await runtime.receive("doubler", timeout=2) == 42


# -- generated sequences: the runtime against the table, as a model -------------------------

PLAIN = "lifecycle-plain-kernel"  # launched from a plain async def: unknown until launched
OPS = (*ACTIONS, "remove", "send")


async def _check_against_the_table(steps: list[tuple[str, str]]) -> None:
    model: dict[str, KernelState | None] = {KID: S.CREATED, PLAIN: None}
    async with asyncio.timeout(10), RingKernelRuntime(shutdown_timeout=1.0) as runtime:
        for kid, op in steps:
            state = model[kid]
            valid: bool
            if op in ACTIONS:
                valid = (state or S.CREATED, op) in SPEC_MOVES
            elif op == "remove":
                valid = state is S.TERMINATED
            else:
                valid = state in (S.LAUNCHED, S.ACTIVE, S.DEACTIVATED)
            call = {
                "launch": lambda k=kid: runtime.launch(k, None if k == KID else echo),
                "terminate": lambda k=kid: runtime.terminate(k, timeout=1.0),
                "send": lambda k=kid: runtime.send(k, "m"),
            }.get(op, lambda k=kid, o=op: getattr(runtime, o)(k))
            if valid:
                result = call()
                if asyncio.iscoroutine(result):
                    await result
                if op == "remove":
                    model[kid] = S.CREATED if kid == KID else None
                elif op in ACTIONS:
                    target = SPEC_MOVES[(state or S.CREATED, op)]
                    model[kid] = S.TERMINATED if target is S.TERMINATING else target
            else:
                with pytest.raises((KernelNotFoundError, KernelStateError)) as caught:
                    result = call()
                    if asyncio.iscoroutine(result):
                        await result
                err = caught.value
                if state is None:  # never launched, not registered: unknown
                    assert isinstance(err, KernelNotFoundError)
                else:
                    assert isinstance(err, KernelStateError)
                    assert err.current_state is state
                    if op in ACTIONS:
                        assert err.expected_states == spec_expected(op)
            for k, st_ in model.items():
                if st_ is None:
                    assert k not in runtime.kernel_ids
                else:
                    assert runtime.get_state(k) is st_
            assert runtime.active_kernels == [k for k in runtime.kernel_ids if model[k] is S.ACTIVE]


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from([KID, PLAIN]), st.sampled_from(OPS)), max_size=40))
def test_generated_action_sequences_follow_the_table(steps: list[tuple[str, str]]) -> None:
    asyncio.run(_check_against_the_table(steps))
